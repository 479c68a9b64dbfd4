package xds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// TestTranslateGateway compares what an ingress gateway gets for
// testdata/inputs/gateway.yaml with its golden file, checks the server it must leave
// out is reported (one mixing HTTP into a TCP port), and that a credential's
// certificate and CA are asked for by SDS.
func TestTranslateGateway(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, string(data))
	gw := &Proxy{ID: "router~10.0.0.2~ingress.edge~edge.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.2",
		Namespace: "edge", Labels: map[string]string{"istio": "ingressgateway"}}
	sets, err := profileFor(gw).build(newContext(snap, gw, "cluster.local", "istio-system"))
	want := "edge/other.0: port 9000: cannot share the port with edge/ingress.3"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("build error %v, want it to report %q", err, want)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 1 { // once, though listeners and routes both use the servers
		t.Errorf("%d errors reported, want 1: %v", n, err)
	}
	// The credential's certificate and CA come by SDS under Istio's names.
	var l listenerv3.Listener
	if err := sets[ListenerType].ByName["0.0.0.0_8443"].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	var dtls tlsv3.DownstreamTlsContext
	if err := l.FilterChains[0].TransportSocket.GetTypedConfig().UnmarshalTo(&dtls); err != nil {
		t.Fatal(err)
	}
	common := dtls.CommonTlsContext
	if got := common.TlsCertificateSdsSecretConfigs[0].GetName(); got != "kubernetes://shop-cert" {
		t.Errorf("certificate by SDS %q", got)
	}
	if got := common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName(); got != "kubernetes://shop-cert-cacert" || !dtls.RequireClientCertificate.GetValue() {
		t.Errorf("client certificates checked against %q (required: %v)", got, dtls.RequireClientCertificate.GetValue())
	}
	checkGolden(t, filepath.Join("testdata", "gateway.golden.yaml"), dump(t, sets))
}
