package api

import (
	"strings"
	"testing"
)

// The rules the oracle tests (istio_oracle_test.go) found navarch at odds with
// Istio on, one case each, so that they hold without the oracle too.

func TestValidateAcceptsWhatIstioAccepts(t *testing.T) {
	long := strings.Repeat("v", 64)
	cases := []struct {
		name string
		kind *Kind
		spec string
	}{
		{"any gateway selector", Gateway, `{selector: {"a b": "(x)"}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}`},
		{"selector values of any characters", PeerAuthentication, `{selector: {matchLabels: {app: "a b"}}, mtls: {mode: STRICT}}`},
		{"subset label values longer than 63", DestinationRule, `{host: a, subsets: [{name: v1, labels: {version: ` + long + `}}]}`},
		{"any service account", WorkloadEntry, `{address: 10.0.0.1, serviceAccount: "SA_1"}`},
		{"a JWT rule with only a jwksUri", RequestAuthentication, `{jwtRules: [{jwksUri: "https://a.com/jwks"}]}`},
		{"any payload header", RequestAuthentication, `{jwtRules: [{issuer: a, outputPayloadToHeader: "x payload"}]}`},
		{"a custom tag without a type", Telemetry, `{tracing: [{customTags: {env: {}}}]}`},
		{"a port-level setting on port 0", DestinationRule, `{host: a, trafficPolicy: {portLevelSettings: [{port: {number: 0}, tls: {mode: SIMPLE}}]}}`},
		{"tcp.idleTimeout 0s", DestinationRule, `{host: a, trafficPolicy: {connectionPool: {tcp: {idleTimeout: 0s}}}}`},
		{"a Maglev table of 1", DestinationRule, `{host: a, trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x, maglev: {tableSize: 1}}}}}`},
		{"a negative cookie ttl", DestinationRule, `{host: a, trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: c, ttl: -1s}}}}}`},
		{"header tokens and pseudo-headers in matches", VirtualService, `{hosts: [a], http: [{match: [{headers: {"x.trace": {exact: a}, ":path": {prefix: /}, "*": {exact: b}}}], route: [{destination: {host: a}}]}]}`},
		{"CORS \"*\" and token headers", VirtualService, `{hosts: [a], http: [{corsPolicy: {allowMethods: ["*"], allowHeaders: [x.y]}, route: [{destination: {host: a}}]}]}`},
		{"an empty delegate name", VirtualService, `{hosts: [a], http: [{delegate: {name: ""}}]}`},
		{"redirect port 0", VirtualService, `{hosts: [a], http: [{redirect: {port: 0}}]}`},
		{"gateway names after the first unqualified one", VirtualService, `{hosts: [a], gateways: [gw, "a b"], http: [{route: [{destination: {host: a}}]}]}`},
		{"STATIC without endpoints", ServiceEntry, `{hosts: [a.com], ports: [{number: 80, name: http}], resolution: STATIC}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustDecode(t, specDoc(tc.kind, tc.spec))
		})
	}
}

func TestValidateRejectsWhatIstioRejects(t *testing.T) {
	tlsPort := `port: {number: 443, name: https, protocol: HTTPS}`
	runRejections(t, []rejection{
		{name: "an enum by number", kind: PeerAuthentication, spec: `{mtls: {mode: 3}}`,
			field: "spec.mtls.mode", reason: "got number 3"},
		{name: "selector values longer than 63", kind: PeerAuthentication, spec: `{selector: {matchLabels: {app: ` + strings.Repeat("v", 64) + `}}}`,
			field: "spec.selector.matchLabels[app]", reason: "must be at most 63 characters"},
		{name: "an empty selector key", kind: Sidecar, spec: `{workloadSelector: {labels: {"": a}}}`,
			field: "spec.workloadSelector.labels", reason: "empty keys"},
		{name: "an empty jwksUri", kind: RequestAuthentication, spec: `{jwtRules: [{issuer: a, jwksUri: ""}]}`,
			field: "spec.jwtRules[0].jwksUri", reason: "must not be empty"},
		{name: "a targetPort of 0", kind: ServiceEntry, spec: `{hosts: [a.com], ports: [{number: 80, name: http, targetPort: 0}], resolution: DNS}`,
			field: "spec.ports[0].targetPort", reason: "must be 1-65535, got 0"},
		{name: "a DNS endpoint without an address", kind: ServiceEntry, spec: `{hosts: [a.com], ports: [{number: 80, name: http}], resolution: DNS, endpoints: [{network: west}]}`,
			field: "spec.endpoints[0].address", reason: "required with resolution DNS"},
		{name: "a wildcard service account", kind: AuthorizationPolicy, spec: `{rules: [{from: [{source: {serviceAccounts: ["shop/*"]}}]}]}`,
			field: "spec.rules[0].from[0].source.serviceAccounts[0]", reason: "wildcards are not allowed"},
		{name: "a service account with two slashes", kind: AuthorizationPolicy, spec: `{rules: [{from: [{source: {notServiceAccounts: [a/b/c]}}]}]}`,
			field: "spec.rules[0].from[0].source.notServiceAccounts[0]", reason: `must be "serviceAccount" or "namespace/serviceAccount"`},
		{name: "service accounts with namespaces", kind: AuthorizationPolicy, spec: `{rules: [{from: [{source: {serviceAccounts: [a], namespaces: [b]}}]}]}`,
			field: "spec.rules[0].from[0].source", reason: "must not set serviceAccounts together with principals or namespaces"},
		{name: "a claim header with a dot", kind: RequestAuthentication, spec: `{jwtRules: [{issuer: a, outputClaimToHeaders: [{header: x.sub, claim: sub}]}]}`,
			field: "spec.jwtRules[0].outputClaimToHeaders[0].header", reason: "invalid header name"},
		{name: "an empty space-delimited claim", kind: RequestAuthentication, spec: `{jwtRules: [{issuer: a, spaceDelimitedClaims: [""]}]}`,
			field: "spec.jwtRules[0].spaceDelimitedClaims[0]", reason: "empty"},
		{name: "a probe header with an underscore", kind: WorkloadGroup, spec: `{template: {}, probe: {httpGet: {port: 80, httpHeaders: [{name: A_B, value: x}]}}}`,
			field: "spec.probe.httpGet.httpHeaders[0]", reason: "invalid header name"},
		{name: "an empty exec command item", kind: WorkloadGroup, spec: `{template: {}, probe: {exec: {command: [/bin/check, ""]}}}`,
			field: "spec.probe.exec.command[1]", reason: "must not be empty"},
		{name: "sidecar ingress TLS on an HTTP port", kind: Sidecar, spec: `{ingress: [{port: {number: 8443, protocol: HTTP, name: web}, defaultEndpoint: "127.0.0.1:8080", tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}}]}`,
			field: "spec.ingress[0].tls", reason: "need an HTTPS or TLS port"},
		{name: "MUTUAL with tlsCertificates but no CA", kind: Gateway, spec: `{servers: [{` + tlsPort + `, hosts: ["*"], tls: {mode: MUTUAL, tlsCertificates: [{serverCertificate: /c.pem, privateKey: /k.pem}]}}]}`,
			field: "spec.servers[0].tls.caCertificates", reason: "required for MUTUAL TLS"},
	})
}
