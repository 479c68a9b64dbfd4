package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"strings"
	"sync"
	"testing"
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/e2e/grpcapp"
	"github.com/navarch/navarch/node/devcluster"
)

// TestClusterSurvivesKillsAndRestarts: 20 rounds of SIGKILL and restart of a random
// node while a writer applies changes through whichever node answers. Every write
// acknowledged to the writer is present at the end on every node, and every client
// ends on the final configuration.
func TestClusterSurvivesKillsAndRestarts(t *testing.T) {
	c, dir, clients := startClusterWithTraffic(t, 3)

	w := &writer{c: c}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()

	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		victim := c.Names()[rng.IntN(3)]
		if err := c.Kill(victim); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		if err := c.Restart(victim); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := c.WaitReady(t.Context(), victim); err != nil {
			t.Fatalf("round %d: %s did not come back: %v", round, victim, err)
		}
	}
	cancel()
	<-done
	acked := w.acknowledged()
	if len(acked) < 20 {
		t.Fatalf("only %d writes were acknowledged during the rounds; the cluster should take writes while one node is down", len(acked))
	}
	t.Logf("%d writes acknowledged, %d refused or lost in flight", len(acked), w.failures())

	// The final write routes everything to v2.
	mustNodeCLI(t, c, "n2", "apply", "-f", writeFile(t, dir, "vs.yaml", splitVS(0, 100)))
	for _, n := range c.Names() {
		eventually(t, 30*time.Second, "every acknowledged write on "+n, func() error {
			names, err := writtenNames(c, n)
			if err != nil {
				return err
			}
			var missing []string
			for _, a := range acked {
				if !names[a] {
					missing = append(missing, a)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("%s lacks %d acknowledged writes: %v", n, len(missing), missing)
			}
			return nil
		})
	}
	defer func() {
		if t.Failed() {
			dumpNodes(t, c)
		}
	}()
	for i, tc := range clients {
		eventually(t, 60*time.Second, fmt.Sprintf("client %d on the final config", i), func() error { return tc.settledOn("v2") })
	}
}

// dumpNodes logs what every node says of its members and proxies.
func dumpNodes(t *testing.T, c *devcluster.Cluster) {
	for _, n := range c.Names() {
		ms, err := membersSeenBy(c, n)
		t.Logf("%s members: %+v %v", n, ms, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		raw, err := apiOf(c, n).Raw(ctx, "/debug/proxies")
		cancel()
		t.Logf("%s proxies: %s %v", n, raw, err)
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		g, _ := apiOf(c, n).Raw(ctx, "/debug/pprof/goroutine?debug=2")
		cancel()
		for _, blk := range strings.Split(string(g), "\n\n") {
			if strings.Contains(blk, "navarch/xds.(*Server)") {
				t.Logf("%s goroutine:\n%s", n, blk)
			}
		}
	}
}

// writer applies one new ServiceEntry after another through a random live node and
// remembers which writes were acknowledged.
type writer struct {
	c      *devcluster.Cluster
	mu     sync.Mutex
	acked  []string
	failed int
	errs   []string // the first few refusals, for the log
}

func (w *writer) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		name := fmt.Sprintf("w-%04d", i)
		live := runningNodes(w.c)
		if len(live) == 0 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		target := live[i%len(live)]
		doc := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`, name, name)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := apiOf(w.c, target).Apply(wctx, "", []client.File{{Source: name, Data: doc}})
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acked = append(w.acked, name)
		} else {
			w.failed++
			if len(w.errs) < 20 {
				w.errs = append(w.errs, fmt.Sprintf("%s via %s: %v", name, target, err))
			}
		}
		w.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *writer) acknowledged() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.acked...)
}

func (w *writer) failures() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// writtenNames lists the ServiceEntries node n holds.
func writtenNames(c *devcluster.Cluster, n string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, _, err := apiOf(c, n).List(ctx, "serviceentries", "default")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range rs {
		out[r.Meta.Name] = true
	}
	return out, nil
}

// TestFiveNodesTakeWritesWithTwoDown: a five-node cluster keeps its quorum with two
// nodes killed.
func TestFiveNodesTakeWritesWithTwoDown(t *testing.T) {
	c := startCluster(t, 5)
	for _, n := range []string{"n2", "n4"} {
		if err := c.Kill(n); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	out := mustNodeCLI(t, c, "n5", "apply", "-f", writeFile(t, dir, "se.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: after-two-died}
spec:
  hosts: [after.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`))
	if !strings.Contains(out, "created") {
		t.Fatalf("apply printed %q", out)
	}
	for _, n := range []string{"n1", "n3"} {
		eventually(t, 10*time.Second, "the write on "+n, func() error {
			names, err := writtenNames(c, n)
			if err != nil {
				return err
			}
			if !names["after-two-died"] {
				return errors.New("missing")
			}
			return nil
		})
	}
}

// TestMinorityKeepsServingAndRefusesWrites: with two of three nodes dead the last one
// keeps serving its view to its proxies, refuses writes with a clear error, and
// /readyz says why; when a peer returns, writes work again.
func TestMinorityKeepsServingAndRefusesWrites(t *testing.T) {
	c := startCluster(t, 3)
	v1, v2 := startReviews(t)
	dir := t.TempDir()
	writeFile(t, dir, "workloads.yaml", workloadsYAML(v1, v2))
	writeFile(t, dir, "vs.yaml", splitVS(0, 100))
	mustNodeCLI(t, c, "n1", "apply", "-f", dir)
	n1, _ := c.Node("n1")
	tc := startTraffic(t, grpcapp.Bootstrap([]string{n1.XDS}, "default", nil), ratingsTarget)
	eventually(t, 30*time.Second, "client on v2", func() error { return tc.settledOn("v2") })

	for _, n := range []string{"n2", "n3"} {
		if err := c.Kill(n); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "readyz reports the lost quorum", func() error {
		code, body := get(n1.HTTP, "/readyz")
		if code != 503 || !strings.Contains(body, "no quorum") {
			return fmt.Errorf("readyz %d %q", code, body)
		}
		return nil
	})
	res := nodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "vs.yaml", splitVS(100, 0)))
	if res.Code == 0 || !strings.Contains(res.Stderr, "no quorum") {
		t.Fatalf("apply without quorum: exit %d, stderr %q; want a refusal that says there is no quorum", res.Code, res.Stderr)
	}
	tc.resetFailures()
	time.Sleep(time.Second)
	if err := tc.settledOn("v2"); err != nil {
		t.Fatalf("the minority node's client: %v", err)
	}
	if failed, _ := tc.resetFailures(); len(failed) > 0 {
		t.Fatalf("RPCs failed while the node had no quorum: %v", failed)
	}

	if err := c.Restart("n2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "writes work again", func() error {
		res := nodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "vs.yaml", splitVS(100, 0)))
		if res.Code != 0 {
			return errors.New(res.Stderr)
		}
		return nil
	})
	eventually(t, 30*time.Second, "client on v1", func() error { return tc.settledOn("v1") })
}
