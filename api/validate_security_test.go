package api

import "testing"

// apRule returns an ALLOW AuthorizationPolicy spec with one rule.
func apRule(rule string) string {
	return `{selector: {matchLabels: {app: web}}, rules: [` + rule + `]}`
}

func TestValidateRejectsInvalidSecurityPolicies(t *testing.T) {
	pa, ap := PeerAuthentication, AuthorizationPolicy
	runRejections(t, []rejection{
		{name: "port level mTLS without a selector", kind: pa, spec: `{mtls: {mode: STRICT}, portLevelMtls: {8080: {mode: DISABLE}}}`,
			field: "spec.portLevelMtls", reason: "requires a selector with matchLabels"},
		{name: "port level mTLS on port 0", kind: pa, spec: `{selector: {matchLabels: {app: a}}, portLevelMtls: {0: {mode: DISABLE}}}`,
			field: "spec.portLevelMtls[0]", reason: "must be 1-65535, got 0"},
		{name: "port level mTLS on port 70000", kind: pa, spec: `{selector: {matchLabels: {app: a}}, portLevelMtls: {70000: {mode: DISABLE}}}`,
			field: "spec.portLevelMtls[70000]", reason: "must be 1-65535, got 70000"},
		{name: "an unknown mTLS mode", kind: pa, spec: `{mtls: {mode: STRICTEST}}`, field: "spec.mtls.mode", reason: `unknown value "STRICTEST"`},
		{name: "a wildcard selector label", kind: pa, spec: `{selector: {matchLabels: {app: "web-*"}}, mtls: {mode: STRICT}}`,
			field: "spec.selector.matchLabels[app]", reason: "wildcards are not supported in selectors"},
		{name: "an empty portLevelMtls", kind: pa, spec: `{selector: {matchLabels: {app: web}}, portLevelMtls: {}}`,
			field: "spec.portLevelMtls", reason: "must set at least one port"},
		{name: "CUSTOM without a provider", kind: ap, spec: `{action: CUSTOM, rules: [{}]}`,
			field: "spec.provider.name", reason: "required with action CUSTOM"},
		{name: "CUSTOM without rules", kind: ap, spec: `{action: CUSTOM, provider: {name: ext-authz}}`,
			field: "spec.rules", reason: "required with action CUSTOM"},
		{name: "a provider without CUSTOM", kind: ap, spec: `{action: DENY, provider: {name: ext-authz}, rules: [{}]}`,
			field: "spec.provider", reason: "may only be set with action CUSTOM, got DENY"},
		{name: "DENY without rules", kind: ap, spec: `{action: DENY}`,
			field: "spec.rules", reason: "required with action DENY"},
		{name: "an invalid CIDR", kind: ap, spec: apRule(`{from: [{source: {ipBlocks: [10.0.0.0/40]}}]}`),
			field: "spec.rules[0].from[0].source.ipBlocks[0]", reason: `"10.0.0.0/40" is not a valid CIDR block`},
		{name: "an invalid IP", kind: ap, spec: apRule(`{from: [{source: {notRemoteIpBlocks: [abc]}}]}`),
			field: "spec.rules[0].from[0].source.notRemoteIpBlocks[0]", reason: `"abc" is not a valid IP address`},
		{name: "an empty principal", kind: ap, spec: apRule(`{from: [{source: {principals: [""]}}]}`),
			field: "spec.rules[0].from[0].source.principals[0]", reason: "must not be empty"},
		{name: "an empty source", kind: ap, spec: apRule(`{from: [{source: {}}]}`),
			field: "spec.rules[0].from[0].source", reason: "must set at least one field"},
		{name: "a from without a source", kind: ap, spec: apRule(`{from: [{}]}`),
			field: "spec.rules[0].from[0].source", reason: "required"},
		{name: "a named port", kind: ap, spec: apRule(`{to: [{operation: {ports: [http]}}]}`),
			field: "spec.rules[0].to[0].operation.ports[0]", reason: `must be a port number 0-65535, got "http"`},
		{name: "port 70000", kind: ap, spec: apRule(`{to: [{operation: {notPorts: ["70000"]}}]}`),
			field: "spec.rules[0].to[0].operation.notPorts[0]", reason: `got "70000"`},
		{name: "an empty method", kind: ap, spec: apRule(`{to: [{operation: {methods: [GET, ""]}}]}`),
			field: "spec.rules[0].to[0].operation.methods[1]", reason: "must not be empty"},
		{name: "an empty operation", kind: ap, spec: apRule(`{to: [{operation: {}}]}`),
			field: "spec.rules[0].to[0].operation", reason: "must set at least one field"},
		{name: "a named path variable", kind: ap, spec: apRule(`{to: [{operation: {paths: ["/{name}/{*}"]}}]}`),
			field: "spec.rules[0].to[0].operation.paths[0]", reason: "unsupported path template"},
		{name: "an unknown condition key", kind: ap, spec: apRule(`{when: [{key: request.foo, values: [a]}]}`),
			field: "spec.rules[0].when[0].key", reason: `unknown attribute "request.foo"`},
		{name: "a header condition without brackets", kind: ap, spec: apRule(`{when: [{key: request.headers, values: [a]}]}`),
			field: "spec.rules[0].when[0].key", reason: "must have the form name[key]"},
		{name: "a condition without values", kind: ap, spec: apRule(`{when: [{key: source.ip}]}`),
			field: "spec.rules[0].when[0]", reason: `one of values and notValues is required for key "source.ip"`},
		{name: "a condition with an invalid IP", kind: ap, spec: apRule(`{when: [{key: source.ip, values: [10.0.0.256]}]}`),
			field: "spec.rules[0].when[0].values[0]", reason: "is not a valid IP address"},
		{name: "a condition with an invalid port", kind: ap, spec: apRule(`{when: [{key: destination.port, notValues: ["99999"]}]}`),
			field: "spec.rules[0].when[0].notValues[0]", reason: "must be a port number"},
		{name: "a replaced condition key", kind: ap, spec: apRule(`{when: [{key: "destination.labels[app]", values: [a]}]}`),
			field: "spec.rules[0].when[0].key", reason: "use the policy's selector"},
		{name: "CUSTOM with namespaces", kind: ap, spec: `{action: CUSTOM, provider: {name: ext}, rules: [{from: [{source: {namespaces: [prod]}}]}]}`,
			field: "spec.rules[0].from[0].source.namespaces", reason: "is not supported with action CUSTOM"},
		{name: "CUSTOM with a principal condition", kind: ap, spec: `{action: CUSTOM, provider: {name: ext}, rules: [{when: [{key: source.principal, values: [a]}]}]}`,
			field: "spec.rules[0].when[0].key", reason: "is not supported with action CUSTOM"},
		{name: "a selector and a targetRef", kind: ap, spec: `{selector: {matchLabels: {app: a}}, targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}}`,
			field: "spec", reason: "only one of selector, targetRef and targetRefs may be set"},
		{name: "a targetRef to a Deployment", kind: ap, spec: `{targetRefs: [{kind: Deployment, group: apps, name: web}]}`,
			field: "spec.targetRefs[0]", reason: "must refer to a Service"},
		{name: "a targetRef across namespaces", kind: ap, spec: `{targetRef: {kind: Service, name: web, namespace: other}}`,
			field: "spec.targetRef.namespace", reason: "must not be set"},
		{name: "a dry-run annotation that is not a boolean", doc: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n" +
			"metadata: {name: a, annotations: {istio.io/dry-run: maybe}}\nspec: {action: DENY, rules: [{}]}\n",
			field: "metadata.annotations[istio.io/dry-run]", reason: `must be true or false, got "maybe"`},
	})
}

func TestValidateRejectsInvalidRequestAuthentications(t *testing.T) {
	ra := RequestAuthentication
	runRejections(t, []rejection{
		{name: "a JWT rule without an issuer or a jwksUri", kind: ra, spec: `{jwtRules: [{jwks: "{}"}]}`,
			field: "spec.jwtRules[0].issuer", reason: "required unless jwksUri is set"},
		{name: "an empty issuer", kind: ra, spec: `{jwtRules: [{issuer: "", jwksUri: "https://a.com/jwks"}]}`,
			field: "spec.jwtRules[0].issuer", reason: "must not be empty"},
		{name: "a JWKS URI that is not HTTP", kind: ra, spec: `{jwtRules: [{issuer: a, jwksUri: "ftp://a.com/jwks"}]}`,
			field: "spec.jwtRules[0].jwksUri", reason: `must be an http or https URL, got "ftp://a.com/jwks"`},
		{name: "a relative JWKS URI", kind: ra, spec: `{jwtRules: [{issuer: a, jwksUri: /jwks}]}`,
			field: "spec.jwtRules[0].jwksUri", reason: "must be an http or https URL"},
		{name: "an inline JWKS that is not JSON", kind: ra, spec: `{jwtRules: [{issuer: a, jwks: "not json"}]}`,
			field: "spec.jwtRules[0].jwks", reason: "must be a JSON Web Key Set"},
		{name: "a header location without a name", kind: ra, spec: `{jwtRules: [{issuer: a, fromHeaders: [{prefix: "Bearer "}]}]}`,
			field: "spec.jwtRules[0].fromHeaders[0].name", reason: "required"},
		{name: "an empty audience", kind: ra, spec: `{jwtRules: [{issuer: a, audiences: [""]}]}`,
			field: "spec.jwtRules[0].audiences[0]", reason: "must not be empty"},
		{name: "a claim header without a claim", kind: ra, spec: `{jwtRules: [{issuer: a, outputClaimToHeaders: [{header: x-sub}]}]}`,
			field: "spec.jwtRules[0].outputClaimToHeaders[0]", reason: "claim and header are both required"},
		{name: "a zero JWKS fetch timeout", kind: ra, spec: `{jwtRules: [{issuer: a, timeout: 0s}]}`,
			field: "spec.jwtRules[0].timeout", reason: "must be at least 1ms"},
	})
}

func TestValidateRejectsInvalidTelemetry(t *testing.T) {
	tm := Telemetry
	runRejections(t, []rejection{
		{name: "a provider without a name", kind: tm, spec: `{tracing: [{providers: [{}]}]}`,
			field: "spec.tracing[0].providers[0].name", reason: "required"},
		{name: "sampling above 100 percent", kind: tm, spec: `{tracing: [{randomSamplingPercentage: 150}]}`,
			field: "spec.tracing[0].randomSamplingPercentage", reason: "must be 0-100, got 150"},
		{name: "negative sampling", kind: tm, spec: `{tracing: [{randomSamplingPercentage: -0.5}]}`,
			field: "spec.tracing[0].randomSamplingPercentage", reason: "got -0.5"},
		{name: "an empty literal tag", kind: tm, spec: `{tracing: [{customTags: {env: {literal: {value: ""}}}}]}`,
			field: "spec.tracing[0].customTags[env].literal.value", reason: "required"},
		{name: "a metrics provider without a name", kind: tm, spec: `{metrics: [{providers: [{name: ""}]}]}`,
			field: "spec.metrics[0].providers[0].name", reason: "required"},
		{name: "an upsert without a value", kind: tm, spec: `{metrics: [{overrides: [{tagOverrides: {foo: {operation: UPSERT}}}]}]}`,
			field: "spec.metrics[0].overrides[0].tagOverrides[foo].value", reason: "required when operation is UPSERT"},
		{name: "a remove with a value", kind: tm, spec: `{metrics: [{overrides: [{tagOverrides: {foo: {operation: REMOVE, value: x}}}]}]}`,
			field: "spec.metrics[0].overrides[0].tagOverrides[foo].value", reason: "must not be set when operation is REMOVE"},
		{name: "an access log provider without a name", kind: tm, spec: `{accessLogging: [{providers: [{}]}]}`,
			field: "spec.accessLogging[0].providers[0].name", reason: "required"},
		{name: "an access log filter that is not CEL", kind: tm, spec: `{accessLogging: [{filter: {expression: "response.code >="}}]}`,
			field: "spec.accessLogging[0].filter.expression", reason: "must be a CEL expression"},
		{name: "a selector and targetRefs", kind: tm, spec: `{selector: {matchLabels: {app: a}}, targetRefs: [{kind: Service, name: a}]}`,
			field: "spec", reason: "only one of selector, targetRef and targetRefs"},
	})
}

func TestValidateAcceptsSecurityAndTelemetry(t *testing.T) {
	cases := []struct {
		name string
		kind *Kind
		spec string
	}{
		{"mesh-wide mTLS", PeerAuthentication, `{mtls: {mode: PERMISSIVE}}`},
		{"port level mTLS", PeerAuthentication, `{selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}, portLevelMtls: {5432: {mode: DISABLE}}}`},
		{"allow nothing", AuthorizationPolicy, `{}`},
		{"deny everything", AuthorizationPolicy, `{action: DENY, rules: [{}]}`},
		{"a full rule", AuthorizationPolicy, apRule(`{from: [{source: {principals: [cluster.local/ns/prod/sa/web], notNamespaces: [dev],
			ipBlocks: [10.0.0.0/8, 192.168.1.1], requestPrincipals: ["*"]}}], to: [{operation: {hosts: [a.com], ports: ["8080"],
			methods: [GET], paths: ["/api/*", "/files/{**}"]}}], when: [{key: "request.headers[x-token]", values: [a]},
			{key: "request.auth.claims[groups]", values: [admin]}, {key: destination.port, values: ["443"]}, {key: source.ip, notValues: [10.1.0.0/16]}]}`)},
		{"CUSTOM", AuthorizationPolicy, `{action: CUSTOM, provider: {name: ext-authz}, rules: [{to: [{operation: {paths: [/admin]}}]}]}`},
		{"a dry run", AuthorizationPolicy, `{action: DENY, rules: [{to: [{operation: {methods: [DELETE]}}]}]}`},
		{"a targetRef", AuthorizationPolicy, `{targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}, rules: [{}]}`},
		{"JWT rules", RequestAuthentication, `{selector: {matchLabels: {app: web}}, jwtRules: [{issuer: "https://accounts.example.com",
			audiences: [web], jwksUri: "https://accounts.example.com/.well-known/jwks.json", fromHeaders: [{name: x-jwt, prefix: "Bearer "}],
			fromParams: [token], outputPayloadToHeader: x-jwt-payload, outputClaimToHeaders: [{header: x-sub, claim: sub}], forwardOriginalToken: true,
			jwks: '{"keys": []}', timeout: 5s}]}`},
		{"telemetry", Telemetry, `{selector: {matchLabels: {app: web}}, tracing: [{providers: [{name: zipkin}], randomSamplingPercentage: 0.5,
			customTags: {env: {environment: {name: ENV, defaultValue: dev}}, team: {literal: {value: mesh}}}}],
			metrics: [{providers: [{name: prometheus}], overrides: [{match: {metric: REQUEST_COUNT, mode: CLIENT_AND_SERVER},
				tagOverrides: {request_host: {operation: REMOVE}, team: {value: "'mesh'"}}}]}],
			accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >= 400"}},
				{filter: {expression: "request.headers['x-debug'] == 'on' && connection.mtls"}}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustDecode(t, specDoc(tc.kind, tc.spec))
		})
	}
}
