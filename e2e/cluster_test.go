package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const ratingsTarget = "xds:///reviews.default.svc.cluster.local:9080"

// TestClusterFailover: three nodes, grpc-go clients spread over them; the node with
// most clients is killed with SIGKILL. RPCs keep flowing, its clients move to the
// survivors, a change applied on a survivor reaches every client, and the killed
// node, restarted, rejoins and serves the same versions as the others.
func TestClusterFailover(t *testing.T) {
	c := startCluster(t, 3)
	v1, v2 := startReviews(t)
	dir := t.TempDir()
	writeFile(t, dir, "workloads.yaml", workloadsYAML(v1, v2))
	writeFile(t, dir, "vs.yaml", splitVS(100, 0))
	mustNodeCLI(t, c, "n1", "apply", "-f", dir)

	var clients []*trafficClient
	for i := 0; i < 6; i++ {
		node := c.Names()[i%3]
		clients = append(clients, startTraffic(t, grpcBootstrapFrom(t, c, node), ratingsTarget))
	}
	for i, tc := range clients {
		eventually(t, 30*time.Second, fmt.Sprintf("client %d on v1", i), func() error { return tc.settledOn("v1") })
	}
	busiest := ""
	eventually(t, 15*time.Second, "gossip counts all six clients", func() error {
		ms, err := membersSeenBy(c, "n1")
		if err != nil {
			return err
		}
		total, most := 0, -1
		for _, m := range ms {
			total += m.Proxies
			if m.Proxies > most {
				most, busiest = m.Proxies, m.Name
			}
		}
		if total != 6 {
			return fmt.Errorf("members report %d proxies: %+v", total, ms)
		}
		return nil
	})
	for _, tc := range clients {
		tc.resetFailures()
	}

	t.Logf("killing %s, the node with most clients", busiest)
	if err := c.Kill(busiest); err != nil {
		t.Fatal(err)
	}
	survivor := ""
	for _, n := range c.Names() {
		if n != busiest {
			survivor = n
			break
		}
	}
	eventually(t, 30*time.Second, "every client reconnected to a survivor", survivorsHold(c, survivor, busiest, 6))

	for i, tc := range clients {
		if failed, total := tc.resetFailures(); len(failed) > 0 {
			t.Errorf("client %d: %v of %d RPCs failed while a node died; the data plane must not notice", i, failed, total)
		}
	}

	// A change applied on a survivor reaches every client. (grpc-go may fail an RPC
	// that is in flight when its cluster is replaced; failures are not counted here.)
	// --wait counts the clients of both survivors (the killed node does not answer).
	if out := mustNodeCLI(t, c, survivor, "apply", "--wait", "-f", writeFile(t, dir, "vs.yaml", splitVS(0, 100))); !strings.Contains(out, "taken by 6 of 6 proxies (2 nodes") {
		t.Fatalf("apply --wait printed %q, want all six clients counted on the two survivors", out)
	}
	for i, tc := range clients {
		eventually(t, 30*time.Second, fmt.Sprintf("client %d on v2", i), func() error { return tc.settledOn("v2") })
	}

	if err := c.Restart(busiest); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(t.Context(), busiest); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, busiest+" back as a voting member", func() error {
		ms, err := membersSeenBy(c, busiest)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Gossip != "alive" || (m.Etcd != "leader" && m.Etcd != "follower") {
				return fmt.Errorf("%+v", ms)
			}
		}
		if len(ms) != 3 {
			return fmt.Errorf("%d members: %+v", len(ms), ms)
		}
		return nil
	})
	eventually(t, 30*time.Second, "every node serves identical versions at the same revision",
		identicalEverywhere(c, "outbound|9080|v2|reviews.default.svc.cluster.local"))
}
