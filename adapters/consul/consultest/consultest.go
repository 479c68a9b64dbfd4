// Package consultest starts real Consul agents for tests: the binary `make peers`
// builds into <repo>/.peers/bin/consul (or $NAVARCH_CONSUL_BIN), on free loopback
// ports, with its data in a test's temporary directory, stopped by PID when the test
// ends. Without the binary a test is skipped, except in CI ($CI set), where it fails.
package consultest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	capi "github.com/hashicorp/consul/api"

	"github.com/navarch/navarch/internal/peers"
	"github.com/navarch/navarch/internal/ports"
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
	bin     string
	args    []string
	logPath string
	opts    Options
	cmd     *exec.Cmd
	exited  chan struct{}
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
	a := &Agent{bin: Binary(t), opts: opts}
	dir := t.TempDir()
	a.logPath = filepath.Join(dir, "consul.log")
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("consul agent log (%s):\n%s", a.logPath, peers.Tail(a.logPath, 30))
		}
	})
	// The ports were free a moment ago; another process (tests run in parallel
	// packages) may take one before the agent binds it. Then the agent exits at once,
	// and it is tried again on other ports.
	for attempt := 1; ; attempt++ {
		a.configure(freePorts(t, 6), dir)
		err := a.start()
		if err == nil {
			return a
		}
		a.kill()
		if attempt == 3 || !strings.Contains(peers.Tail(a.logPath, 30), "address already in use") {
			t.Fatalf("consul agent not ready: %v\n%s", err, peers.Tail(a.logPath, 30))
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
	a.args = []string{"agent", "-client", "127.0.0.1", "-bind", "127.0.0.1", "-node", opts.Node, "-datacenter", opts.Datacenter,
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", strconv.Itoa(ports[1]), "-serf-lan-port", strconv.Itoa(ports[2]),
		"-serf-wan-port", strconv.Itoa(ports[3]), "-server-port", strconv.Itoa(ports[4]),
		"-grpc-port", "-1", "-grpc-tls-port", "-1", "-https-port", https, "-log-level", "warn"}
	if opts.JoinWAN != "" {
		a.args = append(a.args, "-retry-join-wan", opts.JoinWAN)
	}
	for _, h := range opts.HCL {
		a.args = append(a.args, "-hcl", h)
	}
	if opts.Persistent {
		a.args = append(a.args, "-server", "-bootstrap-expect", "1", "-data-dir", filepath.Join(dir, "data"))
	} else {
		a.args = append(a.args, "-dev")
	}
}

// freePorts returns n loopback ports that were free (TCP and UDP) a moment ago,
// outside the kernel's ephemeral range (internal/ports), so that a restarted agent
// finds them free again.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	for range n {
		port, release, err := ports.Hold()
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		out = append(out, port)
	}
	return out
}

// Restart starts the agent (again, after Stop) on the same ports and data dir, and
// waits until it is ready.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	if err := a.start(); err != nil {
		t.Fatalf("consul agent not ready: %v\n%s", err, peers.Tail(a.logPath, 30))
	}
}

// start starts the agent process and waits until it is ready.
func (a *Agent) start() error {
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	a.cmd = exec.Command(a.bin, a.args...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting consul: %w", err)
	}
	exited := make(chan struct{})
	a.exited = exited
	cmd := a.cmd
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
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
		case <-a.exited:
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
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.exited
	}
}

func (a *Agent) kill() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	select {
	case <-a.exited:
	default:
		a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.exited
	}
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
