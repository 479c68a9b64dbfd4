package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/navarch/navarch/node/devcluster"
)

// TestRollingUpgrade follows docs/cluster.md ("Rolling restarts and upgrades")
// under traffic and writes: one node at a time is stopped with SIGTERM and started
// again, with its data dir and flags, on a new build of navarch. RPCs never fail,
// the cluster takes writes while each node is down, every acknowledged write is kept,
// `navarch members` shows which build each node runs as it changes, and at the end
// every client is on the final configuration and every node serves identical
// versions.
func TestRollingUpgrade(t *testing.T) {
	next := buildStamped(t, "v9.9.9-next")
	c, dir, clients := startClusterWithTraffic(t, 6)
	for i, tc := range clients {
		eventually(t, 30*time.Second, fmt.Sprintf("client %d on v1", i), func() error { return tc.settledOn("v1") })
	}
	old := buildsSeenBy(t, c, "n1")
	for _, v := range old {
		if v == "" || v == "v9.9.9-next" || v != old["n1"] {
			t.Fatalf("before the upgrade the nodes gossip builds %v, want the same one, not the new build", old)
		}
	}
	for _, tc := range clients {
		tc.resetFailures()
	}

	w := &writer{c: c}
	ctx, stopWriter := context.WithCancel(context.Background())
	defer stopWriter()
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); w.run(ctx) }()
	defer func() {
		if t.Failed() {
			dumpNodes(t, c)
		}
	}()

	for i, name := range c.Names() {
		other := c.Names()[(i+1)%3]
		if err := c.Terminate(name); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, name+"'s clients on the other nodes", survivorsHold(c, other, name, 6))
		before := len(w.acknowledged())
		eventually(t, 30*time.Second, fmt.Sprintf("writes taken with %s down", name), func() error {
			if n := len(w.acknowledged()); n < before+3 {
				return fmt.Errorf("%d writes acknowledged since %s stopped", n-before, name)
			}
			return nil
		})
		if err := c.Upgrade(name, next); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(t.Context(), name); err != nil {
			t.Fatalf("%s did not come back on the new build: %v", name, err)
		}
		eventually(t, 30*time.Second, name+" a voting member on the new build", func() error {
			ms, err := membersSeenBy(c, other)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m.Name == name && voting(m) && m.Version == "v9.9.9-next" {
					return nil
				}
			}
			return fmt.Errorf("%s as %s sees it: %+v", name, other, ms)
		})
		builds := buildsSeenBy(t, c, other)
		for j, n := range c.Names() {
			if want := map[bool]string{true: "v9.9.9-next", false: old[n]}[j <= i]; builds[n] != want {
				t.Errorf("after upgrading %s, %s runs %q, want %q (all: %v)", name, n, builds[n], want, builds)
			}
		}
		if i == 0 {
			if res := nodeCLI(t, c, other, "status"); res.Code != 1 || !strings.Contains(res.Stdout, "- the nodes run 2 builds (") ||
				!strings.Contains(res.Stdout, "v9.9.9-next on n1") {
				t.Errorf("navarch status halfway through the upgrade: exit %d\n%s", res.Code, res.Stdout)
			}
			if out := mustNodeCLI(t, c, other, "version"); !strings.Contains(out, "v9.9.9-next (n1)") || !strings.Contains(out, old["n2"]+" (n2, n3)") {
				t.Errorf("navarch version halfway through the upgrade:\n%s", out)
			}
		}
	}
	stopWriter()
	<-writerDone

	for i, tc := range clients {
		if failed, total := tc.resetFailures(); len(failed) > 0 {
			t.Errorf("client %d: %v of %d RPCs failed during the upgrade; the data plane must not notice", i, failed, total)
		}
	}
	acked := w.acknowledged()
	t.Logf("%d writes acknowledged during the upgrade, %d refused or lost in flight: %v", len(acked), w.failures(), w.errs)
	for _, n := range c.Names() {
		eventually(t, 30*time.Second, "every acknowledged write on "+n, func() error {
			names, err := writtenNames(c, n)
			if err != nil {
				return err
			}
			for _, a := range acked {
				if !names[a] {
					return fmt.Errorf("%s lacks acknowledged write %s", n, a)
				}
			}
			return nil
		})
	}

	mustNodeCLI(t, c, "n3", "apply", "-f", writeFile(t, dir, "vs.yaml", splitVS(0, 100)))
	for i, tc := range clients {
		eventually(t, 30*time.Second, fmt.Sprintf("client %d on v2", i), func() error { return tc.settledOn("v2") })
	}
	eventually(t, 30*time.Second, "every node serves identical versions at the same revision",
		identicalEverywhere(c, "outbound|9080|v2|reviews.default.svc.cluster.local"))

	if res := nodeCLI(t, c, "n2", "status"); res.Code != 0 {
		t.Errorf("navarch status after the upgrade: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	out := mustNodeCLI(t, c, "n1", "members")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); !strings.HasSuffix(strings.TrimSpace(lines[0]), "VERSION") ||
		strings.Count(out, "v9.9.9-next") != 3 {
		t.Errorf("navarch members does not show the new build on the three nodes:\n%s", out)
	}
	if out := mustNodeCLI(t, c, "n1", "version"); !strings.Contains(out, "\ncontrol plane version: v9.9.9-next (n1, n2, n3)\ndata plane version: gRPC Go "+grpc.Version+" (6 proxies)\n") {
		t.Errorf("navarch version after the upgrade:\n%s", out)
	}
}

// buildStamped builds navarch as a release is built, with its version stamped,
// into the test's temporary directory.
func buildStamped(t *testing.T, stamp string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "navarch-"+stamp)
	build := exec.Command("go", "build", "-ldflags", "-X github.com/navarch/navarch/internal/version.stamp="+stamp, "-o", bin, "../cmd/navarch")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building navarch %s: %v\n%s", stamp, err, out)
	}
	if out, err := exec.Command(bin, "version", "--remote=false").Output(); err != nil || strings.TrimSpace(string(out)) != "navarch "+stamp {
		t.Fatalf("navarch %s says %q, %v", stamp, out, err)
	}
	return bin
}

// buildsSeenBy returns the build of every node as node asked knows it (gossip).
func buildsSeenBy(t *testing.T, c *devcluster.Cluster, asked string) map[string]string {
	t.Helper()
	ms, err := membersSeenBy(c, asked)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range ms {
		out[m.Name] = m.Version
	}
	if len(out) != 3 {
		t.Fatalf("%s knows %d nodes: %+v", asked, len(out), ms)
	}
	return out
}
