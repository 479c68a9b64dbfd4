package node

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/navarch/navarch/internal/ports"
	"github.com/navarch/navarch/store"
)

// --force-new-cluster is refused while a member the data dir records answers at its
// peer URL, whatever gossip has heard: here the data dir is a copy of a running
// member's, taken while it was stopped.
func TestForceNewClusterRefusedWhileARecordedMemberAnswers(t *testing.T) {
	peer, err := ports.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	cfg := store.DefaultConfig()
	cfg.Name, cfg.DataDir, cfg.UnsafeNoFsync = "a", filepath.Join(t.TempDir(), "a"), true
	cfg.ClientURL, cfg.PeerURL = store.AnyLoopbackURL, "http://"+peer
	st, err := store.Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	copied := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(copied, os.DirFS(cfg.DataDir)); err != nil {
		t.Fatal(err)
	}

	ca, err := derivedCA(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	files, _, err := ca.issueNodeCert(filepath.Join(t.TempDir(), "tls"), "n1", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: Config{Name: "n1"}, tlsFiles: files, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := n.noRecordedMemberAnswers(context.Background(), copied, "--force-new-cluster"); err != nil {
		t.Fatalf("with the recorded member stopped: %v", err)
	}

	if st, err = store.Open(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = n.noRecordedMemberAnswers(context.Background(), copied, "--force-new-cluster")
	if err == nil || !strings.Contains(err.Error(), "--force-new-cluster refused: node a (http://"+peer+") answers") {
		t.Fatalf("with the recorded member running: %v, want a refusal naming it", err)
	}
}
