package api

import "testing"

func TestValidateRejectsInvalidSidecars(t *testing.T) {
	sc := Sidecar
	ingress := func(l string) string { return `{ingress: [` + l + `]}` }
	runRejections(t, []rejection{
		{name: "an empty sidecar", kind: sc, spec: `{}`, field: "spec", reason: "must set at least one of egress, ingress"},
		{name: "an egress host without a namespace", kind: sc, spec: `{egress: [{hosts: [foo.com]}]}`,
			field: "spec.egress[0].hosts[0]", reason: `"foo.com" must be of the form namespace/host`},
		{name: "an invalid egress host", kind: sc, spec: `{egress: [{hosts: ["prod/foo_bar.com"]}]}`,
			field: "spec.egress[0].hosts[0]", reason: `invalid host "foo_bar.com"`},
		{name: "a short egress host", kind: sc, spec: `{egress: [{hosts: ["prod/reviews"]}]}`,
			field: "spec.egress[0].hosts[0]", reason: "short host names are not allowed"},
		{name: "an invalid egress namespace", kind: sc, spec: `{egress: [{hosts: ["prod_1/a.com"]}]}`,
			field: "spec.egress[0].hosts[0]", reason: `invalid namespace "prod_1"`},
		{name: "a port-less egress listener before another", kind: sc, spec: `{egress: [{hosts: ["./*"]}, {hosts: ["*/*"]}]}`,
			field: "spec.egress[0]", reason: "the egress listener without a port must be the last one"},
		{name: "two port-less egress listeners", kind: sc, spec: `{egress: [{hosts: ["./*"]}, {port: {number: 80, protocol: HTTP}, hosts: ["./*"]}, {hosts: ["*/*"]}]}`,
			field: "spec.egress[2]", reason: "only one egress listener may omit the port"},
		{name: "an egress listener without hosts", kind: sc, spec: `{egress: [{port: {number: 80, protocol: HTTP, name: http}}]}`,
			field: "spec.egress[0].hosts", reason: "required"},
		{name: "duplicate egress ports", kind: sc, spec: `{egress: [{port: {number: 80}, hosts: ["./*"]}, {port: {number: 80}, hosts: ["*/*"]}]}`,
			field: "spec.egress[1].port.number", reason: "duplicate port 80"},
		{name: "egress port 0 without a unix socket", kind: sc, spec: `{egress: [{port: {number: 0}, hosts: ["./*"]}]}`,
			field: "spec.egress[0].bind", reason: "must be a unix:// socket path when the port number is 0"},
		{name: "an ingress listener without a port", kind: sc, spec: ingress(`{defaultEndpoint: "127.0.0.1:8080"}`),
			field: "spec.ingress[0].port", reason: "required"},
		{name: "an ingress port of 70000", kind: sc, spec: ingress(`{port: {number: 70000, protocol: HTTP, name: http}}`),
			field: "spec.ingress[0].port.number", reason: "must be 1-65535, got 70000"},
		{name: "duplicate ingress ports", kind: sc, spec: ingress(`{port: {number: 80, name: a}}, {port: {number: 80, name: b}}`),
			field: "spec.ingress[1].port.number", reason: "duplicate port 80"},
		{name: "an invalid ingress port name", kind: sc, spec: ingress(`{port: {number: 80, name: "http_1"}}`),
			field: "spec.ingress[0].port.name", reason: "is not a valid port name"},
		{name: "a default endpoint on another host", kind: sc, spec: ingress(`{port: {number: 80}, defaultEndpoint: "10.0.0.1:8080"}`),
			field: "spec.ingress[0].defaultEndpoint", reason: `host "10.0.0.1" of "10.0.0.1:8080" must be 127.0.0.1`},
		{name: "a default endpoint without a port", kind: sc, spec: ingress(`{port: {number: 80}, defaultEndpoint: localhost}`),
			field: "spec.ingress[0].defaultEndpoint", reason: "must be 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT"},
		{name: "a default endpoint on port 0", kind: sc, spec: ingress(`{port: {number: 80}, defaultEndpoint: "127.0.0.1:0"}`),
			field: "spec.ingress[0].defaultEndpoint", reason: "must be 1-65535, got 0"},
		{name: "ISTIO_MUTUAL on sidecar ingress", kind: sc, spec: ingress(`{port: {number: 443, protocol: HTTPS}, tls: {mode: ISTIO_MUTUAL}}`),
			field: "spec.ingress[0].tls.mode", reason: "ISTIO_MUTUAL is not supported on sidecar ingress"},
		{name: "an ingress bind that is not an IP", kind: sc, spec: ingress(`{port: {number: 80}, bind: localhost}`),
			field: "spec.ingress[0].bind", reason: "must be an IP address"},
		{name: "a wildcard workload selector", kind: sc, spec: `{workloadSelector: {labels: {app: "*"}}, egress: [{hosts: ["./*"]}]}`,
			field: "spec.workloadSelector.labels[app]", reason: "wildcards are not supported in selectors"},
		{name: "an egress proxy with REGISTRY_ONLY", kind: sc, spec: `{outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: proxy.example.com, port: {number: 3128}}}}`,
			field: "spec.outboundTrafficPolicy.egressProxy", reason: "may only be set with mode ALLOW_ANY"},
		{name: "an egress proxy without a port", kind: sc, spec: `{outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.example.com}}}`,
			field: "spec.outboundTrafficPolicy.egressProxy.port", reason: "required"},
	})
}

func TestValidateRejectsInvalidWorkloads(t *testing.T) {
	we, wg := WorkloadEntry, WorkloadGroup
	runRejections(t, []rejection{
		{name: "no address", kind: we, spec: `{labels: {app: a}}`, field: "spec.address", reason: "required unless network is set"},
		{name: "an invalid address", kind: we, spec: `{address: "a_b"}`, field: "spec.address", reason: `"a_b" is not an IP address, a host name or a unix:// socket path`},
		{name: "a relative unix socket", kind: we, spec: `{address: "unix://a.sock"}`, field: "spec.address", reason: "must be an absolute path"},
		{name: "ports on a unix socket", kind: we, spec: `{address: "unix:///a.sock", ports: {http: 80}}`, field: "spec.ports", reason: "must not be set for a unix socket"},
		{name: "port 0", kind: we, spec: `{address: 10.0.0.1, ports: {http: 0}}`, field: "spec.ports[http]", reason: "must be 1-65535, got 0"},
		{name: "port 70000", kind: we, spec: `{address: 10.0.0.1, ports: {http: 70000}}`, field: "spec.ports[http]", reason: "must be 1-65535, got 70000"},
		{name: "an invalid port name", kind: we, spec: `{address: 10.0.0.1, ports: {http_1: 80}}`, field: "spec.ports[http_1]", reason: "is not a valid port name"},
		{name: "invalid labels", kind: we, spec: `{address: 10.0.0.1, labels: {app: "a b"}}`, field: "spec.labels[app]", reason: "invalid label value"},
		{name: "a negative weight", kind: we, spec: `{address: 10.0.0.1, weight: -1}`, field: "spec.weight", reason: "must not be negative"},
		{name: "no template", kind: wg, spec: `{metadata: {labels: {app: a}}}`, field: "spec.template", reason: "required"},
		{name: "a template port of 0", kind: wg, spec: `{template: {ports: {http: 0}}}`, field: "spec.template.ports[http]", reason: "got 0"},
		{name: "invalid group labels", kind: wg, spec: `{metadata: {labels: {"-a": b}}, template: {}}`, field: "spec.metadata.labels", reason: `invalid label key "-a"`},
		{name: "a negative probe period", kind: wg, spec: `{template: {}, probe: {periodSeconds: -1, tcpSocket: {port: 80}}}`,
			field: "spec.probe.periodSeconds", reason: "must not be negative, got -1"},
		{name: "a probe without a method", kind: wg, spec: `{template: {}, probe: {periodSeconds: 5}}`,
			field: "spec.probe", reason: "one of httpGet, tcpSocket and exec is required"},
		{name: "a gRPC probe, which Istio refuses", kind: wg, spec: `{template: {}, probe: {grpc: {port: 9090, service: health}}}`,
			field: "spec.probe.grpc", reason: "is not supported by Istio"},
		{name: "an HTTP probe on port 0", kind: wg, spec: `{template: {}, probe: {httpGet: {path: /ready, port: 0}}}`,
			field: "spec.probe.httpGet.port", reason: "must be 1-65535, got 0"},
		{name: "an HTTP probe scheme", kind: wg, spec: `{template: {}, probe: {httpGet: {port: 80, scheme: FTP}}}`,
			field: "spec.probe.httpGet.scheme", reason: `must be HTTP or HTTPS, got "FTP"`},
		{name: "an exec probe without a command", kind: wg, spec: `{template: {}, probe: {exec: {}}}`,
			field: "spec.probe.exec.command", reason: "required"},
		{name: "two probe methods", kind: wg, spec: `{template: {}, probe: {exec: {command: [a]}, tcpSocket: {port: 80}}}`,
			field: "spec.probe.tcpSocket", reason: "only one of"},
	})
}

func TestValidateAcceptsSidecarsAndWorkloads(t *testing.T) {
	cases := []struct {
		name string
		kind *Kind
		spec string
	}{
		{"a sidecar of every listener kind", Sidecar, `{workloadSelector: {labels: {app: web}},
			ingress: [{port: {number: 9080, protocol: HTTP, name: http}, defaultEndpoint: "127.0.0.1:8080"},
				{port: {number: 9090, protocol: TCP}, defaultEndpoint: "unix:///var/run/app.sock"},
				{port: {number: 9091}, defaultEndpoint: "[::1]:9091"}, {port: {number: 9092}, defaultEndpoint: "0.0.0.0:9092"}],
			egress: [{port: {number: 0}, bind: "unix:///var/run/egress.sock", captureMode: NONE, hosts: ["*/*"]},
				{port: {number: 3306, protocol: MYSQL, name: mysql}, bind: 127.0.0.1, hosts: ["*/mysql.example.com"]},
				{hosts: ["./*", "istio-system/*", "~/*"]}],
			outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.example.com, port: {number: 3128}}}}`},
		{"a sidecar with only an inbound pool", Sidecar, `{inboundConnectionPool: {http: {http1MaxPendingRequests: 1024}}}`},
		{"a workload entry", WorkloadEntry, `{address: vm1.example.com, ports: {http: 8080, grpc: 9090}, labels: {app: vm, version: v1},
			network: west, locality: us/a/b, weight: 5, serviceAccount: vm-sa}`},
		{"a workload entry on another network", WorkloadEntry, `{network: west}`},
		{"a workload entry on IPv6", WorkloadEntry, `{address: "2001:db8::5"}`},
		{"a workload group", WorkloadGroup, `{metadata: {labels: {app: vm}, annotations: {example.com/owner: team}},
			template: {ports: {http: 8080}, serviceAccount: vm-sa, network: west},
			probe: {initialDelaySeconds: 5, periodSeconds: 10, httpGet: {path: /ready, port: 8080, scheme: HTTPS, httpHeaders: [{name: x-probe, value: "1"}]}}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustDecode(t, specDoc(tc.kind, tc.spec))
		})
	}
}
