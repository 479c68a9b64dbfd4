package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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
	// Where the nodes serve xDS on one port, each on its own IP, n4 does too, and
	// the xDS name resolves to it.
	n1, n2 := c.Nodes()[0], c.Nodes()[1]
	if h1, p1, _ := net.SplitHostPort(n1.XDS); !strings.HasPrefix(n2.XDS, h1+":") {
		h4, p4, _ := net.SplitHostPort(n4.XDS)
		if p4 != p1 || h4 == h1 {
			t.Fatalf("n4 serves xDS on %s, not on the others' port %s on an IP of its own", n4.XDS, p1)
		}
		eventually(t, 30*time.Second, "the xDS name resolving to n4", func() error {
			ips, err := lookupXDSName(n1.DNS)
			if err != nil || !slices.Contains(ips, h4) {
				return fmt.Errorf("n1 resolves the xDS name to %v, %v", ips, err)
			}
			return nil
		})
	}

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

	// n3, removed while it was down, comes back on its old data: it stops, saying
	// what to do, rather than waiting for a cluster that no longer has it.
	if err := c.Restart("n3"); err != nil {
		t.Fatal(err)
	}
	n3, _ := c.Node("n3")
	eventually(t, 30*time.Second, "n3 stopped, saying it was removed", func() error {
		b, err := os.ReadFile(n3.Log)
		if err != nil || !strings.Contains(string(b), "this member was removed from the cluster: remove its data dir") {
			return fmt.Errorf("its log does not say so yet (%v)", err)
		}
		if syscall.Kill(n3.PID, 0) == nil {
			return errors.New("it still runs")
		}
		return nil
	})
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

// dnsServiceEntry is a ServiceEntry named name, for a cluster test to write and look
// for.
func dnsServiceEntry(name string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s}
spec:
  hosts: [%[1]s.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`, name)
}

// TestForceNewClusterAfterQuorumLoss: two of three nodes are lost for good, data and
// all, so the cluster takes no writes. The survivor, restarted with
// --force-new-cluster, is a cluster of one with everything it held and takes writes;
// the lost nodes, rebuilt with empty data dirs, join it; and the flag, left on the
// survivor's command line, does not split the cluster at its next restart.
func TestForceNewClusterAfterQuorumLoss(t *testing.T) {
	c := startCluster(t, 3)
	apply := func(node, name string) cliResult {
		return nodeCLI(t, c, node, "apply", "-f", writeFile(t, t.TempDir(), name+".yaml", dnsServiceEntry(name)))
	}
	if r := apply("n1", "before-loss"); r.Code != 0 {
		t.Fatalf("apply: %s", r.Stderr)
	}
	for _, name := range []string{"n2", "n3"} {
		nd, _ := c.Node(name)
		if err := c.Kill(name); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(nd.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	if r := apply("n1", "without-quorum"); r.Code == 0 || !strings.Contains(r.Stderr, "quorum") {
		t.Fatalf("a write without quorum: exit %d, %s", r.Code, r.Stderr)
	}

	if err := c.Kill("n1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart("n1", "--force-new-cluster"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(t.Context(), "n1"); err != nil {
		t.Fatal(err)
	}
	if r := apply("n1", "after-force"); r.Code != 0 {
		t.Fatalf("a write to the forced cluster: %s", r.Stderr)
	}
	voters := func(seenBy string, want int) func() error {
		return func() error {
			ms, err := membersSeenBy(c, seenBy)
			if err != nil {
				return err
			}
			n := 0
			for _, m := range ms {
				if m.Etcd == "leader" || m.Etcd == "follower" {
					n++
				}
			}
			if n != want {
				return fmt.Errorf("want %d voting members, got %+v", want, ms)
			}
			return nil
		}
	}
	eventually(t, 10*time.Second, "n1 the only member", voters("n1", 1))

	for _, name := range []string{"n2", "n3"} {
		if err := c.Restart(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(t.Context(), "n2", "n3"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "three voting members again", voters("n1", 3))
	out := mustNodeCLI(t, c, "n3", "get", "serviceentries")
	for _, name := range []string{"before-loss", "after-force"} {
		if !strings.Contains(out, name) {
			t.Fatalf("n3 lacks %s:\n%s", name, out)
		}
	}

	// The flag again, at a restart of n1 in the healthy cluster: n1 rejoins as the
	// member it is, and the three stay one cluster. Without the marker of the first
	// forced start, n1 refuses to start while it sees the others run.
	n1, _ := c.Node("n1")
	marker := filepath.Join(n1.DataDir, "forced-new-cluster")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("no marker of the forced start: %v", err)
	}
	if err := os.Rename(marker, marker+".saved"); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill("n1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart("n1", "--force-new-cluster"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "n1 refuses to force a new cluster beside the running nodes", func() error {
		b, err := os.ReadFile(n1.Log)
		if err != nil || !strings.Contains(string(b), "--force-new-cluster refused: node n") {
			return fmt.Errorf("not in n1's log yet (%v)", err)
		}
		return nil
	})
	c.Kill("n1") // it has exited, or is about to
	if err := os.Rename(marker+".saved", marker); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart("n1", "--force-new-cluster"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(t.Context(), "n1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "still three voting members, seen by n1", voters("n1", 3))
	if r := apply("n2", "after-restart"); r.Code != 0 {
		t.Fatalf("a write after n1's restart: %s", r.Stderr)
	}
	eventually(t, 10*time.Second, "n1 has the write made through n2", func() error {
		if out := mustNodeCLI(t, c, "n1", "get", "serviceentries"); !strings.Contains(out, "after-restart") {
			return fmt.Errorf("n1 serves:\n%s", out)
		}
		return nil
	})
}

// TestRestoreFromSnapshot: a snapshot saved through one node is the cluster's
// backup. With every node and its data lost, a node started with --restore-from
// is a cluster of one holding what the snapshot held (the writes after it are
// gone), under the same certificate authority; the others join it with empty data
// dirs.
func TestRestoreFromSnapshot(t *testing.T) {
	c := startCluster(t, 3)
	mustApply := func(node, name string) {
		t.Helper()
		mustNodeCLI(t, c, node, "apply", "-f", writeFile(t, t.TempDir(), name+".yaml", dnsServiceEntry(name)))
	}
	mustApply("n1", "in-backup")
	snap := filepath.Join(t.TempDir(), "backup.db")
	if out := mustNodeCLI(t, c, "n2", "snapshot", "save", snap); !strings.HasPrefix(out, "saved "+snap+": revision ") {
		t.Fatalf("snapshot save printed %q", out)
	}
	root := func(node string) string {
		for _, line := range strings.Split(mustNodeCLI(t, c, node, "ca", "show"), "\n") {
			if strings.Contains(line, "sha256:") { // the root's, first
				return line
			}
		}
		t.Fatalf("no root fingerprint in navarch ca show on %s", node)
		return ""
	}
	rootBefore := root("n1")
	mustApply("n1", "after-backup")

	for _, name := range c.Names() {
		nd, _ := c.Node(name)
		if err := c.Kill(name); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(nd.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Restart("n1", "--restore-from", snap); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(t.Context(), "n1"); err != nil {
		t.Fatal(err)
	}
	if out := mustNodeCLI(t, c, "n1", "get", "serviceentries"); !strings.Contains(out, "in-backup") || strings.Contains(out, "after-backup") {
		t.Fatalf("the restored node serves:\n%s\nwant in-backup and not after-backup", out)
	}
	if got := root("n1"); got != rootBefore {
		t.Errorf("CA after the restore: %q, before: %q", got, rootBefore)
	}
	for _, name := range []string{"n2", "n3"} {
		if err := c.Restart(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(t.Context(), "n2", "n3"); err != nil {
		t.Fatal(err)
	}
	mustApply("n3", "after-restore")
	eventually(t, 30*time.Second, "every node serves the backup and the write after the restore", func() error {
		for _, name := range c.Names() {
			out := nodeCLI(t, c, name, "get", "serviceentries").Stdout
			if !strings.Contains(out, "in-backup") || !strings.Contains(out, "after-restore") {
				return fmt.Errorf("%s serves:\n%s", name, out)
			}
		}
		return nil
	})
}

// TestNodeRestartedAtAnotherAddress: a node killed and started again from its data
// dir at other gossip and etcd addresses (a replaced host, a new IP) is taken back:
// every node sees it alive at its new etcd peer address, and with the first node
// dead it and the third still make a quorum that takes writes.
func TestNodeRestartedAtAnotherAddress(t *testing.T) {
	c := startCluster(t, 3)
	if err := c.Kill("n2"); err != nil {
		t.Fatal(err)
	}
	gossip, peer, client := freeAddr(t), freeAddr(t), freeAddr(t)
	if err := c.Restart("n2", "--gossip-addr", gossip, "--etcd-peer-addr", peer, "--etcd-client-addr", client); err != nil {
		t.Fatal(err)
	}
	for _, seenBy := range []string{"n1", "n3"} {
		eventually(t, 30*time.Second, seenBy+" sees n2 alive at its new address", func() error {
			ms, err := membersSeenBy(c, seenBy)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m.Name == "n2" {
					if m.Gossip != "alive" || m.GossipAddr != gossip || (m.Etcd != "follower" && m.Etcd != "leader") || m.EtcdPeer != "https://"+peer {
						return fmt.Errorf("n2: gossip %s at %s, etcd %s at %s", m.Gossip, m.GossipAddr, m.Etcd, m.EtcdPeer)
					}
					return nil
				}
			}
			return fmt.Errorf("no n2 in %+v", ms)
		})
	}
	if err := c.Kill("n1"); err != nil {
		t.Fatal(err)
	}
	se := writeFile(t, t.TempDir(), "se.yaml", dnsServiceEntry("after-move"))
	eventually(t, 30*time.Second, "n2 and n3 take a write without n1", func() error {
		if res := nodeCLI(t, c, "n3", "apply", "-f", se); res.Code != 0 {
			return fmt.Errorf("apply on n3: %s", res.Stderr)
		}
		if out := nodeCLI(t, c, "n2", "get", "serviceentries").Stdout; !strings.Contains(out, "after-move") {
			return fmt.Errorf("n2 lists %q", out)
		}
		return nil
	})
}

// TestWholeClusterRestarts: every node killed at once (a power cut) and started
// again from its data dir, in another order: the cluster forms again with all it
// held, and takes writes.
func TestWholeClusterRestarts(t *testing.T) {
	c := startCluster(t, 3)
	dir := t.TempDir()
	mustNodeCLI(t, c, "n2", "apply", "-f", writeFile(t, dir, "before.yaml", dnsServiceEntry("before-outage")))
	for _, name := range []string{"n1", "n2", "n3"} {
		if err := c.Kill(name); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"n3", "n1", "n2"} {
		if err := c.Restart(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(t.Context(), "n1", "n2", "n3"); err != nil {
		t.Fatal(err)
	}
	after := writeFile(t, dir, "after.yaml", dnsServiceEntry("after-outage"))
	eventually(t, 30*time.Second, "the restarted cluster takes a write", func() error {
		if res := nodeCLI(t, c, "n1", "apply", "-f", after); res.Code != 0 {
			return fmt.Errorf("apply on n1: %s", res.Stderr)
		}
		return nil
	})
	for _, name := range []string{"n1", "n2", "n3"} {
		eventually(t, 30*time.Second, name+" holds what was written before and after", func() error {
			out := nodeCLI(t, c, name, "get", "serviceentries").Stdout
			if !strings.Contains(out, "before-outage") || !strings.Contains(out, "after-outage") {
				return fmt.Errorf("%s lists %q", name, out)
			}
			return nil
		})
	}
}

// lookupXDSName asks the DNS server at addr (a node's --dns-addr) for the nodes'
// default xDS name.
func lookupXDSName(addr string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return resolverAt(addr, "udp").LookupHost(ctx, "xds.navarch.local")
}
