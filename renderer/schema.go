package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	chartapi "helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
)

// validateSchemas checks the values against each chart's values.schema.json as `helm
// template` does (the chart's own, then each subchart's with its part of the values), but
// with a schema compiler that loads nothing: Helm's would follow a `$ref` to any file on the
// host or any URL, which a chart in Git must not be able to make the renderer read.
func validateSchemas(chart chartapi.Charter, values map[string]any) error {
	coalesced, err := chartutil.CoalesceValues(chart, values)
	if err != nil {
		return err
	}
	return validateChart(chart, coalesced)
}

func validateChart(ch chartapi.Charter, values map[string]any) error {
	accessor, err := chartapi.NewAccessor(ch)
	if err != nil {
		return err
	}
	var sb strings.Builder
	if schema := accessor.Schema(); schema != nil {
		if err := validateOne(values, schema); err != nil {
			fmt.Fprintf(&sb, "%s:\n%s\n", accessor.Name(), err.Error())
		}
	}
	for _, sub := range accessor.Dependencies() {
		subAccessor, err := chartapi.NewAccessor(sub)
		if err != nil {
			return err
		}
		raw, ok := values[subAccessor.Name()]
		if !ok || raw == nil {
			continue
		}
		subValues, ok := raw.(map[string]any)
		if !ok {
			fmt.Fprintf(&sb, "%s:\ninvalid type for values: expected object (map), got %T\n", subAccessor.Name(), raw)
			continue
		}
		if err := validateChart(sub, subValues); err != nil {
			sb.WriteString(err.Error())
		}
	}
	if sb.Len() > 0 {
		return errors.New(sb.String())
	}
	return nil
}

// noLoader refuses every external schema.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: schemas outside values.schema.json are not loaded", url)
}

func validateOne(values common.Values, schemaJSON []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unable to validate schema: %v", r)
		}
	}()
	schema, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return err
	}
	compiler := jsonschema.NewCompiler()
	compiler.UseLoader(noLoader{})
	if err := compiler.AddResource("file:///values.schema.json", schema); err != nil {
		return err
	}
	validator, err := compiler.Compile("file:///values.schema.json")
	if err != nil {
		return err
	}
	return validator.Validate(values.AsMap())
}
