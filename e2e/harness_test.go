package e2e

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/e2e/grpcapp"
	"github.com/navarch/navarch/internal/ports"
)

// navarchBin is the binary under test, built by TestMain.
var navarchBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "navarch-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	navarchBin = filepath.Join(dir, "navarch")
	args := []string{"build", "-o", navarchBin}
	if os.Getenv("NAVARCH_E2E_RACE") != "" {
		// The nodes under test run with the race detector (make test-e2e-race): each
		// process writes what it finds to $GORACE's log_path.<pid>.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/navarch")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building navarch:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address whose port was free a moment ago, outside
// the kernel's ephemeral range (internal/ports).
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := ports.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// proc is a navarch server process.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	XDS    string
	HTTP   string
	log    *lockedBuffer
}

// lockedBuffer is a process's output, written by os/exec's copying goroutine and
// read by the test while the process runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDevNode starts `navarch server --dev` on free ports and waits until it is ready.
// Its data dir is the test's: a dev node removes the one it makes itself only when it
// stops gracefully, and tests stop nodes with SIGKILL.
func startDevNode(t *testing.T, extra ...string) *proc {
	t.Helper()
	return startDevNodeReady(t, func(http string) bool {
		code, _ := get(http, "/readyz")
		return code == 200
	}, extra...)
}

// startDevNodeReady is startDevNode with its own test of readiness, given the HTTP
// address. A port that was free when picked can still be taken before the node
// binds it (by a server another process picked it for; outgoing connections keep to
// the ephemeral range, which freeAddr avoids); a node that exits for that reason is
// started again on other ports.
func startDevNodeReady(t *testing.T, ready func(http string) bool, extra ...string) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p := &proc{XDS: freeAddr(t), HTTP: freeAddr(t), log: &lockedBuffer{}, exited: make(chan struct{})}
		args := append([]string{"server", "--dev", "--data-dir", t.TempDir(), "--xds-addr", p.XDS, "--http-addr", p.HTTP, "--xds-tls-addr", freeAddr(t)}, extra...)
		p.cmd = exec.Command(navarchBin, args...)
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.cmd.Wait(); close(p.exited) }()
		t.Cleanup(func() {
			p.kill()
			if t.Failed() {
				t.Logf("navarch server log:\n%s", p.log.String())
			}
		})
		if p.await(t, ready) {
			return p
		}
		if attempt < 3 && strings.Contains(p.log.String(), "address already in use") {
			t.Logf("navarch server lost a port it was given; starting it again: %s", lastLine(p.log.String()))
			continue
		}
		t.Fatalf("navarch server exited before it was ready: %s", lastLine(p.log.String()))
	}
}

// await waits until ready says the node is, and reports true, or until the process
// exits, and reports false.
func (p *proc) await(t *testing.T, ready func(http string) bool) bool {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ready(p.HTTP) {
		select {
		case <-p.exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("navarch at %s not ready after 30s", p.HTTP)
		}
	}
	return true
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// cliResult is what a CLI invocation did.
type cliResult struct {
	Stdout, Stderr string
	Code           int
}

// cli runs the navarch CLI against the node's API.
func cli(t *testing.T, server string, args ...string) cliResult {
	t.Helper()
	return cliWithEnv(t, server, nil, args...)
}

// cliWithEnv is cli with env added to the command's environment (never to the test
// process's, which tests running in parallel share).
func cliWithEnv(t *testing.T, server string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, navarchBin, args...)
	cmd.Env = append(append(os.Environ(), "NAVARCH_SERVER="+server), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running navarch %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func mustCLI(t *testing.T, server string, args ...string) string {
	t.Helper()
	res := cli(t, server, args...)
	if res.Code != 0 {
		t.Fatalf("navarch %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.Code, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// applyServed applies config to dev node p and waits until the node pushes it: a
// proxy connecting from then on is sent it first, not an earlier revision followed
// by it a debounce later.
func applyServed(t *testing.T, p *proc, config string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := client.New("http://"+p.HTTP, "")
	resp, err := c.Apply(ctx, "", []client.File{{Source: "config.yaml", Data: config}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, fmt.Sprintf("the node pushing revision %d", resp.Revision), func() error {
		ms, err := c.Members(ctx)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Self && m.XDSRevision >= resp.Revision {
				return nil
			}
		}
		return fmt.Errorf("members %+v", ms)
	})
}

// startBackends starts a gRPC server for each name (its answers carry the name),
// stopped when the test ends.
func startBackends(t *testing.T, names ...string) map[string]*grpcapp.Backend {
	t.Helper()
	out := map[string]*grpcapp.Backend{}
	for _, name := range names {
		b, err := grpcapp.StartBackend(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Stop)
		out[name] = b
	}
	return out
}

// readFile returns the content of the file at path.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventually retries f until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s: %v", what, timeout, err)
}

// get fetches http://addr/path and returns the status code and body.
func get(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// resolverAt is a resolver that asks the DNS server at addr only, over network
// ("udp" or "tcp"; "" for whichever the lookup asks for: UDP, then TCP for an answer
// too long for it).
func resolverAt(addr, network string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, asked, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, cmp.Or(network, asked), addr)
	}}
}
