package api

import (
	"strings"
	"testing"
)

func TestDecodeRejectsMalformedDocuments(t *testing.T) {
	vs := `{hosts: [a], http: [{route: [{destination: {host: a}}]}]}`
	meta := func(metadata string) string {
		return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: " + metadata + "\nspec: {host: a}\n"
	}
	runRejections(t, []rejection{
		{name: "unknown field", kind: VirtualService, spec: `{hosts: [a], http: [{rout: [{destination: {host: a}}]}]}`,
			field: "spec.http[0].rout", reason: `unknown field "rout"; did you mean "route"?`},
		{name: "unknown top-level spec field", kind: DestinationRule, spec: `{host: a, subset: []}`,
			field: "spec.subset", reason: `unknown field "subset"`},
		{name: "a string for a number", kind: VirtualService, spec: `{hosts: [a], http: [{route: [{destination: {host: a}, weight: ten}]}]}`,
			field: "spec.http[0].route[0].weight", reason: `must be an integer, got string "ten"`},
		{name: "a quoted number", kind: VirtualService, spec: `{hosts: [a], http: [{route: [{destination: {host: a}, weight: "10"}]}]}`,
			field: "spec.http[0].route[0].weight", reason: `must be an integer, got string "10"`},
		{name: "a fraction for an integer", kind: VirtualService, spec: `{hosts: [a], http: [{route: [{destination: {host: a}, weight: 1.5}]}]}`,
			field: "spec.http[0].route[0].weight", reason: "must be an integer"},
		{name: "a negative unsigned number", kind: VirtualService, spec: `{hosts: [a], http: [{match: [{port: -1}], route: [{destination: {host: a}}]}]}`,
			field: "spec.http[0].match[0].port", reason: "must not be negative, got -1"},
		{name: "an int32 overflow", kind: VirtualService, spec: `{hosts: [a], http: [{route: [{destination: {host: a}, weight: 3000000000}]}]}`,
			field: "spec.http[0].route[0].weight", reason: "out of range"},
		{name: "a string for a list", kind: VirtualService, spec: `{hosts: a, http: [{route: [{destination: {host: a}}]}]}`,
			field: "spec.hosts", reason: `must be a list, got string "a"`},
		{name: "a list for an object", kind: DestinationRule, spec: `{host: a, trafficPolicy: [a]}`,
			field: "spec.trafficPolicy", reason: "must be an object, got a list"},
		{name: "a number for a string", kind: DestinationRule, spec: `{host: 5}`,
			field: "spec.host", reason: "must be a string, got number 5"},
		{name: "a number for a boolean", kind: DestinationRule, spec: `{host: a, trafficPolicy: {connectionPool: {http: {useClientProtocol: 1}}}}`,
			field: "spec.trafficPolicy.connectionPool.http.useClientProtocol", reason: "must be true or false"},
		{name: "a null list element", kind: VirtualService, spec: `{hosts: [a, null], http: [{route: [{destination: {host: a}}]}]}`,
			field: "spec.hosts[1]", reason: "must not be null"},
		{name: "a oneof set twice", kind: VirtualService, spec: `{hosts: [a], http: [{match: [{uri: {exact: /a, prefix: /b}}], route: [{destination: {host: a}}]}]}`,
			field: "spec.http[0].match[0].uri.prefix", reason: `only one of exact, prefix, regex may be set, and "exact" is set already`},
		{name: "a field under both its names", kind: VirtualService, spec: `{hosts: [a], exportTo: ["."], export_to: ["*"], http: [{route: [{destination: {host: a}}]}]}`,
			field: "spec.exportTo", reason: "set twice"},
		{name: "an unknown enum value", kind: DestinationRule, spec: `{host: a, trafficPolicy: {loadBalancer: {simple: FASTEST}}}`,
			field: "spec.trafficPolicy.loadBalancer.simple", reason: `unknown value "FASTEST", must be one of UNSPECIFIED, LEAST_CONN, RANDOM`},
		{name: "an enum by number", kind: DestinationRule, spec: `{host: a, trafficPolicy: {loadBalancer: {simple: 4}}}`,
			field: "spec.trafficPolicy.loadBalancer.simple", reason: "must be one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST, got number 4"},
		{name: "a duration without a unit", kind: VirtualService, spec: `{hosts: [a], http: [{timeout: "5", route: [{destination: {host: a}}]}]}`,
			field: "spec.http[0].timeout", reason: `invalid duration "5"`},
		{name: "a duration as a number", kind: VirtualService, spec: `{hosts: [a], http: [{timeout: 5, route: [{destination: {host: a}}]}]}`,
			field: "spec.http[0].timeout", reason: "must be a duration string"},
		{name: "a wrapper of the wrong type", kind: VirtualService, spec: `{hosts: [a], http: [{retries: {attempts: 1, retryRemoteLocalities: yes please}, route: [{destination: {host: a}}]}]}`,
			field: "spec.http[0].retries.retryRemoteLocalities", reason: "must be true or false"},
		{name: "a map key of the wrong type", kind: PeerAuthentication, spec: `{selector: {matchLabels: {app: a}}, portLevelMtls: {http: {mode: STRICT}}}`,
			field: "spec.portLevelMtls[http]", reason: `key "http" is not a valid integer`},
		{name: "an unknown top-level field", doc: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspecs: {host: a}\n",
			field: "specs", reason: `unknown field "specs"`},
		{name: "a missing kind", doc: "apiVersion: networking.istio.io/v1\nmetadata: {name: a}\n", field: "kind", reason: "required"},
		{name: "a missing apiVersion", doc: "kind: VirtualService\nmetadata: {name: a}\n", field: "apiVersion", reason: "required"},
		{name: "a kind no Istio group has (a misspelling)", doc: "apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: a}\n",
			field: "kind", reason: `"VirtualServce" of networking.istio.io is not served by navarch; served kinds: DestinationRule, EnvoyFilter, Gateway`},
		{name: "a version Istio does not serve", doc: "apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: a}\nspec: " + vs + "\n",
			field: "apiVersion", reason: `VirtualService is not served as "networking.istio.io/v2"; served: networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3`},
		{name: "an apiVersion without a version", doc: "apiVersion: networking.istio.io\nkind: VirtualService\nmetadata: {name: a}\n",
			field: "apiVersion", reason: `VirtualService is not served as "networking.istio.io"`},
		{name: "a kind under another Istio group", doc: "apiVersion: networking.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\n",
			field: "kind", reason: `"PeerAuthentication" of networking.istio.io is not served`},
		{name: "a security kind under an old version", doc: "apiVersion: security.istio.io/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: a}\n",
			field: "apiVersion", reason: "served: security.istio.io/v1, security.istio.io/v1beta1"},
		{name: "no name", doc: meta("{namespace: prod}"), field: "metadata.name", reason: "required"},
		{name: "no metadata", doc: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nspec: {host: a}\n", field: "metadata.name", reason: "required"},
		{name: "an upper-case name", doc: meta("{name: Reviews}"), field: "metadata.name", reason: `"Reviews" must be a DNS-1123 subdomain`},
		{name: "a name too long", doc: meta("{name: " + strings.Repeat("a", 254) + "}"), field: "metadata.name", reason: "must be a DNS-1123 subdomain"},
		{name: "a namespace with a dot", doc: meta("{name: a, namespace: prod.eu}"), field: "metadata.namespace", reason: `"prod.eu" must be a DNS-1123 label`},
		{name: "a name that is not a string", doc: meta("{name: [a]}"), field: "metadata.name", reason: "must be a string, got a list"},
		{name: "an invalid label key", doc: meta("{name: a, labels: {\"a b\": c}}"), field: "metadata.labels", reason: `invalid label key "a b"`},
		{name: "an invalid label prefix", doc: meta("{name: a, labels: {\"Example.com/a\": c}}"), field: "metadata.labels", reason: `prefix "Example.com" must be a DNS-1123 subdomain`},
		{name: "an invalid label value", doc: meta("{name: a, labels: {app: \"-web\"}}"), field: "metadata.labels[app]", reason: `invalid label value "-web"`},
		{name: "a label value too long", doc: meta("{name: a, labels: {app: " + strings.Repeat("a", 64) + "}}"), field: "metadata.labels[app]", reason: "at most 63 characters"},
		{name: "a label value that is not a string", doc: meta("{name: a, labels: {version: 1}}"), field: "metadata.labels[version]", reason: "must be a string, got number 1"},
		{name: "an invalid annotation key", doc: meta("{name: a, annotations: {\"a/b/c\": d}}"), field: "metadata.annotations", reason: `invalid annotation key "a/b/c"`},
		{name: "an unknown metadata field", doc: meta("{name: a, nmespace: b}"), field: "metadata.nmespace", reason: `unknown field "nmespace"`},
		{name: "a malformed resourceVersion", doc: meta("{name: a, resourceVersion: abc}"), field: "metadata.resourceVersion", reason: "must be a revision number"},
		{name: "invalid YAML", doc: "apiVersion: [networking\n", field: "", reason: "invalid YAML"},
		{name: "duplicate YAML keys", doc: "apiVersion: a\napiVersion: b\n", field: "", reason: "invalid YAML"},
		{name: "a document that is a list", doc: "- a\n- b\n", field: "", reason: "a document must be an object with apiVersion and kind, got a list"},
		{name: "a List in a List", doc: "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: []}]\n",
			field: "items", reason: "must not contain another List"},
		{name: "a List whose items are not a list", doc: "apiVersion: v1\nkind: List\nitems: {a: b}\n", field: "items", reason: "must be a list"},
		{name: "a dry-run annotation on another kind", doc: meta("{name: a, annotations: {istio.io/dry-run: \"true\"}}"),
			field: "metadata.annotations[istio.io/dry-run]", reason: "only supported on AuthorizationPolicy"},
	})
}

func TestDocumentErrorText(t *testing.T) {
	cases := []struct {
		name string
		err  DocumentError
		want string
	}{
		{"everything", DocumentError{Source: "a.yaml", Document: 2, Item: -1, Resource: "Gateway ns/gw", Field: "spec.servers", Reason: "required"},
			"a.yaml: document 2: Gateway ns/gw: spec.servers: required"},
		{"a List item", DocumentError{Source: "a.yaml", Document: 1, Item: 3, Resource: "Gateway ns/gw", Reason: "bad"},
			"a.yaml: document 1: items[3]: Gateway ns/gw: bad"},
		{"from Validate", DocumentError{Item: -1, Resource: "Gateway ns/gw", Field: "spec.servers", Reason: "required"},
			"Gateway ns/gw: spec.servers: required"},
		{"a document-level problem", DocumentError{Source: "stdin", Document: 4, Item: -1, Reason: "invalid YAML: x"},
			"stdin: document 4: invalid YAML: x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
