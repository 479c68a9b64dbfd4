// Package peers finds the real peers tests start (a Consul agent, kube-apiserver and
// its etcd, Istio's parts), which `make peers` builds into <repo>/.peers/bin, and
// reads their logs for failure messages.
package peers

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
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
