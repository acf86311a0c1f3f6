package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

type kustomizeSettings struct {
	// AllowSecretGenerator lets a kustomization generate Secrets from plaintext in the
	// repository (spec.allowPlaintextSecrets).
	AllowSecretGenerator bool `json:"allowSecretGenerator"`
}

// kustomizationNames are the file names kustomize recognises, in its order.
var kustomizationNames = map[string]bool{"kustomization.yaml": true, "kustomization.yml": true, "Kustomization": true}

// refusal is the first kustomization a policy refused; it is reported instead of the error
// kustomize wraps around it.
type refusal struct{ err error }

func buildKustomization(req request) (response, error) {
	var refused refusal
	fs, err := newConfinedFS(req.Root, func(path string, data []byte) error {
		if !kustomizationNames[filepath.Base(path)] {
			return nil
		}
		if err := checkKustomization(path, data, req.Kustomize); err != nil {
			if refused.err == nil {
				refused.err = err
			}
			return err
		}
		return nil
	})
	if err != nil {
		return response{}, err
	}
	dir := filepath.Join(fs.root, filepath.FromSlash(req.Path))
	options := &krusty.Options{
		// Bases and patches may come from anywhere in the repository (`../base`), as in Flux;
		// confinedFS keeps them inside it.
		LoadRestrictions: types.LoadRestrictionsNone,
		// Builtin generators and transformers only: no exec plugins, no KRM functions, no Helm.
		PluginConfig: types.DisabledPluginConfig(),
		// The order `kustomize build` prints.
		Reorder: krusty.ReorderOptionUnspecified,
	}
	resources, err := krusty.MakeKustomizer(options).Run(fs, dir)
	if refused.err != nil {
		return response{}, refused.err
	}
	if err != nil && fs.escaped != nil {
		// Kustomize wraps the refusal in messages that name host paths.
		return response{}, fs.escaped
	}
	if err != nil {
		return response{}, explainKustomize(err, fs)
	}
	source := req.Path
	if source == "" {
		source = "."
	}
	docs := make([]document, 0, resources.Size())
	for _, r := range resources.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return response{}, failWith("Build", "writing %s as YAML: %v", r.CurId(), err)
		}
		docs = append(docs, document{Source: source, YAML: string(y)})
	}
	return response{Documents: docs}, nil
}

// checkKustomization applies sealsync's policy to one kustomization file before kustomize
// reads it.
func checkKustomization(path string, data []byte, settings kustomizeSettings) error {
	var k struct {
		SecretGenerator []any `json:"secretGenerator"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		// kustomize reports the syntax error with its own message.
		return nil
	}
	if len(k.SecretGenerator) > 0 && !settings.AllowSecretGenerator {
		return failWith("SecretGenerator",
			"%s: secretGenerator builds Secrets from plaintext kept in Git; seal the Secret with `sealsync seal` and list the sealed file under resources instead (or set spec.allowPlaintextSecrets: true)",
			filepath.ToSlash(path))
	}
	return nil
}

// explainKustomize turns the errors of refused features into messages that say what to do.
// Kustomize's message names paths on the host; those under the copy are made relative.
func explainKustomize(err error, fs *confinedFS) error {
	var re *renderError
	if errors.As(err, &re) && re.reason == "OutsideRoot" {
		return re
	}
	message := strings.ReplaceAll(err.Error(), fs.root+string(filepath.Separator), "")
	message = strings.ReplaceAll(message, fs.root, ".")
	switch {
	case errors.Is(err, errNetwork), strings.Contains(message, errNetwork.Error()),
		strings.Contains(message, "no 'git' program on path"):
		return failWith("RemoteBase", "a remote base or resource (a URL under resources or components) is not fetched while rendering; vendor it into the repository: %s", message)
	case strings.Contains(message, "external plugins disabled"):
		return failWith("Plugin", "plugins (exec and KRM functions) are not run: only kustomize's builtin generators and transformers are: %s", message)
	case strings.Contains(message, "--enable-helm"):
		return failWith("Plugin", "helmCharts in a kustomization is not supported: point a GitSync at the chart instead: %s", message)
	}
	return fmt.Errorf("%s", message)
}
