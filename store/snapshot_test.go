package store

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupAndRestore: a snapshot of a member holds its keys at one revision; a
// new one-member cluster restored from it starts with them; a damaged snapshot is
// refused.
func TestBackupAndRestore(t *testing.T) {
	s := openTestStore(t)
	for _, k := range []string{"/navarch/a", "/navarch/b"} {
		if _, err := s.Client().Put(t.Context(), k, "v"+k); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := s.Backup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "snap.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	f.Close()
	info, err := InspectSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Get(t.Context(), "/navarch/b")
	if err != nil {
		t.Fatal(err)
	}
	if info.Revision != resp.Header.Revision || info.Keys < 2 {
		t.Errorf("snapshot %+v, want revision %d and at least 2 keys", info, resp.Header.Revision)
	}

	cfg := DefaultConfig()
	cfg.Name = "restored"
	cfg.DataDir = filepath.Join(t.TempDir(), "etcd")
	cfg.ClientURL, cfg.PeerURL = AnyLoopbackURL, AnyLoopbackURL
	cfg.UnsafeNoFsync = true
	if err := RestoreSnapshot(path, cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	r, err := Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Client().Get(t.Context(), "/navarch/a")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v/navarch/a" {
		t.Fatalf("restored member: %v %v", got, err)
	}
	ms, err := r.Members(t.Context())
	if err != nil || len(ms) != 1 || ms[0].Name != "restored" {
		t.Errorf("restored members %+v %v, want itself alone", ms, err)
	}

	// One byte changed: the digest no longer matches.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 0xff
	damaged := filepath.Join(t.TempDir(), "damaged.db")
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := InspectSnapshot(damaged); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("a damaged snapshot: %v", err)
	}
	if err := os.WriteFile(damaged, b[:len(b)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := InspectSnapshot(damaged); err == nil {
		t.Error("a snapshot cut short was accepted")
	}
}
