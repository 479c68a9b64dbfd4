package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/navarch/navarch/bench"
)

// TestNodesSpreadTheirProxies: 60 proxies (simulated, Envoy-like: they reconnect to
// the next node of their list) all connect to n1; n1, far above its share, asks the
// excess to reconnect elsewhere until every node holds about a third.
func TestNodesSpreadTheirProxies(t *testing.T) {
	c := startCluster(t, 3, "--rebalance-interval", "2s")
	var targets []string
	for _, n := range c.Nodes() {
		targets = append(targets, n.XDS)
	}
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, t.TempDir(), "se.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: bench}
spec:
  hosts: [web.bench.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
`))
	f := bench.StartFleet(context.Background(), bench.FleetConfig{
		Proxies: 60, Targets: targets, Pinned: true, Mode: bench.Named, Namespace: "bench",
		Listeners: func(int) []string { return []string{"web.bench.svc.cluster.local:80"} },
	})
	defer f.Stop()
	most := 0
	eventually(t, 30*time.Second, "every proxy connected", func() error {
		by := f.ByTarget()
		most = max(most, by[targets[0]])
		if n := sum(by); n != 60 {
			return fmt.Errorf("%d connected", n)
		}
		return nil
	})
	if most < 40 {
		t.Fatalf("n1 held at most %d proxies; the test needs them to start on n1", most)
	}
	eventually(t, 60*time.Second, "the proxies spread over the three nodes", func() error {
		by := f.ByTarget()
		for _, target := range targets {
			if by[target] < 15 || by[target] > 25 {
				return fmt.Errorf("proxies per node %v", by)
			}
		}
		if sum(by) != 60 {
			return fmt.Errorf("%d connected", sum(by))
		}
		return nil
	})
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
