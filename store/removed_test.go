package store

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/navarch/navarch/internal/ports"
)

// A member removed from the cluster stops, and Err says so, naming what to do; a
// stop of the node's own making (Close) is not an error.
func TestErrSaysTheMemberWasRemoved(t *testing.T) {
	addr := func() string {
		a, err := ports.Loopback()
		if err != nil {
			t.Fatal(err)
		}
		return "http://" + a
	}
	dir := t.TempDir()
	aPeer, aClient, bPeer := addr(), addr(), addr()
	cfg := DefaultConfig()
	cfg.Name, cfg.DataDir, cfg.PeerURL, cfg.ClientURL, cfg.UnsafeNoFsync = "a", filepath.Join(dir, "a"), aPeer, aClient, true
	a, err := Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	remote, err := DialRemote([]string{aClient}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	id, _, err := remote.AddLearner(ctx, bPeer)
	if err != nil {
		t.Fatal(err)
	}
	bcfg := cfg
	bcfg.Name, bcfg.DataDir, bcfg.PeerURL, bcfg.ClientURL = "b", filepath.Join(dir, "b"), bPeer, AnyLoopbackURL
	bcfg.Join, bcfg.InitialCluster = true, "a="+aPeer+",b="+bPeer
	b, err := Open(bcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	if err := a.RemoveMember(ctx, id); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-b.Err():
		if !errors.Is(err, ErrMemberRemoved) || !strings.Contains(err.Error(), bcfg.DataDir) {
			t.Errorf("the removed member's Err: %v, want ErrMemberRemoved naming its data dir", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the removed member's Err said nothing after 30s")
	}

	a.Close()
	select {
	case err := <-a.Err():
		t.Errorf("Err after Close: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
}
