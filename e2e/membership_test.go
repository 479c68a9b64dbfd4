package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestJoinLeaveRemove: a fourth node joins a running cluster (as an etcd learner,
// then promoted), leaves it gracefully, and a dead node is removed by an operator.
func TestJoinLeaveRemove(t *testing.T) {
	c := startCluster(t, 3)
	n4, err := c.Add(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	memberState := func(seenBy, name string) (string, string, error) {
		ms, err := membersSeenBy(c, seenBy)
		if err != nil {
			return "", "", err
		}
		for _, m := range ms {
			if m.Name == name {
				return m.Gossip, m.Etcd, nil
			}
		}
		return "", "", nil
	}
	eventually(t, 30*time.Second, "n4 a voting member", func() error {
		g, e, err := memberState("n1", n4.Name)
		if err != nil || g != "alive" || (e != "follower" && e != "leader") {
			return fmt.Errorf("n4: gossip %q etcd %q %v", g, e, err)
		}
		return nil
	})

	if out := mustNodeCLI(t, c, n4.Name, "leave"); !strings.Contains(out, "left") {
		t.Fatalf("leave printed %q", out)
	}
	eventually(t, 30*time.Second, "n4 gone from etcd, left in gossip", func() error {
		g, e, err := memberState("n1", n4.Name)
		if err != nil || e != "-" || g != "left" {
			return fmt.Errorf("n4: gossip %q etcd %q %v", g, e, err)
		}
		return nil
	})

	if err := c.Kill("n3"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "n3 seen failed", func() error {
		if g, _, err := memberState("n1", "n3"); err != nil || g != "failed" {
			return fmt.Errorf("n3 gossip %q %v", g, err)
		}
		return nil
	})
	if out := mustNodeCLI(t, c, "n1", "members", "remove", "n3"); !strings.Contains(out, "removed n3") {
		t.Fatalf("members remove printed %q", out)
	}
	out := mustNodeCLI(t, c, "n1", "members")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "n3 ") && !strings.Contains(line, " - ") {
			t.Fatalf("n3 still an etcd member after removal:\n%s", out)
		}
	}
	// Two voting members left, both alive: writes work.
	mustNodeCLI(t, c, "n2", "apply", "-f", writeFile(t, t.TempDir(), "se.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: after-removal}
spec:
  hosts: [after-removal.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`))
}

// TestNodeThatLostItsDataRejoins: a node whose data dir is gone (a replaced disk)
// comes back under its name and address: its old etcd member is replaced by a new
// one (a learner, promoted), it serves what the cluster holds, and it counts in the
// quorum again.
func TestNodeThatLostItsDataRejoins(t *testing.T) {
	c := startCluster(t, 3)
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, t.TempDir(), "se.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: before-loss}
spec:
  hosts: [before-loss.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`))
	n3, _ := c.Node("n3")
	if err := c.Kill("n3"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(n3.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart("n3"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(t.Context(), "n3"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "n3 a voting member again, three members in all", func() error {
		ms, err := membersSeenBy(c, "n1")
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range ms {
			if m.Etcd == "leader" || m.Etcd == "follower" {
				voters++
			}
		}
		if voters != 3 || len(ms) != 3 {
			return fmt.Errorf("want 3 voting members, got %+v", ms)
		}
		return nil
	})
	if out := mustNodeCLI(t, c, "n3", "get", "serviceentries"); !strings.Contains(out, "before-loss") {
		t.Fatalf("n3 does not serve what the cluster held:\n%s", out)
	}
	// Writes need all three members' quorum (two of three): n3 counts again.
	if err := c.Kill("n2"); err != nil {
		t.Fatal(err)
	}
	mustNodeCLI(t, c, "n3", "apply", "-f", writeFile(t, t.TempDir(), "se2.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: after-loss}
spec:
  hosts: [after-loss.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`))
}
