package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	chartapi "helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	chartloader "helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	v2loader "helm.sh/helm/v4/pkg/chart/v2/loader"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
)

type helmSettings struct {
	ReleaseName string `json:"releaseName"`
	Namespace   string `json:"namespace"`
	IncludeCRDs bool   `json:"includeCRDs"`
	SkipTests   bool   `json:"skipTests"`
	// KubeVersion is the cluster's version (`v1.33.2`); empty for Helm's default.
	KubeVersion string `json:"kubeVersion"`
	// APIVersions are the cluster's group/versions and group/version/Kinds.
	APIVersions []string `json:"apiVersions"`
	// Values are merged in order, later ones winning, as `helm template -f a -f b` does.
	Values []valuesSource `json:"values"`
}

// valuesSource is one values document. The caller reads values files and opens sealed values
// in memory; they reach the renderer only through standard input.
type valuesSource struct {
	// Source names it in errors (a file, `spec.helm.values`, a ConfigMap).
	Source string `json:"source"`
	YAML   string `json:"yaml"`
}

func renderChart(req request) (response, error) {
	if req.Limits.ChartBytes > 0 {
		archive.MaxDecompressedChartSize = req.Limits.ChartBytes
	}
	fs, err := newConfinedFS(req.Root, nil)
	if err != nil {
		return response{}, err
	}
	dir, err := fs.check(filepath.Join(fs.root, filepath.FromSlash(req.Path)))
	if err != nil {
		return response{}, err
	}
	if err := refuseLinks(fs, dir); err != nil {
		return response{}, err
	}
	loaded, err := chartloader.Load(dir)
	if err != nil {
		return response{}, failWith("Chart", "loading the chart at %s: %s", req.Path, fs.strip(err.Error()))
	}
	chart, ok := loaded.(*chartv2.Chart)
	if !ok {
		return response{}, failWith("Chart", "the chart at %s has an apiVersion this renderer does not support (v1 and v2 are)", req.Path)
	}
	if deps := chart.Metadata.Dependencies; len(deps) > 0 {
		if err := action.CheckDependencies(chart, toDependencies(deps)); err != nil {
			return response{}, failWith("Dependencies", "%s: %v; vendor the dependencies under charts/ (helm dependency build) or commit Chart.lock", req.Path, err)
		}
	}
	values := map[string]any{}
	for _, v := range req.Helm.Values {
		current, err := v2loader.LoadValues(strings.NewReader(v.YAML))
		if err != nil {
			// The parser's message may quote the input, which can be a secret value.
			return response{}, failWith("Values", "%s: the values are not a YAML map", v.Source)
		}
		values = v2loader.MergeMaps(values, current)
	}

	if err := validateSchemas(chart, values); err != nil {
		return response{}, failWith("Values", "the values do not match the chart's values.schema.json: %s", fs.strip(err.Error()))
	}

	install := action.NewInstall(&action.Configuration{})
	// Validated above without loading anything beyond the chart.
	install.SkipSchemaValidation = true
	install.DryRunStrategy = action.DryRunClient
	install.Replace = true
	install.ReleaseName = req.Helm.ReleaseName
	install.Namespace = req.Helm.Namespace
	install.IncludeCRDs = req.Helm.IncludeCRDs
	install.APIVersions = common.VersionSet(req.Helm.APIVersions)
	install.EnableDNS = false
	if req.Helm.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(req.Helm.KubeVersion)
		if err != nil {
			return response{}, failWith("Request", "kube version %q: %v", req.Helm.KubeVersion, err)
		}
		install.KubeVersion = kv
	}
	released, err := install.RunWithContext(context.Background(), chart, values)
	if err != nil {
		return response{}, failWith("Template", "rendering the chart at %s: %s", req.Path, fs.strip(err.Error()))
	}
	rel, ok := released.(*releasev1.Release)
	if !ok {
		return response{}, failWith("Internal", "unexpected release type %T", released)
	}
	return splitRelease(rel, req.Helm.SkipTests), nil
}

func toDependencies(deps []*chartv2.Dependency) []chartapi.Dependency {
	out := make([]chartapi.Dependency, 0, len(deps))
	for _, d := range deps {
		out = append(out, d)
	}
	return out
}

// splitRelease lists the release's manifests by template, in Helm's install order, and its
// hooks with their events and weights.
func splitRelease(rel *releasev1.Release, skipTests bool) response {
	var resp response
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(manifests))
	for k := range manifests {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	for _, k := range keys {
		m := manifests[k]
		source := ""
		if first, rest, ok := strings.Cut(m, "\n"); ok && strings.HasPrefix(first, "# Source: ") {
			source = strings.TrimPrefix(first, "# Source: ")
			m = rest
		}
		if strings.TrimSpace(m) == "" {
			continue
		}
		resp.Documents = append(resp.Documents, document{Source: source, YAML: m})
	}
	for _, h := range rel.Hooks {
		events := make([]string, 0, len(h.Events))
		test := false
		for _, e := range h.Events {
			events = append(events, string(e))
			test = test || e == releasev1.HookTest
		}
		if test && skipTests {
			continue
		}
		if !runsOnInstallOrUpgrade(h.Events) && !test {
			// pre/post-delete and rollback hooks: sealsync never runs them.
			continue
		}
		policies := make([]string, 0, len(h.DeletePolicies))
		for _, p := range h.DeletePolicies {
			policies = append(policies, string(p))
		}
		resp.Hooks = append(resp.Hooks, hook{
			document:       document{Source: h.Path, YAML: h.Manifest},
			Events:         events,
			Weight:         h.Weight,
			DeletePolicies: policies,
		})
	}
	return resp
}

// refuseLinks fails on any symbolic link under the chart: Helm's directory loader follows
// them. The caller's copy holds none; this keeps it so.
func refuseLinks(fs *confinedFS, dir string) error {
	return filepath.WalkDir(dir, func(path string, entry os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if entry.Type()&os.ModeSymlink != 0 {
			return failWith("OutsideRoot", "%s is a symbolic link; charts are rendered from regular files only", fs.relative(path))
		}
		return nil
	})
}

// strip removes the host path of the repository copy from a message.
func (c *confinedFS) strip(message string) string {
	message = strings.ReplaceAll(message, c.root+string(filepath.Separator), "")
	return strings.ReplaceAll(message, c.root, ".")
}

func versionLine() string {
	return fmt.Sprintf("sealsync-renderer kustomize %s helm %s", moduleVersion("sigs.k8s.io/kustomize/api"), moduleVersion("helm.sh/helm/v4"))
}

// runsOnInstallOrUpgrade reports whether a hook fires on install or upgrade.
func runsOnInstallOrUpgrade(events []releasev1.HookEvent) bool {
	for _, e := range events {
		switch e {
		case releasev1.HookPreInstall, releasev1.HookPostInstall, releasev1.HookPreUpgrade, releasev1.HookPostUpgrade:
			return true
		}
	}
	return false
}
