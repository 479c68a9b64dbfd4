package api

import (
	"strings"
	"testing"
)

// specDoc returns a YAML document of kind k, named "x" in namespace "ns", with the
// given spec written in YAML flow style ("{hosts: [a]}").
func specDoc(k *Kind, spec string) string {
	return "apiVersion: " + k.APIVersion() + "\nkind: " + k.Name + "\nmetadata:\n  name: x\n  namespace: ns\nspec: " + spec + "\n"
}

// rejection is one invalid input and the problem it must be reported with.
type rejection struct {
	name   string
	kind   *Kind
	spec   string // a flow-style YAML spec; or
	doc    string // a whole document, when the metadata matters
	field  string // the field path the error must name
	reason string // a substring of the reason
}

// runRejections decodes every case and checks that the error names the field and
// the reason, in the error text as well as in the *DocumentError.
func runRejections(t *testing.T, cases []rejection) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc
			if doc == "" {
				doc = specDoc(tc.kind, tc.spec)
			}
			rs, _, err := Decode("test.yaml", []byte(doc), "")
			if rs != nil {
				t.Errorf("Decode returned %d resources with an error", len(rs))
			}
			wantProblem(t, err, tc.field, tc.reason)
		})
	}
}

// wantProblem fails unless err reports reason for field.
func wantProblem(t *testing.T, err error, field, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s: ...%s...", field, reason)
	}
	for _, de := range DocumentErrors(err) {
		if de.Field == field && strings.Contains(de.Reason, reason) && strings.Contains(de.Error(), field+": ") {
			return
		}
	}
	t.Fatalf("want an error naming %q with reason containing %q, got:\n%v", field, reason, err)
}

// mustDecode decodes a document that must be valid and returns its one resource.
func mustDecode(t *testing.T, doc string) *Resource {
	t.Helper()
	rs, _, err := Decode("test.yaml", []byte(doc), "")
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(rs) != 1 {
		t.Fatalf("Decode returned %d resources, want 1", len(rs))
	}
	return rs[0]
}
