package api

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/navarch/navarch/internal/corpus"
)

// FuzzDecode feeds arbitrary bytes to Decode and DecodeKeys, which must never
// panic. Whatever Decode accepts must also pass Validate and survive the JSON form
// the store keeps.
func FuzzDecode(f *testing.F) {
	for _, spec := range minimalSpecs {
		f.Add([]byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: " + spec + "\n"))
	}
	for _, k := range Kinds() {
		f.Add([]byte(specDoc(k, minimalSpecs[k.Name])))
	}
	f.Add([]byte(`{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "networking.istio.io/v1", "kind": "Gateway"}]}`))
	f.Add([]byte("---\n--- {a: [\n...\n"))
	if files, err := filepath.Glob(filepath.Join(corpus.Dir, "*.yaml")); err == nil {
		for _, name := range files {
			if data, err := os.ReadFile(name); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, _, err := Decode("fuzz.yaml", data, "")
		if err != nil && rs != nil {
			t.Fatalf("Decode returned resources with an error")
		}
		for _, r := range rs {
			if err := Validate(r); err != nil {
				t.Fatalf("Decode accepted %s, which Validate rejects: %v", r, err)
			}
			roundTrip(t, r)
		}
		keys, _, kerr := DecodeKeys("fuzz.yaml", data, "")
		if err == nil && kerr != nil {
			t.Fatalf("Decode accepted what DecodeKeys rejects: %v", kerr)
		}
		if err == nil && len(keys) != len(rs) {
			t.Fatalf("DecodeKeys found %d keys, Decode %d resources", len(keys), len(rs))
		}
	})
}
