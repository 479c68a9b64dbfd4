package api

import "testing"

const httpSEPort = `ports: [{number: 80, name: http, protocol: HTTP}]`

func TestValidateRejectsInvalidServiceEntries(t *testing.T) {
	se := ServiceEntry
	runRejections(t, []rejection{
		{name: "no hosts", kind: se, spec: `{` + httpSEPort + `, resolution: DNS}`, field: "spec.hosts", reason: "required"},
		{name: "* alone", kind: se, spec: `{hosts: ["*"], ` + httpSEPort + `, resolution: NONE}`,
			field: "spec.hosts[0]", reason: `"*" alone is not allowed`},
		{name: "an invalid host", kind: se, spec: `{hosts: ["a_b.com"], ` + httpSEPort + `, resolution: DNS}`,
			field: "spec.hosts[0]", reason: `invalid host "a_b.com"`},
		{name: "an invalid address", kind: se, spec: `{hosts: [a.com], addresses: [10.0.0.300], ` + httpSEPort + `, resolution: NONE}`,
			field: "spec.addresses[0]", reason: `"10.0.0.300" is not a valid IP address`},
		{name: "an invalid CIDR", kind: se, spec: `{hosts: [a.com], addresses: [10.0.0.0/33], ` + httpSEPort + `, resolution: NONE}`,
			field: "spec.addresses[0]", reason: "is not a valid CIDR block"},
		{name: "a CIDR with DNS", kind: se, spec: `{hosts: [a.com], addresses: [10.0.0.0/24], ` + httpSEPort + `, resolution: DNS}`,
			field: "spec.addresses", reason: "CIDR blocks are only allowed with resolution NONE or STATIC, got DNS"},
		{name: "port 0", kind: se, spec: `{hosts: [a.com], ports: [{number: 0, name: http}], resolution: DNS}`,
			field: "spec.ports[0].number", reason: "must be 1-65535, got 0"},
		{name: "port 70000", kind: se, spec: `{hosts: [a.com], ports: [{number: 70000, name: http}], resolution: DNS}`,
			field: "spec.ports[0].number", reason: "must be 1-65535, got 70000"},
		{name: "a duplicate port number", kind: se, spec: `{hosts: [a.com], ports: [{number: 80, name: http}, {number: 80, name: web}], resolution: DNS}`,
			field: "spec.ports[1].number", reason: "duplicate port 80, also spec.ports[0]"},
		{name: "a duplicate port name", kind: se, spec: `{hosts: [a.com], ports: [{number: 80, name: http}, {number: 8080, name: http}], resolution: DNS}`,
			field: "spec.ports[1].name", reason: `duplicate port name "http"`},
		{name: "a port without a name", kind: se, spec: `{hosts: [a.com], ports: [{number: 80, protocol: HTTP}], resolution: DNS}`,
			field: "spec.ports[0].name", reason: "is not a valid port name"},
		{name: "an unknown protocol", kind: se, spec: `{hosts: [a.com], ports: [{number: 25, name: smtp, protocol: SMTP}], resolution: DNS}`,
			field: "spec.ports[0].protocol", reason: `unknown protocol "SMTP"`},
		{name: "a target port of 70000", kind: se, spec: `{hosts: [a.com], ports: [{number: 80, name: http, targetPort: 70000}], resolution: DNS}`,
			field: "spec.ports[0].targetPort", reason: "got 70000"},
		{name: "endpoints with NONE", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: NONE, endpoints: [{address: 10.0.0.1}]}`,
			field: "spec.endpoints", reason: "must not be set with resolution NONE"},
		{name: "a host name endpoint with STATIC", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC, endpoints: [{address: b.com}]}`,
			field: "spec.endpoints[0].address", reason: "as resolution STATIC requires"},
		{name: "an endpoint without an address", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC, endpoints: [{labels: {a: b}}]}`,
			field: "spec.endpoints[0].address", reason: "required unless network is set"},
		{name: "a wildcard host with DNS and no endpoints", kind: se, spec: `{hosts: ["*.a.com"], ` + httpSEPort + `, resolution: DNS}`,
			field: "spec.hosts[0]", reason: "needs endpoints with resolution DNS"},
		{name: "an invalid DNS endpoint", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: DNS, endpoints: [{address: "b_c.com"}]}`,
			field: "spec.endpoints[0].address", reason: "is not a host name or an IP address"},
		{name: "an endpoint port the entry does not declare", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC, endpoints: [{address: 10.0.0.1, ports: {grpc: 8080}}]}`,
			field: "spec.endpoints[0].ports[grpc]", reason: `port "grpc" is not one of the ServiceEntry's port names`},
		{name: "an endpoint port of 0", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC, endpoints: [{address: 10.0.0.1, ports: {http: 0}}]}`,
			field: "spec.endpoints[0].ports[http]", reason: "must be 1-65535, got 0"},
		{name: "invalid endpoint labels", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC, endpoints: [{address: 10.0.0.1, labels: {"a@b": c}}]}`,
			field: "spec.endpoints[0].labels", reason: `invalid label key "a@b"`},
		{name: "a unix endpoint with ports", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC, endpoints: [{address: "unix:///a.sock", ports: {http: 80}}]}`,
			field: "spec.endpoints[0].ports", reason: "must not be set for a unix socket endpoint"},
		{name: "a workload selector and endpoints", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC, workloadSelector: {labels: {app: a}}, endpoints: [{address: 10.0.0.1}]}`,
			field: "spec", reason: "must not set both workloadSelector and endpoints"},
		{name: "two endpoints with DNS_ROUND_ROBIN", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: DNS_ROUND_ROBIN, endpoints: [{address: b.com}, {address: c.com}]}`,
			field: "spec.endpoints", reason: "at most one endpoint is allowed with resolution DNS_ROUND_ROBIN"},
		{name: "endpoint weights overflowing", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC, endpoints: [{address: 10.0.0.1, weight: 4294967295}, {address: 10.0.0.2, weight: 2}]}`,
			field: "spec.endpoints", reason: "the sum of endpoint weights must be at most 4294967295"},
		{name: "several hosts on a TCP port", kind: se, spec: `{hosts: [a.com, b.com], ports: [{number: 3306, name: mysql, protocol: TCP}], resolution: DNS}`,
			field: "spec.ports[0]", reason: "a TCP port cannot tell 2 hosts apart"},
		{name: "an unknown resolution", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: MAGIC}`,
			field: "spec.resolution", reason: `unknown value "MAGIC"`},
		{name: "a workload selector wildcard", kind: se, spec: `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC, workloadSelector: {labels: {"*": a}}}`,
			field: `spec.workloadSelector.labels["*"]`, reason: "wildcards are not supported"},
	})
}

func TestValidateAcceptsServiceEntries(t *testing.T) {
	cases := []struct{ name, spec string }{
		{"DNS", `{hosts: [api.example.com], ports: [{number: 443, name: https, protocol: HTTPS}], location: MESH_EXTERNAL, resolution: DNS}`},
		{"DNS endpoints for a wildcard", `{hosts: ["*.example.com"], ` + httpSEPort + `, resolution: DNS, endpoints: [{address: proxy.example.com, ports: {http: 8080}}, {address: 10.0.0.1}]}`},
		{"STATIC endpoints", `{hosts: [db.internal], addresses: [10.1.0.0/16, 192.168.0.1], ports: [{number: 5432, name: pg, protocol: TCP, targetPort: 15432}],
			location: MESH_INTERNAL, resolution: STATIC, endpoints: [{address: 10.1.0.1, labels: {v: "1"}, weight: 8, locality: us/a}, {address: "2001:db8::1"}]}`},
		{"STATIC with a workload selector", `{hosts: [vm.internal], ` + httpSEPort + `, resolution: STATIC, workloadSelector: {labels: {app: vm}}}`},
		{"a unix socket", `{hosts: [local.sock], ` + httpSEPort + `, resolution: STATIC, endpoints: [{address: "unix:///var/run/a.sock"}]}`},
		{"NONE with a wildcard and CIDRs", `{hosts: ["*.bar.com"], addresses: [10.0.0.0/8], ` + httpSEPort + `, resolution: NONE}`},
		{"several hosts over HTTP", `{hosts: [a.com, b.com], ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}], resolution: DNS}`},
		{"several hosts with NONE", `{hosts: [a.com, b.com], ports: [{number: 5432, name: pg, protocol: TCP}], resolution: NONE}`},
		{"an endpoint on another network", `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC, endpoints: [{network: west}]}`},
		{"export to no one", `{hosts: [a.com], ` + httpSEPort + `, resolution: DNS, exportTo: ["~"]}`},
		{"dynamic DNS", `{hosts: ["*.example.com"], ` + httpSEPort + `, resolution: DYNAMIC_DNS}`},
		{"STATIC without endpoints (a service with none)", `{hosts: [a.com], ` + httpSEPort + `, resolution: STATIC}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustDecode(t, specDoc(ServiceEntry, tc.spec))
		})
	}
}
