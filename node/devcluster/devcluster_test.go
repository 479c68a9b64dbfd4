package devcluster

import (
	"net"
	"slices"
	"testing"
)

// TestPlanGivesEveryNodeItsOwnPorts: a planned cluster's addresses never collide,
// and every node joins through the first node's gossip address.
func TestPlanGivesEveryNodeItsOwnPorts(t *testing.T) {
	c := &Cluster{cfg: Config{Dir: t.TempDir(), Nodes: 5}}
	nodes, err := c.plan()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, n := range nodes {
		for what, addr := range map[string]string{"http": n.HTTP, "gossip": n.Gossip, "etcd client": n.EtcdClient,
			"etcd peer": n.EtcdPeer, "xds": n.XDS, "xds tls": n.XDSTLS, "dns": n.DNS} {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				t.Fatalf("%s %s: %q", n.Name, what, addr)
			}
			if other, dup := seen[addr]; dup {
				t.Fatalf("%s %s and %s share %s", n.Name, what, other, addr)
			}
			seen[addr] = n.Name + " " + what
		}
		if i := slices.Index(n.Args, "--join"); i < 0 || n.Args[i+1] != nodes[0].Gossip {
			t.Fatalf("%s does not join through n1: %v", n.Name, n.Args)
		}
	}
}
