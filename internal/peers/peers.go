// Package peers finds the real peers tests start (a Consul agent, kube-apiserver and
// its etcd, Istio's parts), which `make peers` builds into <repo>/.peers/bin, runs
// them (Process), and reads their logs for failure messages.
package peers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/navarch/navarch/internal/ports"
)

// Binary returns the path of the peer binary name: $env when set, else
// <repo>/.peers/bin/<name>. Without it a test is skipped, except in CI ($CI set),
// where it fails: CI must have every peer.
func Binary(t testing.TB, name, env string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(root, ".peers", "bin", name)
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no %s binary at %s (run make peers): %v", name, path, err)
		}
		t.Skipf("no %s binary at %s; run `make peers` (or set %s)", name, path, env)
	}
	return path
}

// RepoRoot finds the directory of navarch's go.mod, above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/navarch/navarch\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("peers: navarch's go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Tail returns the last n lines of a file (a peer's log), or why it cannot.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// Process is a peer process a test owns: started in its own process group with its
// output appended to a log file, stopped by its PID.
type Process struct {
	Name    string   // for messages: "etcd", "consul"
	Bin     string   // the binary
	Args    []string // its arguments
	LogPath string   // where its stdout and stderr go (appended)

	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts the process (again, after Stop). It does not wait for it to be ready.
func (p *Process) Start() error {
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(p.Bin, p.Args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	p.exited = exited
	cmd := p.cmd
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	return nil
}

// Exited is closed when the process last started has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stop sends SIGTERM, then SIGKILL after 10 s, and waits until the process exited.
func (p *Process) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// Kill sends SIGKILL unless the process has exited, and waits until it has.
func (p *Process) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// Ports returns n loopback ports that were free (TCP and UDP) a moment ago, outside
// the kernel's ephemeral range (internal/ports), so that a restarted peer finds its
// ports free again.
func Ports(t testing.TB, n int) []int {
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
