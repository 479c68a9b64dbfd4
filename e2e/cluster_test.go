package e2e

import (
	"fmt"
	"regexp"
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
	c, dir, clients := startClusterWithTraffic(t, 6)
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
	// proxy-status through one node lists the proxies of all three, each with the
	// node serving it, and proxy-config finds a proxy served by another node.
	ps := mustNodeCLI(t, c, "n1", "proxy-status")
	rows := regexp.MustCompile(`(?m)^(\S+)\s+(n[123])\s+sotw\s`).FindAllStringSubmatch(ps, -1)
	servedBy := map[string]int{}
	for _, r := range rows {
		servedBy[r[2]]++
	}
	ms, err := membersSeenBy(c, "n1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if servedBy[m.Name] != m.Proxies {
			t.Errorf("proxy-status lists %d proxies on %s, which counts %d", servedBy[m.Name], m.Name, m.Proxies)
		}
	}
	if len(rows) != 6 || len(servedBy) < 2 {
		t.Fatalf("proxy-status through n1 lists %d proxies on %v, want the six clients on the nodes serving them:\n%s", len(rows), servedBy, ps)
	}
	for _, r := range rows {
		if r[2] != "n1" {
			if out := mustNodeCLI(t, c, "n1", "proxy-config", r[1]); !strings.Contains(out, "reviews.default.svc.cluster.local:9080") {
				t.Errorf("proxy-config through n1 of %s, served by %s:\n%.300s", r[1], r[2], out)
			}
			break
		}
	}
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
	eventually(t, 30*time.Second, "navarch status naming the dead node", func() error {
		if res := nodeCLI(t, c, survivor, "status"); res.Code != 1 || !strings.Contains(res.Stdout, "- node "+busiest+" is failed (gossip)") ||
			!strings.Contains(res.Stdout, "proxies:   6 connected, 0 rejecting") {
			return fmt.Errorf("exit %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
		}
		return nil
	})

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
	eventually(t, 30*time.Second, busiest+" back as a voting member", allVoting(c, busiest, 3))
	if res := nodeCLI(t, c, busiest, "status"); res.Code != 0 || !strings.HasSuffix(res.Stdout, "\nhealthy\n") {
		t.Errorf("navarch status of the whole cluster: exit %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	eventually(t, 30*time.Second, "every node serves identical versions at the same revision",
		identicalEverywhere(c, "outbound|9080|v2|reviews.default.svc.cluster.local"))
}
