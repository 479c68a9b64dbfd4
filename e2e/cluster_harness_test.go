package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/e2e/grpcapp"
	"github.com/navarch/navarch/node/devcluster"
)

// startCluster runs n real navarch server processes (navarch dev cluster's code),
// each given the extra server flags.
func startCluster(t *testing.T, n int, extra ...string) *devcluster.Cluster {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, devcluster.Config{Binary: navarchBin, Dir: dir, Nodes: n, ExtraArgs: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for _, nd := range c.Nodes() {
				b, _ := os.ReadFile(nd.Log)
				lines := strings.Split(string(b), "\n")
				t.Logf("---- %s log (last 40 lines) ----\n%s", nd.Name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	return c
}

// nodeCLI runs the CLI against one node of the cluster, with the cluster's token.
func nodeCLI(t *testing.T, c *devcluster.Cluster, name string, args ...string) cliResult {
	t.Helper()
	nd, _ := c.Node(name)
	return cliWithEnv(t, nd.HTTP, []string{"NAVARCH_TOKEN_FILE=" + c.TokenFile()}, args...)
}

func mustNodeCLI(t *testing.T, c *devcluster.Cluster, name string, args ...string) string {
	t.Helper()
	res := nodeCLI(t, c, name, args...)
	if res.Code != 0 {
		t.Fatalf("navarch %s (on %s): exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), name, res.Code, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

func apiOf(c *devcluster.Cluster, name string) *client.Client {
	nd, _ := c.Node(name)
	return client.New(nd.HTTP, c.Token())
}

// membersSeenBy returns the members table as node name sees it.
func membersSeenBy(c *devcluster.Cluster, name string) ([]client.MemberInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return apiOf(c, name).Members(ctx)
}

// runningNodes returns the names of the nodes whose processes run.
func runningNodes(c *devcluster.Cluster) []string {
	var out []string
	for _, n := range c.Names() {
		if c.Running(n) {
			out = append(out, n)
		}
	}
	return out
}

// callsVia sends n RPCs to target from a fresh grpc-go xDS client of node name and
// returns where they went.
func callsVia(t *testing.T, c *devcluster.Cluster, name, target string, n int) grpcapp.Tally {
	t.Helper()
	conn, err := grpcapp.Dial(grpcBootstrapFrom(t, c, name), target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	grpcapp.Call(ctx, conn, 1) // connect and resolve before counting
	return grpcapp.Call(ctx, conn, n)
}

// trafficClient is a grpc-go xDS client sending RPCs continuously and remembering
// where each went.
type trafficClient struct {
	mu      sync.Mutex
	recent  []string // last answers ("v1", "v2") or failures ("error: Unavailable")
	failed  map[codes.Code]int
	total   int
	stop    chan struct{}
	stopped chan struct{}
}

// startTraffic dials target with bootstrap and sends an RPC every 10 ms until stopped.
func startTraffic(t *testing.T, bootstrap []byte, target string) *trafficClient {
	t.Helper()
	conn, err := grpcapp.Dial(bootstrap, target)
	if err != nil {
		t.Fatal(err)
	}
	tc := &trafficClient{failed: map[codes.Code]int{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(tc.stopped)
		defer conn.Close()
		for {
			select {
			case <-tc.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			tl := grpcapp.Call(ctx, conn, 1)
			cancel()
			tc.mu.Lock()
			tc.total++
			answer := ""
			for name := range tl.By {
				answer = name
			}
			for code := range tl.Failed {
				tc.failed[code]++
				answer = "error: " + code.String()
			}
			tc.recent = append(tc.recent, answer)
			if len(tc.recent) > 20 {
				tc.recent = tc.recent[1:]
			}
			tc.mu.Unlock()
		}
	}()
	t.Cleanup(tc.close)
	return tc
}

func (tc *trafficClient) close() {
	select {
	case <-tc.stop:
	default:
		close(tc.stop)
	}
	<-tc.stopped
}

// settledOn reports whether the client's last 20 RPCs all went to backend.
func (tc *trafficClient) settledOn(backend string) error {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.recent) < 20 {
		return fmt.Errorf("only %d RPCs so far", len(tc.recent))
	}
	for _, a := range tc.recent {
		if a != backend {
			return fmt.Errorf("recent answers %v, want all %s", tc.recent, backend)
		}
	}
	return nil
}

// resetFailures returns the failures so far and forgets them.
func (tc *trafficClient) resetFailures() (map[codes.Code]int, int) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	f, n := tc.failed, tc.total
	tc.failed, tc.total = map[codes.Code]int{}, 0
	return f, n
}

// proxyConfigVersions returns the name and version of every resource node name serves
// to a proxyless client in namespace default, and the node's store revision.
func proxyConfigVersions(c *devcluster.Cluster, name string) (string, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := apiOf(c, name).Raw(ctx, "/debug/proxy-config?namespace=default")
	if err != nil {
		return "", 0, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", 0, err
	}
	var lines []string
	for typ, items := range doc {
		var rs []struct{ Name, Version string }
		if err := json.Unmarshal(items, &rs); err != nil {
			return "", 0, fmt.Errorf("%s: %w", typ, err)
		}
		for _, r := range rs {
			lines = append(lines, typ+" "+r.Name+" "+r.Version)
		}
	}
	sort.Strings(lines)
	ms, err := membersSeenBy(c, name)
	if err != nil {
		return "", 0, err
	}
	var rev int64
	for _, m := range ms {
		if m.Self {
			rev = m.Revision
		}
	}
	return strings.Join(lines, "\n"), rev, nil
}

// grpcBootstrapFrom runs `navarch bootstrap --format grpc` against a node.
func grpcBootstrapFrom(t *testing.T, c *devcluster.Cluster, name string) []byte {
	t.Helper()
	return []byte(mustNodeCLI(t, c, name, "bootstrap", "--format", "grpc"))
}

// syncer returns the node a registry source's status names as syncing it, or why
// none does (no status yet, or stale).
func syncer(src client.SourceListing) (string, error) {
	if src.Node == "" || src.Stale {
		return "", fmt.Errorf("source status %+v", src)
	}
	return src.Node, nil
}

// killSyncer kills the node that syncs a registry source (syncing reads the source's
// syncer as a node sees it) and returns it and a surviving node.
func killSyncer(t *testing.T, c *devcluster.Cluster, syncing func(from string) (string, error)) (killed, survivor string) {
	t.Helper()
	eventually(t, 10*time.Second, "a node syncs the source", func() (err error) {
		killed, err = syncing("n1")
		return err
	})
	t.Logf("killing %s, the node syncing the source", killed)
	if err := c.Kill(killed); err != nil {
		t.Fatal(err)
	}
	survivor = "n1"
	if killed == "n1" {
		survivor = "n2"
	}
	return killed, survivor
}

// awaitTakeover waits until survivor sees another node than killed sync the source.
func awaitTakeover(t *testing.T, killed, survivor string, syncing func(from string) (string, error)) {
	t.Helper()
	eventually(t, 30*time.Second, "a survivor syncs the source", func() error {
		got, err := syncing(survivor)
		if err == nil && got == killed {
			err = fmt.Errorf("still %s", got)
		}
		return err
	})
}

// survivorsHold returns a check that the nodes other than gone, as node asked sees
// them, hold n proxies between them.
func survivorsHold(c *devcluster.Cluster, asked, gone string, n int) func() error {
	return func() error {
		ms, err := membersSeenBy(c, asked)
		if err != nil {
			return err
		}
		total := 0
		for _, m := range ms {
			if m.Name != gone && m.Gossip == "alive" {
				total += m.Proxies
			}
		}
		if total != n {
			return fmt.Errorf("the nodes but %s hold %d of %d proxies: %+v", gone, total, n, ms)
		}
		return nil
	}
}

// identicalEverywhere returns a check that every node of c serves the same
// resource versions at the same revision, and that they name resource want.
func identicalEverywhere(c *devcluster.Cluster, want string) func() error {
	return func() error {
		var first string
		var firstRev int64
		for i, n := range c.Names() {
			v, rev, err := proxyConfigVersions(c, n)
			if err != nil {
				return err
			}
			if i == 0 {
				first, firstRev = v, rev
				continue
			}
			if rev != firstRev {
				return fmt.Errorf("%s at revision %d, %s at %d", n, rev, c.Names()[0], firstRev)
			}
			if v != first {
				return fmt.Errorf("%s serves different versions than %s:\n%s\nvs\n%s", n, c.Names()[0], v, first)
			}
		}
		if !strings.Contains(first, want) {
			return fmt.Errorf("versions do not include %s:\n%s", want, first)
		}
		return nil
	}
}

// voting reports whether a member is alive in gossip and votes in etcd.
func voting(m client.MemberInfo) bool {
	return m.Gossip == "alive" && (m.Etcd == "leader" || m.Etcd == "follower")
}

// allVoting returns a check that node asked sees n members, every one voting.
func allVoting(c *devcluster.Cluster, asked string, n int) func() error {
	return func() error {
		ms, err := membersSeenBy(c, asked)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if !voting(m) {
				return fmt.Errorf("%s is not a voting member: %+v", m.Name, ms)
			}
		}
		if len(ms) != n {
			return fmt.Errorf("%d members, want %d: %+v", len(ms), n, ms)
		}
		return nil
	}
}

// startClusterWithTraffic starts a 3-node cluster routing reviews to its v1 backend
// (of two) and n grpc-go clients sending it RPCs, bootstrapped from the nodes in
// turn; it returns the cluster, the directory of the applied files (workloads.yaml,
// vs.yaml) and the clients.
func startClusterWithTraffic(t *testing.T, n int) (*devcluster.Cluster, string, []*trafficClient) {
	t.Helper()
	c := startCluster(t, 3)
	v1, v2 := startReviews(t)
	dir := t.TempDir()
	writeFile(t, dir, "workloads.yaml", workloadsYAML(v1, v2))
	writeFile(t, dir, "vs.yaml", splitVS(100, 0))
	mustNodeCLI(t, c, "n1", "apply", "-f", dir)
	var clients []*trafficClient
	for i := 0; i < n; i++ {
		clients = append(clients, startTraffic(t, grpcBootstrapFrom(t, c, c.Names()[i%3]), ratingsTarget))
	}
	return c, dir, clients
}
