package store

import (
	"context"
	"testing"
	"time"
)

// A stopped member's data dir says which members the cluster had; a running
// member answers at its peer URL, a stopped one does not.
func TestRecordedMembersAndPeerAnswers(t *testing.T) {
	s := openTestStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peer := "http://" + s.etcd.Peers[0].Listener.Addr().String()
	if err := PeerAnswers(ctx, peer, nil); err != nil {
		t.Fatalf("the running member at %s: %v", peer, err)
	}
	s.Close()
	if err := PeerAnswers(ctx, peer, nil); err == nil {
		t.Errorf("the stopped member at %s answered", peer)
	}
	ms, err := RecordedMembers(s.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != s.cfg.Name || ms[0].ID == 0 || len(ms[0].PeerURLs) != 1 {
		t.Fatalf("recorded members %+v, want the one member %q with its id and peer URL", ms, s.cfg.Name)
	}
	if _, err := RecordedMembers(t.TempDir()); err == nil {
		t.Error("a data dir without a member recorded members")
	}
}
