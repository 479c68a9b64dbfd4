package main

import (
	"strings"
	"testing"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
)

// The table of a watch keeps its columns as wide as the widest value so far, with
// the event first; -o name says the event and the resource.
func TestEventPrinter(t *testing.T) {
	rs, _, err := api.Decode("vs.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-much-longer-name}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
`), "default")
	if err != nil {
		t.Fatal(err)
	}
	print := func(format string, fit bool) string {
		var b strings.Builder
		p, err := newEventPrinter(&b, format, false)
		if err != nil {
			t.Fatal(err)
		}
		if fit {
			p.fit(client.WatchAdded, rs[0])
		}
		for i, typ := range []string{client.WatchAdded, client.WatchDeleted} {
			if err := p.print(client.WatchEvent{Type: typ}, rs[i]); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	want := `EVENT      KIND             NAME      SUMMARY         AGE
ADDED      VirtualService   reviews   hosts=reviews   -
DELETED    VirtualService   a-much-longer-name   hosts=reviews   -
`
	if got := print("", true); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if got := print("name", false); got != "ADDED virtualservice.networking.istio.io/reviews\nDELETED virtualservice.networking.istio.io/a-much-longer-name\n" {
		t.Errorf("-o name:\n%s", got)
	}
	if _, err := newEventPrinter(&strings.Builder{}, "wide-ish", false); err == nil {
		t.Error("an unknown format was taken")
	}
}
