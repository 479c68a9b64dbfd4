// Command istio-validate says whether Istio accepts configuration documents, with
// Istio's own code: the checks the Kubernetes API server makes with Istio's CRDs
// (OpenAPI schema, unknown fields, CEL rules; crd-all.gen.yaml, given by --crds)
// and those of istiod's validating webhook (each kind's Go validation), as
// `kubectl apply` to a cluster with Istio would. navarch's tests use it to compare
// navarch's validation with Istio's (`make peers` builds it into
// .peers/bin/istio-validate).
//
// Istio's mesh ConfigMap is judged as istiod reads it (validate).
//
// It reads JSON lines {"id": "...", "yaml": "<one document>"} on stdin and writes
// one JSON line {"id", "valid", "error", "warning"} per document to --out (Istio's
// packages log to stdout).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/crd"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/resource"
	"istio.io/istio/pkg/config/validation/agent"
)

type request struct {
	ID   string `json:"id"`
	YAML string `json:"yaml"`
}

type result struct {
	ID      string `json:"id"`
	Valid   bool   `json:"valid"`
	Error   string `json:"error,omitempty"`
	Warning string `json:"warning,omitempty"`
}

func main() {
	crds := flag.String("crds", "", "Istio's CRDs (manifests/charts/base/files/crd-all.gen.yaml)")
	outFile := flag.String("out", "", "file to write the results to")
	flag.Parse()
	if *crds == "" || *outFile == "" {
		fmt.Fprintln(os.Stderr, "istio-validate: --crds and --out are required")
		os.Exit(2)
	}
	f, err := os.Create(*outFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "istio-validate:", err)
		os.Exit(1)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	defer w.Flush()
	v, err := crd.NewValidatorFromFiles(*crds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "istio-validate:", err)
		os.Exit(1)
	}
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := json.NewEncoder(w)
	dec := json.NewDecoder(in)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			fmt.Fprintln(os.Stderr, "istio-validate: reading a request:", err)
			os.Exit(1)
		}
		res := result{ID: req.ID}
		warning, err := validate(v, req.YAML)
		res.Valid = err == nil
		if err != nil {
			res.Error = err.Error()
		}
		if warning != nil {
			res.Warning = warning.Error()
		}
		if err := out.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, "istio-validate:", err)
			os.Exit(1)
		}
	}
}

// validate runs the API server's checks, then the webhook's. Istio's mesh
// ConfigMap (istio of istio-system) has neither: it is what istiod makes of it,
// its mesh merged onto Istio's defaults and checked (ApplyMeshConfigDefaults),
// with the warnings istiod logs.
func validate(v *crd.Validator, doc string) (warning error, err error) {
	j, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("yaml: %v", err)
	}
	var cm struct {
		Kind     string
		Metadata struct{ Name, Namespace string }
		Data     map[string]string
	}
	if json.Unmarshal(j, &cm) == nil && cm.Kind == "ConfigMap" && cm.Metadata.Name == "istio" && cm.Metadata.Namespace == "istio-system" {
		mc, err := mesh.ApplyMeshConfigDefaults(cm.Data["mesh"])
		if err != nil {
			return nil, fmt.Errorf("mesh config: %v", err)
		}
		// istiod logs the warnings of the mesh config it reads.
		warning, _ := agent.ValidateMeshConfig(mc)
		return warning, nil
	}
	// Unstructured's own decoding, as the API server's: integers stay int64.
	un := &unstructured.Unstructured{}
	if err := un.UnmarshalJSON(j); err != nil {
		return nil, fmt.Errorf("decoding: %v", err)
	}
	if err := v.ValidateCustomResource(un.DeepCopy()); err != nil {
		return nil, fmt.Errorf("api server: %v", err)
	}
	gvk := un.GroupVersionKind()
	schema, ok := collections.Pilot.FindByGroupVersionAliasesKind(config.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind})
	if !ok {
		return nil, fmt.Errorf("no Istio schema for %v", gvk)
	}
	cfg, err := toConfig(schema, un)
	if err != nil {
		return nil, fmt.Errorf("webhook: %v", err)
	}
	w, err := schema.ValidateConfig(*cfg)
	if err != nil {
		return w, fmt.Errorf("webhook: %v", err)
	}
	return w, nil
}

// toConfig decodes the spec strictly into the kind's proto, as istiod's webhook does.
func toConfig(schema resource.Schema, un *unstructured.Unstructured) (*config.Config, error) {
	spec, err := json.Marshal(un.Object["spec"])
	if err != nil {
		return nil, err
	}
	msg, err := schema.NewInstance()
	if err != nil {
		return nil, err
	}
	if err := config.ApplyJSONStrict(msg, string(spec)); err != nil {
		return nil, err
	}
	ns := un.GetNamespace()
	if ns == "" {
		ns = "default"
	}
	return &config.Config{
		Meta: config.Meta{
			GroupVersionKind: schema.GroupVersionKind(),
			Name:             un.GetName(),
			Namespace:        ns,
			Labels:           un.GetLabels(),
			Annotations:      un.GetAnnotations(),
		},
		Spec: msg,
	}, nil
}
