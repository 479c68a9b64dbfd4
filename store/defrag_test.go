package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestDefragmentGivesBackFreedSpace: after a burst of writes is deleted and
// compacted away, the file keeps its size until it is defragmented; a member with
// little to gain is left alone.
func TestDefragmentGivesBackFreedSpace(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	policy := DefragPolicy{MinFree: 1 << 20, MinFreeRatio: 0.3}
	if r, err := s.DefragmentIfWasteful(ctx, policy); err != nil || r.Done {
		t.Fatalf("a fresh member: %+v %v, want nothing done", r, err)
	}
	value := strings.Repeat("x", 20<<10)
	for i := 0; i < 500; i++ {
		if _, err := s.cli.Put(ctx, fmt.Sprintf("%sburst/%04d", Root, i), value); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := s.cli.Delete(ctx, Root+"burst/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// The pages the compaction freed are pending in bbolt until a later write
	// transaction commits with no older reader left; only then does the member
	// report them free. Until then there is nothing to gain, by its figures.
	var r DefragResult
	for deadline := time.Now().Add(10 * time.Second); ; {
		if r, err = s.DefragmentIfWasteful(ctx, policy); err != nil || r.Done || time.Now().After(deadline) {
			break
		}
		if _, err := s.cli.Put(ctx, Root+"tick", time.Now().String()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // past the backend's 100 ms batch commit
	}
	if err != nil || !r.Done || r.After >= r.Before || r.Before-r.InUse < 5<<20 {
		t.Fatalf("after 10 MB written and deleted: %+v %v, want the file shrunk", r, err)
	}
	if r, err := s.DefragmentIfWasteful(ctx, policy); err != nil || r.Done {
		t.Fatalf("right after defragmenting: %+v %v, want nothing done", r, err)
	}
}
