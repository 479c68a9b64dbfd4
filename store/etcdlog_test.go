package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
)

// syncBuffer is a bytes.Buffer that etcd's goroutines may write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.b.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func TestEtcdLogsGoToTheNodeLogger(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := newEtcdLogger(log, "info", nil).With(zap.String("member", "n1"))
	l.Debug("below the level")
	l.Error("apply failed", zap.Error(errors.New("disk full")), zap.Int("attempt", 3))
	rs := buf.records(t)
	if len(rs) != 1 {
		t.Fatalf("got %d records, want only the error: %v", len(rs), rs)
	}
	r := rs[0]
	if r["level"] != "ERROR" || r["msg"] != "apply failed" || r["component"] != "etcd" || r["member"] != "n1" ||
		r["error"] != "disk full" || r["attempt"] != float64(3) {
		t.Errorf("record %v", r)
	}
}

// TestEtcdStartAndStopAreQuiet: a healthy member's start and stop log nothing at
// warning level or above; what etcd says about them is kept at debug level.
func TestEtcdStartAndStopAreQuiet(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := DefaultConfig()
	cfg.Name = "n1"
	cfg.DataDir = filepath.Join(t.TempDir(), "etcd") // etcd creates it 0700, as a node's
	cfg.ClientURL, cfg.PeerURL = AnyLoopbackURL, AnyLoopbackURL
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "debug"
	s, err := Open(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Put(t.Context(), "/probe", "x"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	demoted := false
	for _, r := range buf.records(t) {
		msg, _ := r["msg"].(string)
		switch {
		case r["level"] == "WARN" || r["level"] == "ERROR":
			if !strings.Contains(msg, "took too long") { // a slow disk under a loaded test run
				t.Errorf("%s: %s %v", r["level"], msg, r["error"])
			}
		case msg == "simple token is not cryptographically signed":
			demoted = r["level"] == "DEBUG" && r["component"] == "etcd"
		}
	}
	if !demoted {
		t.Error("etcd's start-up warning about simple tokens is not in the log at debug level")
	}
}
