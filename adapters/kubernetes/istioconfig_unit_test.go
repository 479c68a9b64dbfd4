package kubernetes

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/navarch/navarch/api"
)

// TestTranslateConfig: a custom resource is decoded as navarch apply decodes its
// YAML; an invalid one is reported and its last valid version stands for it, until
// the cluster no longer has it.
func TestTranslateConfig(t *testing.T) {
	vs := func(weights ...any) configObject {
		var route []any
		for i, w := range weights {
			route = append(route, map[string]any{"destination": map[string]any{"host": "reviews", "subset": []string{"v1", "v2"}[i]}, "weight": w})
		}
		return configObject{kind: api.VirtualService, obj: &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
			"metadata": map[string]any{"name": "reviews", "namespace": "shop", "generation": int64(3), "uid": "x",
				"annotations": map[string]any{lastApplied: "{}", "team": "a"}},
			"spec":   map[string]any{"hosts": []any{"reviews"}, "http": []any{map[string]any{"route": route}}},
			"status": map[string]any{"observedGeneration": "3"},
		}}}
	}
	kept := map[api.Key]*api.Resource{}
	out, skips := translateConfig([]configObject{vs(int64(80), int64(20))}, kept)
	if len(skips) != 0 || len(out) != 1 {
		t.Fatalf("a valid resource: %v %v", out, skips)
	}
	if r := out[0]; r.Meta.Namespace != "shop" || len(r.Meta.Annotations) != 1 || r.Meta.Annotations["team"] != "a" || r.Kind != api.VirtualService {
		t.Fatalf("decoded %s with annotations %v", r, r.Meta.Annotations)
	}
	valid := out[0]

	out, skips = translateConfig([]configObject{vs(int64(0), int64(0))}, kept)
	if len(skips) != 1 || !strings.Contains(skips[0].Err.Error(), "its last valid version stays") || len(out) != 1 || out[0] != valid {
		t.Fatalf("an invalid edit: out %v, skips %v; want the last valid version and the reason", out, skips)
	}
	if _, skips = translateConfig(nil, kept); len(kept) != 0 || len(skips) != 0 {
		t.Fatalf("deleted: kept %v", kept)
	}
	if out, skips = translateConfig([]configObject{vs(int64(0), int64(0))}, kept); len(out) != 0 || len(skips) != 1 {
		t.Fatalf("invalid again after a deletion: out %v, want none", out)
	}
	if out, skips = translateConfig([]configObject{vs("heavy", int64(1))}, kept); len(out) != 0 || len(skips) != 1 || !strings.Contains(skips[0].Err.Error(), "weight") {
		t.Fatalf("a wrong type: out %v, skips %v", out, skips)
	}
}
