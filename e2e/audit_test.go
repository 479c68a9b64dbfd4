package e2e

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestWritesAreAudited: the node logs every configuration change made through its
// API (resource, action, revision, the caller's address) and every request that
// may change something, refused ones included, without the request's secrets.
func TestWritesAreAudited(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	const token = "audit-test-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startDevNode(t, "--admin-token-file", tokenFile)
	t.Setenv("NAVARCH_TOKEN_FILE", tokenFile)
	dir := t.TempDir()
	mustCLI(t, p.HTTP, "apply", "-f", writeFile(t, dir, "vs.yaml", splitVS(80, 20)))
	mustCLI(t, p.HTTP, "apply", "-f", writeFile(t, dir, "vs.yaml", splitVS(80, 20))) // unchanged: no change logged
	mustCLI(t, p.HTTP, "delete", "vs", "reviews")
	resp, err := http.Post("http://"+p.HTTP+"/api/v1/apply", "application/yaml", strings.NewReader(splitVS(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an apply without the token: %s", resp.Status)
	}

	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`msg="configuration changed" resource="VirtualService default/reviews" action=created revision=\d+ remote=127\.0\.0\.1:\d+`),
		regexp.MustCompile(`msg="configuration changed" resource="VirtualService default/reviews" action=deleted revision=\d+ remote=127\.0\.0\.1:\d+`),
		regexp.MustCompile(`msg="api request" method=POST path=/api/v1/apply status=200 token=admin remote=127\.0\.0\.1:\d+ agent=Go-http-client/1\.1`),
		regexp.MustCompile(`msg="api request" method=DELETE path=/api/v1/config/virtualservices/default/reviews status=200`),
		regexp.MustCompile(`msg="api request" method=POST path=/api/v1/apply status=401 token=none`),
	} {
		eventually(t, 10*time.Second, "the log line "+want.String(), func() error {
			if !want.MatchString(p.log.String()) {
				return errors.New("not logged yet")
			}
			return nil
		})
	}
	log := p.log.String()
	if n := strings.Count(log, `msg="configuration changed"`); n != 2 {
		t.Errorf("%d configuration changes logged, want 2 (the unchanged apply logs none):\n%s", n, log)
	}
	if strings.Contains(log, token) {
		t.Errorf("the admin token is in the log:\n%s", log)
	}
}

// TestReadOnlyToken: the token of --read-token-file reads configuration and runs
// navarch status, and is refused writes and snapshots with a clear error; the
// audit trail names the token each request carried.
func TestReadOnlyToken(t *testing.T) {
	dir := t.TempDir()
	adminFile, readerFile := filepath.Join(dir, "admin"), filepath.Join(dir, "reader")
	os.WriteFile(adminFile, []byte("admin-token-0123456789"), 0o600)
	os.WriteFile(readerFile, []byte("reader-token-0123456789"), 0o600)
	p := startDevNode(t, "--admin-token-file", adminFile, "--read-token-file", readerFile)

	t.Setenv("NAVARCH_TOKEN_FILE", adminFile)
	mustCLI(t, p.HTTP, "apply", "-f", writeFile(t, dir, "vs.yaml", splitVS(80, 20)))

	t.Setenv("NAVARCH_TOKEN_FILE", readerFile)
	if out := mustCLI(t, p.HTTP, "get", "vs"); !strings.Contains(out, "reviews") {
		t.Errorf("get through the read-only token:\n%s", out)
	}
	if res := cli(t, p.HTTP, "status"); res.Code == 2 || !strings.Contains(res.Stdout, "proxies:") {
		t.Errorf("status through the read-only token: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, args := range [][]string{
		{"apply", "-f", filepath.Join(dir, "vs.yaml")},
		{"delete", "vs", "reviews"},
		{"snapshot", "save", filepath.Join(dir, "backup.db")},
	} {
		res := cli(t, p.HTTP, args...)
		if res.Code == 0 || !strings.Contains(res.Stderr, "forbidden: the read-only token cannot ") {
			t.Errorf("%v through the read-only token: exit %d, %q", args, res.Code, res.Stderr)
		}
	}
	t.Setenv("NAVARCH_TOKEN_FILE", adminFile)
	if out := mustCLI(t, p.HTTP, "get", "vs", "reviews", "-o", "yaml"); !strings.Contains(out, "weight: 80") {
		t.Errorf("a refused write changed the resource:\n%s", out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`msg="api request" method=POST path=/api/v1/apply status=200 token=admin `),
		regexp.MustCompile(`msg="api request" method=POST path=/api/v1/apply status=403 token=reader `),
		regexp.MustCompile(`msg="api request" method=GET path=/api/v1/snapshot status=403 token=reader `),
	} {
		eventually(t, 10*time.Second, "the log line "+want.String(), func() error {
			if !want.MatchString(p.log.String()) {
				return errors.New("not logged yet")
			}
			return nil
		})
	}
}
