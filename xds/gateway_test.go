package xds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTranslateGateway compares what an ingress gateway gets for
// testdata/inputs/gateway.yaml with its golden file, and checks the servers it must
// leave out are reported: one naming a credential, one mixing HTTP into a TCP port.
func TestTranslateGateway(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, string(data))
	gw := &Proxy{ID: "router~10.0.0.2~ingress.edge~edge.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.2",
		Namespace: "edge", Labels: map[string]string{"istio": "ingressgateway"}}
	sets, err := profileFor(gw).build(newContext(snap, gw, "cluster.local", "istio-system"))
	for _, want := range []string{"edge/ingress.4: credentialName", "edge/other.0: port 9000: cannot share the port with edge/ingress.3"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("build error %v, want it to report %q", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 2 { // once each, though listeners and routes both use the servers
		t.Errorf("%d errors reported, want 2: %v", n, err)
	}
	checkGolden(t, filepath.Join("testdata", "gateway.golden.yaml"), dump(t, sets))
}
