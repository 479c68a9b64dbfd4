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

// TestAddedNodeSharesThePorts: a node added to a cluster whose nodes serve xDS, TLS
// and DNS on one port each, on their own IPs, takes those ports on the next IP they
// are free on; a cluster whose nodes have ports of their own gives it its own.
func TestAddedNodeSharesThePorts(t *testing.T) {
	c := &Cluster{cfg: Config{Dir: t.TempDir(), Nodes: 3}}
	nodes, err := c.plan()
	if err != nil {
		t.Fatal(err)
	}
	_, xdsPort, _ := net.SplitHostPort(nodes[0].XDS)
	if h, _, _ := net.SplitHostPort(nodes[1].XDS); h == "127.0.0.1" {
		t.Skip("this system binds no loopback address but 127.0.0.1: nodes have ports of their own")
	}
	taken, err := net.Listen("tcp", net.JoinHostPort("127.0.0.4", xdsPort))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p := &portPicker{}
	var n Node
	if !p.sharedWith(nodes, &n) {
		t.Fatalf("the added node got no shared ports: %+v", n)
	}
	p.release()
	for _, pair := range [][2]string{{n.XDS, nodes[0].XDS}, {n.XDSTLS, nodes[0].XDSTLS}, {n.DNS, nodes[0].DNS}} {
		h, port, _ := net.SplitHostPort(pair[0])
		_, want, _ := net.SplitHostPort(pair[1])
		if h != "127.0.0.5" || port != want {
			t.Errorf("added node serves on %s, want 127.0.0.5 (127.0.0.4 has the port taken) and port %s", pair[0], want)
		}
	}

	own := slices.Clone(nodes)
	own[1].XDS = net.JoinHostPort("127.0.0.1", "1")
	var m Node
	if p.sharedWith(own, &m) || m.XDS != "" {
		t.Errorf("nodes without shared ports: the added node got %+v", m)
	}
}
