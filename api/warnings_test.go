package api

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

// warnsAnnotation lists, on each document of testdata/warnings.yaml, the fields
// Warnings must name, " | " between them.
const warnsAnnotation = "test.navarch.dev/warns"

// TestWarnings: each document of testdata/warnings.yaml is valid, and warned of
// at exactly the fields its annotation lists. (istio_oracle_test.go holds the
// reasons to Istio's own.)
func TestWarnings(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "warnings.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rs, _, err := Decode("warnings.yaml", data, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) < 10 {
		t.Fatalf("%d documents decoded", len(rs))
	}
	for _, r := range rs {
		t.Run(r.Kind.Name+"/"+r.Meta.Name, func(t *testing.T) {
			var got []string
			for _, w := range Warnings(r) {
				if !strings.HasPrefix(w.Error(), r.Kind.Name+" "+r.Meta.Namespace+"/"+r.Meta.Name+": ") || w.Reason == "" {
					t.Errorf("warning %q does not name the resource and a reason", w)
				}
				got = append(got, w.Field)
			}
			want := strings.Split(r.Meta.Annotations[warnsAnnotation], " | ")
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("warned of %q, want %q", got, want)
				for _, w := range Warnings(r) {
					t.Log(w)
				}
			}
		})
	}
}

// TestUnreachableRules: the rule analysis by itself, with Istio's words.
func TestUnreachableRules(t *testing.T) {
	rs, _, err := Decode("vs.yaml", []byte(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{name: j, headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews}}]
  - match: [{headers: {end-user: {exact: jason}}}, {uri: {prefix: /a}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /ab}, method: {exact: GET}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /ab}, sourceLabels: {app: x}}]
    route: [{destination: {host: reviews}}]
`), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range UnreachableRules(rs[0].Spec.(*networking.VirtualService)) {
		got = append(got, f.Field+": "+f.Message())
	}
	want := []string{
		`spec.http[1].match[0]: virtualService rule #1 match #0 is not used (duplicate/overlapping match in rule "jason")`,
		`spec.http[2].match[0]: virtualService rule #2 match #0 of prefix /ab is not used (duplicate/overlapping match in rule #1 of prefix /a on #1)`,
		`spec.http[3].match[0]: virtualService rule #3 match #0 of prefix /ab is not used (duplicate/overlapping match in rule #1 of prefix /a on #1)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
