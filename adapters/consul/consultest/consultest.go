// Package consultest starts real Consul agents for tests: the binary `make peers`
// builds into <repo>/.peers/bin/consul (or $NAVARCH_CONSUL_BIN), on free loopback
// ports, with its data in a test's temporary directory, stopped by PID when the test
// ends. Without the binary a test is skipped, except in CI ($CI set), where it fails.
package consultest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	capi "github.com/hashicorp/consul/api"

	"github.com/navarch/navarch/internal/peers"
)

// Binary returns the path of the consul binary, or skips (fails in CI) the test when
// there is none.
func Binary(t testing.TB) string {
	t.Helper()
	return peers.Binary(t, "consul", "NAVARCH_CONSUL_BIN")
}

// Options say what agent to start.
type Options struct {
	// Datacenter defaults to "dc1".
	Datacenter string
	// Node is the agent's node name; default "consul-test".
	Node string
	// Persistent starts a single server (-server -bootstrap-expect 1) that keeps its
	// state in a data dir across Restart, instead of a -dev agent whose state is in
	// memory. It takes a few seconds longer to elect itself.
	Persistent bool
	// JoinWAN is the WAN gossip address (WANAddr) of a server in another datacenter
	// to federate with.
	JoinWAN string
	// HTTPS also serves the API over TLS on a port of its own (HTTPSAddr); HCL must
	// configure the certificates (tls { defaults { ... } }).
	HTTPS bool
	// HCL is extra agent configuration, each passed with -hcl.
	HCL []string
	// Token is the ACL token the helper's own requests (readiness, Client) send.
	Token string
}

// Agent is a running Consul agent.
type Agent struct {
	// HTTPAddr is the agent's HTTP API, host:port.
	HTTPAddr string
	// HTTPSAddr is its HTTPS API with Options.HTTPS, host:port.
	HTTPSAddr string
	// WANAddr is its WAN gossip address (serf WAN), for Options.JoinWAN.
	WANAddr string
	proc    peers.Process
	opts    Options
}

// Start starts an agent and waits until it has a leader and its node is in the
// catalog. It is stopped when the test ends.
func Start(t testing.TB, opts Options) *Agent {
	t.Helper()
	if opts.Datacenter == "" {
		opts.Datacenter = "dc1"
	}
	if opts.Node == "" {
		opts.Node = "consul-test"
	}
	dir := t.TempDir()
	a := &Agent{opts: opts, proc: peers.Process{Name: "consul", Bin: Binary(t), LogPath: filepath.Join(dir, "consul.log")}}
	t.Cleanup(func() {
		a.proc.Kill()
		if t.Failed() {
			t.Logf("consul agent log (%s):\n%s", a.proc.LogPath, peers.Tail(a.proc.LogPath, 30))
		}
	})
	// The ports were free a moment ago; another process (tests run in parallel
	// packages) may take one before the agent binds it. Then the agent exits at once,
	// and it is tried again on other ports.
	for attempt := 1; ; attempt++ {
		a.configure(peers.Ports(t, 6), dir)
		err := a.start()
		if err == nil {
			return a
		}
		a.proc.Kill()
		if attempt == 3 || !strings.Contains(peers.Tail(a.proc.LogPath, 30), "address already in use") {
			t.Fatalf("consul agent not ready: %v\n%s", err, peers.Tail(a.proc.LogPath, 30))
		}
	}
}

// configure sets the agent's addresses and command line for ports (HTTP, DNS, serf
// LAN, serf WAN, server RPC, HTTPS) and data dir dir.
func (a *Agent) configure(ports []int, dir string) {
	opts := a.opts
	a.HTTPAddr, a.WANAddr = "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[3])
	https := "-1"
	if opts.HTTPS {
		https = strconv.Itoa(ports[5])
		a.HTTPSAddr = "127.0.0.1:" + https
	}
	a.proc.Args = []string{"agent", "-client", "127.0.0.1", "-bind", "127.0.0.1", "-node", opts.Node, "-datacenter", opts.Datacenter,
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", strconv.Itoa(ports[1]), "-serf-lan-port", strconv.Itoa(ports[2]),
		"-serf-wan-port", strconv.Itoa(ports[3]), "-server-port", strconv.Itoa(ports[4]),
		"-grpc-port", "-1", "-grpc-tls-port", "-1", "-https-port", https, "-log-level", "warn"}
	if opts.JoinWAN != "" {
		a.proc.Args = append(a.proc.Args, "-retry-join-wan", opts.JoinWAN)
	}
	for _, h := range opts.HCL {
		a.proc.Args = append(a.proc.Args, "-hcl", h)
	}
	if opts.Persistent {
		a.proc.Args = append(a.proc.Args, "-server", "-bootstrap-expect", "1", "-data-dir", filepath.Join(dir, "data"))
	} else {
		a.proc.Args = append(a.proc.Args, "-dev")
	}
}

// Restart starts the agent (again, after Stop) on the same ports and data dir, and
// waits until it is ready.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	if err := a.start(); err != nil {
		t.Fatalf("consul agent not ready: %v\n%s", err, peers.Tail(a.proc.LogPath, 30))
	}
}

// start starts the agent process and waits until it is ready.
func (a *Agent) start() error {
	if err := a.proc.Start(); err != nil {
		return err
	}
	return a.waitReady(60 * time.Second)
}

func (a *Agent) waitReady(timeout time.Duration) error {
	c := a.client()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		leader, err := c.Status().Leader()
		if err == nil && leader != "" {
			node, _, err := c.Catalog().Node(a.opts.Node, (&capi.QueryOptions{}).WithContext(ctx))
			if err == nil && node != nil {
				return nil
			}
			last = fmt.Errorf("node %s not in the catalog yet (%v)", a.opts.Node, err)
		} else {
			last = fmt.Errorf("no leader yet (%v)", err)
		}
		select {
		case <-a.proc.Exited():
			return errors.New("the agent exited")
		case <-ctx.Done():
			return last
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the agent (SIGTERM to its PID, SIGKILL after 10 s) and waits for it.
func (a *Agent) Stop(t testing.TB) {
	t.Helper()
	a.proc.Stop()
}

// Datacenter returns the agent's datacenter.
func (a *Agent) Datacenter() string { return a.opts.Datacenter }

// Node returns the agent's node name.
func (a *Agent) Node() string { return a.opts.Node }

// Client returns an API client of the agent.
func (a *Agent) Client(t testing.TB) *capi.Client {
	t.Helper()
	return a.client()
}

func (a *Agent) client() *capi.Client {
	c, err := capi.NewClient(&capi.Config{Address: a.HTTPAddr, Scheme: "http", Token: a.opts.Token})
	if err != nil {
		panic(err) // only fails for a bad scheme
	}
	return c
}
