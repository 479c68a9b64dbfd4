package main

import (
	"strings"
	"testing"

	"github.com/navarch/navarch/api"
)

// -o jsonpath= prints through kubectl's JSONPath: over a List for get <kind>, over
// the resource for get <kind> <name>, a template without braces taken whole.
func TestGetJSONPath(t *testing.T) {
	rs, _, err := api.Decode("vs.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}, weight: 80}, {destination: {host: reviews, subset: v2}, weight: 20}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec: {hosts: [ratings], http: [{route: [{destination: {host: ratings}}]}]}
`), "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		format string
		single bool
		want   string
	}{
		{"jsonpath={.spec.http[0].route[*].weight}", true, "80 20"},
		{"jsonpath=.metadata.namespace", true, "default"},
		{`jsonpath={range .items[*]}{.metadata.name}={.spec.hosts[0]}{"\n"}{end}`, false, "reviews=reviews\nratings=ratings\n"},
	} {
		var b strings.Builder
		items := rs
		if c.single {
			items = rs[:1]
		}
		if err := printResources(&b, items, c.format, false, c.single); err != nil || b.String() != c.want {
			t.Errorf("%s: %q %v, want %q", c.format, b.String(), err, c.want)
		}
	}
	if err := printResources(&strings.Builder{}, rs, "jsonpath={.items[", false, false); err == nil || !strings.Contains(err.Error(), "-o jsonpath") {
		t.Errorf("a bad template: %v", err)
	}
}
