package api

import "testing"

// gwServer returns a Gateway spec with one server.
func gwServer(server string) string {
	return `{selector: {istio: ingressgateway}, servers: [` + server + `]}`
}

const httpPort = `port: {number: 80, name: http, protocol: HTTP}`
const httpsPort = `port: {number: 443, name: https, protocol: HTTPS}`

func TestValidateRejectsInvalidGateways(t *testing.T) {
	gw := Gateway
	runRejections(t, []rejection{
		{name: "no servers", kind: gw, spec: `{selector: {istio: ingressgateway}}`, field: "spec.servers", reason: "required"},
		{name: "port 0", kind: gw, spec: gwServer(`{port: {number: 0, name: http, protocol: HTTP}, hosts: ["*"]}`),
			field: "spec.servers[0].port.number", reason: "must be 1-65535, got 0"},
		{name: "port 70000", kind: gw, spec: gwServer(`{port: {number: 70000, name: http, protocol: HTTP}, hosts: ["*"]}`),
			field: "spec.servers[0].port.number", reason: "must be 1-65535, got 70000"},
		{name: "an unknown protocol", kind: gw, spec: gwServer(`{port: {number: 21, name: ftp, protocol: FTP}, hosts: ["*"]}`),
			field: "spec.servers[0].port.protocol", reason: `unknown protocol "FTP"`},
		{name: "no protocol", kind: gw, spec: gwServer(`{port: {number: 80, name: http}, hosts: ["*"]}`),
			field: "spec.servers[0].port.protocol", reason: `unknown protocol ""`},
		{name: "no port name", kind: gw, spec: gwServer(`{port: {number: 80, protocol: HTTP}, hosts: ["*"]}`),
			field: "spec.servers[0].port.name", reason: "required"},
		{name: "a target port", kind: gw, spec: gwServer(`{port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}, hosts: ["*"]}`),
			field: "spec.servers[0].port.targetPort", reason: "has no effect on a Gateway"},
		{name: "no port", kind: gw, spec: gwServer(`{hosts: ["*"]}`), field: "spec.servers[0].port", reason: "required"},
		{name: "no hosts", kind: gw, spec: gwServer(`{` + httpPort + `}`), field: "spec.servers[0].hosts", reason: "required"},
		{name: "an invalid host", kind: gw, spec: gwServer(`{` + httpPort + `, hosts: ["prod/foo_bar.com"]}`),
			field: "spec.servers[0].hosts[0]", reason: `invalid host "foo_bar.com"`},
		{name: "a short host", kind: gw, spec: gwServer(`{` + httpPort + `, hosts: [reviews]}`),
			field: "spec.servers[0].hosts[0]", reason: "short host names are not allowed"},
		{name: "an invalid namespace", kind: gw, spec: gwServer(`{` + httpPort + `, hosts: ["Prod_1/a.com"]}`),
			field: "spec.servers[0].hosts[0]", reason: `invalid namespace "Prod_1"`},
		{name: "an empty namespace", kind: gw, spec: gwServer(`{` + httpPort + `, hosts: ["/a.com"]}`),
			field: "spec.servers[0].hosts[0]", reason: "with neither empty"},
		{name: "a partial wildcard", kind: gw, spec: gwServer(`{` + httpPort + `, hosts: ["*foo.com"]}`),
			field: "spec.servers[0].hosts[0]", reason: "partial wildcard"},
		{name: "a tlsCertificates entry without a key", kind: gw, spec: gwServer(`{` + httpsPort + `, hosts: ["*"], tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /c.pem}]}}`),
			field: "spec.servers[0].tls.tlsCertificates[0].privateKey", reason: "required for SIMPLE TLS"},
		{name: "three credentialNames", kind: gw, spec: gwServer(`{` + httpsPort + `, hosts: ["*"], tls: {mode: SIMPLE, credentialNames: [a, b, c]}}`),
			field: "spec.servers[0].tls.credentialNames", reason: "must have at most 2 items, got 3"},
		{name: "empty credentialNames", kind: gw, spec: gwServer(`{` + httpsPort + `, hosts: ["*"], tls: {mode: SIMPLE, credentialName: a, credentialNames: []}}`),
			field: "spec.servers[0].tls.credentialNames", reason: "must not be empty"},
		{name: "SIMPLE without a certificate", kind: gw, spec: gwServer(`{` + httpsPort + `, hosts: ["*"], tls: {mode: SIMPLE, privateKey: /k.pem}}`),
			field: "spec.servers[0].tls.serverCertificate", reason: "required for SIMPLE TLS unless credentialName or tlsCertificates is set"},
		{name: "SIMPLE without a key", kind: gw, spec: gwServer(`{` + httpsPort + `, hosts: ["*"], tls: {mode: SIMPLE, serverCertificate: /c.pem}}`),
			field: "spec.servers[0].tls.privateKey", reason: "required for SIMPLE TLS"},
		{name: "MUTUAL without a CA", kind: gw, spec: gwServer(`{` + httpsPort + `, hosts: ["*"], tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}}`),
			field: "spec.servers[0].tls.caCertificates", reason: "required for MUTUAL TLS"},
		{name: "ISTIO_MUTUAL with a certificate", kind: gw, spec: gwServer(`{` + httpsPort + `, hosts: ["*"], tls: {mode: ISTIO_MUTUAL, serverCertificate: /c.pem}}`),
			field: "spec.servers[0].tls.serverCertificate", reason: "must not be set with ISTIO_MUTUAL"},
		{name: "a CRL with SIMPLE", kind: gw, spec: gwServer(`{` + httpsPort + `, hosts: ["*"], tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem}}`),
			field: "spec.servers[0].tls.caCrl", reason: "must not be set with SIMPLE TLS"},
		{name: "HTTPS without TLS settings", kind: gw, spec: gwServer(`{` + httpsPort + `, hosts: ["*"]}`),
			field: "spec.servers[0].tls", reason: "required for HTTPS servers"},
		{name: "TLS settings on HTTP", kind: gw, spec: gwServer(`{` + httpPort + `, hosts: ["*"], tls: {mode: SIMPLE, credentialName: cert}}`),
			field: "spec.servers[0].tls", reason: "an HTTP server can only set httpsRedirect"},
		{name: "TLS settings on TCP", kind: gw, spec: gwServer(`{port: {number: 31400, name: tcp, protocol: TCP}, hosts: ["*"], tls: {httpsRedirect: true}}`),
			field: "spec.servers[0].tls", reason: "must not be set for a TCP server"},
		{name: "duplicate port names", kind: gw, spec: gwServer(`{` + httpPort + `, hosts: [a.com]}, {port: {number: 8080, name: http, protocol: HTTP}, hosts: [b.com]}`),
			field: "spec.servers[1].port.name", reason: `duplicate port name "http", also spec.servers[0]`},
		{name: "an invalid bind address", kind: gw, spec: gwServer(`{` + httpPort + `, hosts: ["*"], bind: localhost}`),
			field: "spec.servers[0].bind", reason: `must be an IP address or unix:// socket path, got "localhost"`},
		{name: "a port number with a unix bind", kind: gw, spec: gwServer(`{port: {number: 80, name: http, protocol: HTTP}, bind: "unix:///gw.sock", hosts: ["*"]}`),
			field: "spec.servers[0].port.number", reason: "must be 0 for a unix socket bind, got 80"},
		{name: "a relative unix socket path", kind: gw, spec: gwServer(`{port: {number: 0, name: http, protocol: HTTP}, bind: "unix://relative.sock", hosts: ["*"]}`),
			field: "spec.servers[0].bind", reason: "must be an absolute path"},
		{name: "a name with a dot", doc: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: my.gateway}\nspec: " +
			gwServer(`{`+httpPort+`, hosts: ["*"]}`) + "\n", field: "metadata.name", reason: "must be a DNS-1123 label (no dots) for a Gateway"},
	})
}

func TestValidateAcceptsGateways(t *testing.T) {
	cases := []struct{ name, spec string }{
		{"an HTTPS redirect on HTTP", gwServer(`{` + httpPort + `, hosts: [uk.bookinfo.com], tls: {httpsRedirect: true}}`)},
		{"SIMPLE from files", gwServer(`{` + httpsPort + `, hosts: ["*"], tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}}`)},
		{"MUTUAL from a credential", gwServer(`{` + httpsPort + `, hosts: ["*.example.com"], tls: {mode: MUTUAL, credentialName: example-cert}}`)},
		{"ISTIO_MUTUAL", gwServer(`{port: {number: 15443, name: tls, protocol: TLS}, hosts: ["*.local"], tls: {mode: ISTIO_MUTUAL}}`)},
		{"PASSTHROUGH", gwServer(`{port: {number: 443, name: tls, protocol: TLS}, hosts: ["*"], tls: {mode: PASSTHROUGH}}`)},
		{"namespaced hosts", gwServer(`{` + httpPort + `, hosts: ["prod/a.example.com", "./b.example.com", "*/c.example.com", "*/*"]}`)},
		{"an IP host and bind", gwServer(`{` + httpPort + `, hosts: [10.0.0.1], bind: 10.0.0.1}`)},
		{"a unix socket", gwServer(`{port: {number: 0, name: http, protocol: HTTP}, bind: "unix:///var/run/gw.sock", hosts: ["*"]}`)},
		{"a lower-case protocol", gwServer(`{port: {number: 80, name: http, protocol: http}, hosts: ["*"]}`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustDecode(t, specDoc(Gateway, tc.spec))
		})
	}
}
