package api

import "testing"

// drPolicy returns a DestinationRule spec for host a with the given trafficPolicy.
func drPolicy(policy string) string { return `{host: a, trafficPolicy: ` + policy + `}` }

func TestValidateRejectsInvalidDestinationRules(t *testing.T) {
	dr := DestinationRule
	tp := "spec.trafficPolicy"
	runRejections(t, []rejection{
		{name: "no host", kind: dr, spec: `{subsets: [{name: v1}]}`, field: "spec.host", reason: "required"},
		{name: "an invalid host", kind: dr, spec: `{host: "a..b"}`, field: "spec.host", reason: `invalid host "a..b"`},
		{name: "duplicate subset names", kind: dr, spec: `{host: a, subsets: [{name: v1, labels: {version: v1}}, {name: v1, labels: {version: v2}}]}`,
			field: "spec.subsets[1].name", reason: `duplicate subset name "v1"`},
		{name: "a subset without a name", kind: dr, spec: `{host: a, subsets: [{labels: {version: v1}}]}`,
			field: "spec.subsets[0].name", reason: "required"},
		{name: "a subset name with a dot", kind: dr, spec: `{host: a, subsets: [{name: v1.0}]}`,
			field: "spec.subsets[0].name", reason: `"v1.0" is not a valid subset name`},
		{name: "an invalid subset label value", kind: dr, spec: `{host: a, subsets: [{name: v1, labels: {version: "a b"}}]}`,
			field: "spec.subsets[0].labels[version]", reason: `invalid label value "a b"`},
		{name: "an error in a subset's traffic policy", kind: dr, spec: `{host: a, subsets: [{name: v1, trafficPolicy: {connectionPool: {tcp: {maxConnections: -5}}}}]}`,
			field: "spec.subsets[0].trafficPolicy.connectionPool.tcp.maxConnections", reason: "must not be negative, got -5"},
		{name: "an empty traffic policy", kind: dr, spec: drPolicy(`{}`), field: tp, reason: "must set at least one field"},
		{name: "a cookie without a name", kind: dr, spec: drPolicy(`{loadBalancer: {consistentHash: {httpCookie: {ttl: 0s}}}}`),
			field: tp + ".loadBalancer.consistentHash.httpCookie.name", reason: "required"},
		{name: "two hash keys", kind: dr, spec: drPolicy(`{loadBalancer: {consistentHash: {httpHeaderName: x-user, useSourceIp: true}}}`),
			field: tp + ".loadBalancer.consistentHash.useSourceIp", reason: "only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName may be set"},
		{name: "simple and consistent hash", kind: dr, spec: drPolicy(`{loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}`),
			field: tp + ".loadBalancer.simple", reason: `only one of simple, consistentHash may be set, and "consistentHash" is set already`},
		{name: "a maglev table that is not prime", kind: dr, spec: drPolicy(`{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 100}}}}`),
			field: tp + ".loadBalancer.consistentHash.maglev.tableSize", reason: "must be a prime number, got 100"},
		{name: "minimumRingSize with ringHash", kind: dr, spec: drPolicy(`{loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 1024, ringHash: {minimumRingSize: 1024}}}}`),
			field: tp + ".loadBalancer.consistentHash", reason: "must not set both minimumRingSize and ringHash"},
		{name: "a sub-millisecond outlier interval", kind: dr, spec: drPolicy(`{outlierDetection: {interval: 500us}}`),
			field: tp + ".outlierDetection.interval", reason: "must be at least 1ms"},
		{name: "a zero base ejection time", kind: dr, spec: drPolicy(`{outlierDetection: {baseEjectionTime: 0s}}`),
			field: tp + ".outlierDetection.baseEjectionTime", reason: "must be at least 1ms, got 0s"},
		{name: "maxEjectionPercent above 100", kind: dr, spec: drPolicy(`{outlierDetection: {maxEjectionPercent: 101}}`),
			field: tp + ".outlierDetection.maxEjectionPercent", reason: "must be 0-100, got 101"},
		{name: "a negative minHealthPercent", kind: dr, spec: drPolicy(`{outlierDetection: {minHealthPercent: -1}}`),
			field: tp + ".outlierDetection.minHealthPercent", reason: "must be 0-100, got -1"},
		{name: "local origin failures without splitting", kind: dr, spec: drPolicy(`{outlierDetection: {consecutiveLocalOriginFailures: 5}}`),
			field: tp + ".outlierDetection.consecutiveLocalOriginFailures", reason: "splitExternalLocalOriginErrors"},
		{name: "an empty connection pool", kind: dr, spec: drPolicy(`{connectionPool: {}}`),
			field: tp + ".connectionPool", reason: "must set tcp or http"},
		{name: "negative max connections", kind: dr, spec: drPolicy(`{connectionPool: {tcp: {maxConnections: -1}}}`),
			field: tp + ".connectionPool.tcp.maxConnections", reason: "must not be negative, got -1"},
		{name: "negative http2MaxRequests", kind: dr, spec: drPolicy(`{connectionPool: {http: {http2MaxRequests: -3}}}`),
			field: tp + ".connectionPool.http.http2MaxRequests", reason: "must not be negative, got -3"},
		{name: "a zero connect timeout", kind: dr, spec: drPolicy(`{connectionPool: {tcp: {connectTimeout: 0s}}}`),
			field: tp + ".connectionPool.tcp.connectTimeout", reason: "must be at least 1ms"},
		{name: "a zero idle timeout", kind: dr, spec: drPolicy(`{connectionPool: {http: {idleTimeout: 0ms}}}`),
			field: tp + ".connectionPool.http.idleTimeout", reason: "must be at least 1ms"},
		{name: "client protocol with upgrade", kind: dr, spec: drPolicy(`{connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}`),
			field: tp + ".connectionPool.http.useClientProtocol", reason: "must not be true when h2UpgradePolicy is UPGRADE"},
		{name: "MUTUAL without a client certificate", kind: dr, spec: drPolicy(`{tls: {mode: MUTUAL, privateKey: /k.pem}}`),
			field: tp + ".tls.clientCertificate", reason: "required for MUTUAL TLS unless credentialName is set"},
		{name: "MUTUAL without a private key", kind: dr, spec: drPolicy(`{tls: {mode: MUTUAL, clientCertificate: /c.pem}}`),
			field: tp + ".tls.privateKey", reason: "required for MUTUAL TLS"},
		{name: "certificates with a credential name", kind: dr, spec: drPolicy(`{tls: {mode: SIMPLE, credentialName: c, caCertificates: /ca.pem}}`),
			field: tp + ".tls", reason: "must not set clientCertificate, privateKey, caCertificates or caCrl when credentialName is set"},
		{name: "insecureSkipVerify with a CA", kind: dr, spec: drPolicy(`{tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}}`),
			field: tp + ".tls", reason: "insecureSkipVerify"},
		{name: "a port level setting without a port", kind: dr, spec: drPolicy(`{portLevelSettings: [{tls: {mode: SIMPLE}}]}`),
			field: tp + ".portLevelSettings[0].port", reason: "required"},
		{name: "warmup without a duration", kind: dr, spec: drPolicy(`{loadBalancer: {warmup: {aggression: 2}}}`),
			field: tp + ".loadBalancer.warmup.duration", reason: "required"},
		{name: "an empty port level setting", kind: dr, spec: drPolicy(`{portLevelSettings: [{port: {number: 80}}]}`),
			field: tp + ".portLevelSettings[0]", reason: "must set at least one of"},
		{name: "locality weights not adding up", kind: dr, spec: drPolicy(`{loadBalancer: {localityLbSetting: {distribute: [{from: "us/*", to: {"us/a/*": 60, "us/b/*": 30}}]}}}`),
			field: tp + ".loadBalancer.localityLbSetting.distribute[0].to", reason: "weights must add up to 100, got 90"},
		{name: "distribute and failover", kind: dr, spec: drPolicy(`{loadBalancer: {localityLbSetting: {distribute: [{from: us, to: {eu: 100}}], failover: [{from: us, to: eu}]}}}`),
			field: tp + ".loadBalancer.localityLbSetting", reason: "must not set both distribute and failover"},
		{name: "failover to the same region", kind: dr, spec: drPolicy(`{loadBalancer: {localityLbSetting: {failover: [{from: us, to: us}]}}, outlierDetection: {interval: 1s}}`),
			field: tp + ".loadBalancer.localityLbSetting.failover[0]", reason: "must be different regions"},
		{name: "overlapping localities", kind: dr, spec: drPolicy(`{loadBalancer: {localityLbSetting: {distribute: [{from: "us/*", to: {eu: 100}}, {from: us/a, to: {eu: 100}}]}}}`),
			field: tp + ".loadBalancer.localityLbSetting.distribute", reason: `localities "us/*" and "us/a" overlap`},
		{name: "a bad tunnel protocol", kind: dr, spec: drPolicy(`{tunnel: {protocol: GET, targetHost: proxy.example.com, targetPort: 8080}}`),
			field: tp + ".tunnel.protocol", reason: `must be CONNECT or POST, got "GET"`},
		{name: "tunnel and proxy protocol", kind: dr, spec: drPolicy(`{tunnel: {targetHost: 10.0.0.1, targetPort: 8080}, proxyProtocol: {version: V2}}`),
			field: tp, reason: "must not set both tunnel and proxyProtocol"},
		{name: "exporting a workload-scoped rule elsewhere", kind: dr, spec: `{host: a, workloadSelector: {matchLabels: {app: a}}, exportTo: [other]}`,
			field: "spec.exportTo[0]", reason: "can only be exported to its own namespace"},
		{name: "a wildcard workload selector", kind: dr, spec: `{host: a, workloadSelector: {matchLabels: {app: "web-*"}}}`,
			field: "spec.workloadSelector.matchLabels[app]", reason: "wildcards are not supported in selectors"},
	})
}

func TestValidateAcceptsDestinationRules(t *testing.T) {
	cases := []struct{ name, spec string }{
		{"no traffic policy", `{host: reviews.prod.svc.cluster.local}`},
		{"a wildcard host", `{host: "*.example.com", trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}}`},
		{"a consistent hash without a key, as Istio accepts", drPolicy(`{loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 1024}}}}`)},
		{"maglev", drPolicy(`{loadBalancer: {consistentHash: {httpQueryParameterName: user, maglev: {tableSize: 65537}}}}`)},
		{"MUTUAL from a credential", drPolicy(`{tls: {mode: MUTUAL, credentialName: client-cert, sni: a.example.com}}`)},
		{"MUTUAL from files", drPolicy(`{tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}}`)},
		{"locality weights", drPolicy(`{loadBalancer: {localityLbSetting: {distribute: [{from: "us/a/*", to: {"us/a/*": 80, "us/b/*": 20}}]}}}`)},
		{"locality failover", drPolicy(`{loadBalancer: {localityLbSetting: {failover: [{from: us, to: eu}]}}, outlierDetection: {consecutive5xxErrors: 5, interval: 10s}}`)},
		{"every connection pool setting", drPolicy(`{connectionPool: {tcp: {maxConnections: 100, connectTimeout: 30ms, tcpKeepalive: {time: 7200s, interval: 75s}},
			http: {http2MaxRequests: 1000, maxRequestsPerConnection: 10, idleTimeout: 1h, h2UpgradePolicy: UPGRADE}}}`)},
		{"port level settings", drPolicy(`{portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: LEAST_REQUEST}}, {port: {number: 443}, tls: {mode: ISTIO_MUTUAL}}]}`)},
		{"a tunnel", drPolicy(`{tunnel: {protocol: CONNECT, targetHost: egress.example.com, targetPort: 8443}}`)},
		{"subsets with policies", `{host: a, subsets: [{name: v1, labels: {version: v1}}, {name: V2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}]}`},
		{"a workload selector exported to its namespace", `{host: a, workloadSelector: {matchLabels: {app: a}}, exportTo: ["."]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustDecode(t, specDoc(DestinationRule, tc.spec))
		})
	}
}
