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

func TestNodesGetTheirShareOfTheCores(t *testing.T) {
	env := []string{"HOME=/root"}
	for _, tc := range []struct {
		cpus, nodes int
		want        string
	}{{2, 3, "GOMAXPROCS=1"}, {8, 3, "GOMAXPROCS=2"}, {16, 1, "GOMAXPROCS=16"}, {4, 5, "GOMAXPROCS=1"}} {
		got := nodeEnv(env, tc.cpus, tc.nodes)
		if len(got) != 2 || got[1] != tc.want {
			t.Errorf("%d cores, %d nodes: %v, want %s added", tc.cpus, tc.nodes, got, tc.want)
		}
	}
	if got := nodeEnv([]string{"GOMAXPROCS=4"}, 2, 3); len(got) != 1 || got[0] != "GOMAXPROCS=4" {
		t.Errorf("a GOMAXPROCS of the environment is kept: %v", got)
	}
	if len(env) != 1 {
		t.Errorf("the environment given was changed: %v", env)
	}
}
