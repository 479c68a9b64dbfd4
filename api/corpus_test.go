package api

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	//lint:ignore SA1019 Istio decodes with the deprecated jsonpb; it is the oracle here
	"github.com/golang/protobuf/jsonpb"
	//lint:ignore SA1019 jsonpb needs v1 messages
	protov1 "github.com/golang/protobuf/proto"
	"google.golang.org/protobuf/proto"

	"github.com/navarch/navarch/internal/corpus"
)

// TestCorpusDecodes decodes and validates every file of Istio's config test corpus.
// Every one of them must be accepted, as Istio accepts them.
//
// Files Istio itself would reject under some of its decoders, accepted here because
// Istio's own config loader accepts them:
//
//   - rule-websocket-route.yaml sets http[].websocketUpgrade, a field removed from
//     HTTPRoute (its proto now lists websocket_upgrade as reserved). kubectl's strict
//     field validation against Istio's CRDs and istioctl's strict decoding reject it,
//     but Istio's ApplyJSON falls back to ignoring unknown fields, and WebSocket
//     upgrades are always allowed now. navarch accepts the reserved names of removed
//     fields and drops them; any other unknown field is an error.
func TestCorpusDecodes(t *testing.T) {
	// Kinds of documents in none.yaml that are Kubernetes', not mesh configuration.
	wantSkipped := map[string]int{"none.yaml": 3}
	for _, f := range corpus.Files(t) {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rs, skipped, err := Decode(name, data, "")
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(rs) == 0 {
				t.Errorf("no resources decoded")
			}
			if len(skipped) != wantSkipped[name] {
				t.Errorf("skipped %d documents, want %d: %+v", len(skipped), wantSkipped[name], skipped)
			}
			for _, s := range skipped {
				if s.Reason != ReasonNotMesh {
					t.Errorf("skipped %s %s with reason %q", s.Kind, s.Name, s.Reason)
				}
			}
			for _, r := range rs {
				if err := Validate(r); err != nil {
					t.Errorf("Validate: %v", err)
				}
				roundTrip(t, r)
			}
		})
	}
}

// roundTrip checks that a resource survives the JSON form the store keeps.
func roundTrip(t *testing.T, r *Resource) {
	t.Helper()
	data, err := r.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON %s: %v", r, err)
	}
	back, err := Unmarshal(data)
	if err != nil {
		t.Fatalf("Unmarshal %s: %v\n%s", r, err, data)
	}
	if back.Kind != r.Kind || back.Meta.Name != r.Meta.Name || back.Meta.Namespace != r.Meta.Namespace ||
		!proto.Equal(back.Spec, r.Spec) {
		t.Errorf("%s changed in a round trip through its stored form:\n%s", r, data)
	}
}

// TestCorpusDecodesLikeIstio decodes every spec of the corpus also with the decoder
// Istio uses (github.com/golang/protobuf/jsonpb, unknown fields ignored) and checks
// that both decoders build the same message.
func TestCorpusDecodesLikeIstio(t *testing.T) {
	for _, f := range corpus.Files(t) {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rs, _, err := Decode(name, data, "")
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			i := 0
			for _, doc := range splitDocuments(data) {
				obj, _ := doc.value.(map[string]any)
				apiVersion, _ := obj["apiVersion"].(string)
				kind, _ := obj["kind"].(string)
				k, ok := KindFor(apiVersion, kind)
				if !ok {
					continue
				}
				want := istioDecode(t, k, obj["spec"])
				if i >= len(rs) || !proto.Equal(rs[i].Spec, want) {
					t.Errorf("document %d: navarch and jsonpb decode differently", doc.number)
				}
				i++
			}
			if i != len(rs) {
				t.Errorf("compared %d specs, decoded %d resources", i, len(rs))
			}
		})
	}
}

// istioDecode decodes a spec the way Istio's file config loader does.
func istioDecode(t *testing.T, k *Kind, spec any) proto.Message {
	t.Helper()
	m := k.NewSpec()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	u := jsonpb.Unmarshaler{AllowUnknownFields: true}
	if err := u.Unmarshal(bytes.NewReader(js), protov1.MessageV1(m)); err != nil {
		t.Fatalf("jsonpb: %v", err)
	}
	return m
}
