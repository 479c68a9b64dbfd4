package node

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/navarch/navarch/internal/ports"
	"github.com/navarch/navarch/store"
)

// testNodeWithClusterTLS is a Node with the certificate a node of the cluster of
// the zero secret has, enough to ask other members' etcd whether they run.
func testNodeWithClusterTLS(t *testing.T, cfg Config) *Node {
	t.Helper()
	ca, err := derivedCA(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	files, _, err := ca.issueNodeCert(filepath.Join(t.TempDir(), "tls"), cfg.Name, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return &Node{cfg: cfg, tlsFiles: files, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// memberConfig is the configuration of member a of a one-member cluster, at peer.
func memberConfig(t *testing.T) (cfg store.Config, peer string) {
	t.Helper()
	peer, err := ports.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	cfg = store.DefaultConfig()
	cfg.Name, cfg.DataDir, cfg.UnsafeNoFsync = "a", filepath.Join(t.TempDir(), "a"), true
	cfg.ClientURL, cfg.PeerURL = store.AnyLoopbackURL, "http://"+peer
	return cfg, peer
}

func openMember(t *testing.T, cfg store.Config) *store.Store {
	t.Helper()
	st, err := store.Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// --force-new-cluster is refused while a member the data dir records answers at its
// peer URL, whatever gossip has heard: here the data dir is a copy of a running
// member's, taken while it was stopped.
func TestForceNewClusterRefusedWhileARecordedMemberAnswers(t *testing.T) {
	cfg, peer := memberConfig(t)
	st := openMember(t, cfg)
	st.Close()
	copied := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(copied, os.DirFS(cfg.DataDir)); err != nil {
		t.Fatal(err)
	}

	n := testNodeWithClusterTLS(t, Config{Name: "n1"})
	members, err := store.RecordedMembers(copied)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.noRecordedMemberAnswers(context.Background(), members, "--force-new-cluster"); err != nil {
		t.Fatalf("with the recorded member stopped: %v", err)
	}

	st = openMember(t, cfg)
	defer st.Close()
	err = n.noRecordedMemberAnswers(context.Background(), members, "--force-new-cluster")
	if err == nil || !strings.Contains(err.Error(), "--force-new-cluster refused: node a (http://"+peer+") answers") {
		t.Fatalf("with the recorded member running: %v, want a refusal naming it", err)
	}
}

// --restore-from is refused while a member of the cluster the snapshot was taken
// from answers at its peer URL: restoring beside the live cluster would start a
// second one. Once that member is stopped, the restore goes ahead.
func TestRestoreRefusedWhileTheSnapshotsClusterAnswers(t *testing.T) {
	cfg, peer := memberConfig(t)
	st := openMember(t, cfg)
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := st.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	n := testNodeWithClusterTLS(t, Config{Name: "n1", RestoreFrom: backup})
	restored := store.DefaultConfig()
	restored.Name, restored.DataDir = "n1", filepath.Join(t.TempDir(), "n1")
	restored.PeerURL = "http://127.0.0.1:1" // written into the new member, never bound here
	err = n.restore(ctx, restored)
	if err == nil || !strings.Contains(err.Error(), "--restore-from refused: node a (http://"+peer+") answers") {
		t.Fatalf("restoring with the snapshot's member running: %v, want a refusal naming it", err)
	}
	if _, err := os.Stat(restored.DataDir); !os.IsNotExist(err) {
		t.Fatalf("the refused restore left %s behind (%v)", restored.DataDir, err)
	}

	st.Close()
	if err := n.restore(ctx, restored); err != nil {
		t.Fatalf("restoring with the snapshot's member stopped: %v", err)
	}
	members, err := store.RecordedMembers(restored.DataDir)
	if err != nil || len(members) != 1 || members[0].Name != "n1" {
		t.Fatalf("the restored data dir records %+v (%v), want n1 alone", members, err)
	}
}
