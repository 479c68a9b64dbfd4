package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
)

func workloadEntry(t *testing.T, name, addr string) *api.Resource {
	t.Helper()
	return decodeOne(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s, namespace: consul}
spec: {address: %s, labels: {app: web}}
`, name, addr))
}

func TestSyncWritesOnlyWhatChanged(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	sp := RegistrySpace("consul")
	var desired []*api.Resource
	for i := 0; i < 1200; i++ {
		desired = append(desired, workloadEntry(t, fmt.Sprintf("web-%d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)))
	}
	st, err := s.Sync(ctx, sp, desired)
	if err != nil {
		t.Fatal(err)
	}
	if st.Created != 1200 || st.Txns != 3 {
		t.Fatalf("first sync: %+v, want 1200 created in 3 transactions", st)
	}
	_, rev, _ := s.Snapshot(ctx)

	desired[7] = workloadEntry(t, "web-7", "10.9.9.9")
	desired = desired[:1100]
	// A dry run says what the sync below writes, and writes nothing.
	st, changes, err := s.SyncDryRun(ctx, sp, append(desired[:1100:1100], workloadEntry(t, "new-1", "10.8.0.1")))
	if err != nil {
		t.Fatal(err)
	}
	if st.Updated != 1 || st.Deleted != 100 || st.Created != 1 || st.Unchanged != 1099 || st.Txns != 0 || len(changes) != 102 {
		t.Fatalf("dry run: %+v, %d changes; want 1 created, 1 updated, 100 deleted, nothing written", st, len(changes))
	}
	actions := map[string]Action{}
	for _, c := range changes {
		actions[c.Key.Name] = c.Action
	}
	if actions["new-1"] != Created || actions["web-7"] != Configured || actions["web-1150"] != Deleted {
		t.Fatalf("dry-run changes %v", actions)
	}
	if _, after, _ := s.Snapshot(ctx); after != rev {
		t.Fatalf("the dry run moved the revision from %d to %d", rev, after)
	}
	st, err = s.Sync(ctx, sp, desired)
	if err != nil {
		t.Fatal(err)
	}
	if st.Updated != 1 || st.Deleted != 100 || st.Created != 0 || st.Unchanged != 1099 || st.Txns != 1 {
		t.Fatalf("second sync: %+v, want 1 updated, 100 deleted, 1099 unchanged in one transaction", st)
	}
	st, err = s.Sync(ctx, sp, desired)
	if err != nil || st.Changed() || st.Txns != 0 {
		t.Fatalf("third sync of the same: %+v %v, want nothing written", st, err)
	}
	entries, rev2, _ := s.Snapshot(ctx)
	if len(entries) != 1100 {
		t.Fatalf("%d entries, want 1100", len(entries))
	}
	if rev2 != rev+1 {
		t.Fatalf("revision went from %d to %d, want one new revision (the second sync's one transaction)", rev, rev2)
	}
	if _, _, err := s.List(ctx, ConfigSpace, api.WorkloadEntry, ""); err != nil {
		t.Fatal(err)
	}
}

func TestSourceStatusIsWatched(t *testing.T) {
	s := openTestStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, rev, _ := s.Snapshot(ctx)
	batches := s.Watch(ctx, rev)
	if err := s.PutSourceStatus(ctx, SourceStatus{Source: "consul", Stale: true, Error: "connection refused"}); err != nil {
		t.Fatal(err)
	}
	b := <-batches
	if len(b.Events) != 1 || b.Events[0].Status == nil || !b.Events[0].Status.Stale || b.Events[0].Status.Source != "consul" {
		t.Fatalf("event %+v, want the consul status", b.Events)
	}
	entries, _, _ := s.Snapshot(ctx)
	if len(entries) != 1 || entries[0].Status == nil || entries[0].Status.Error != "connection refused" {
		t.Fatalf("snapshot %+v, want the status", entries)
	}
}

// TestSpaceWriter: between rereads a SpaceWriter works from what it last read and
// wrote: it writes what changed, guarded by the revisions it knows, so a key another
// writer changed is a conflict (and the next sync reads the space again), while a
// key another writer created is left alone until a reread deletes it.
func TestSpaceWriter(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	sp := RegistrySpace("kubernetes.east")
	a, b := workloadEntry(t, "a", "10.0.0.1"), workloadEntry(t, "b", "10.0.0.2")
	w := s.SpaceWriter(sp)
	if st, err := w.Sync(ctx, []*api.Resource{a, b}, false); err != nil || st.Created != 2 {
		t.Fatalf("first sync (reads the space, though not asked to): %+v, %v", st, err)
	}
	a2 := workloadEntry(t, "a", "10.0.0.9")
	if st, err := w.Sync(ctx, []*api.Resource{a2, b}, false); err != nil || st.Updated != 1 || st.Unchanged != 1 {
		t.Fatalf("one change: %+v, %v; want 1 updated, 1 unchanged", st, err)
	}
	if got, err := s.Get(ctx, sp, a2.Key()); err != nil || got.Spec.(*networking.WorkloadEntry).Address != "10.0.0.9" {
		t.Fatalf("a after the update: %v, %v", got, err)
	}

	// Another writer creates c; w does not know it, and writes a without touching it.
	other := s.SpaceWriter(sp)
	c := workloadEntry(t, "c", "10.0.0.3")
	if _, err := other.Sync(ctx, []*api.Resource{a2, b, c}, true); err != nil {
		t.Fatal(err)
	}
	a3 := workloadEntry(t, "a", "10.0.0.7")
	if st, err := w.Sync(ctx, []*api.Resource{a3, b}, false); err != nil || st.Updated != 1 || st.Deleted != 0 {
		t.Fatalf("a write that does not touch the other writer's key: %+v, %v", st, err)
	}
	if _, err := s.Get(ctx, sp, c.Key()); err != nil {
		t.Fatalf("the other writer's key is gone without a reread: %v", err)
	}
	// The other writer changes b: w's b is stale, writing it is a conflict, and
	// nothing is written.
	if _, err := other.Sync(ctx, []*api.Resource{a3, workloadEntry(t, "b", "10.0.0.8"), c}, true); err != nil {
		t.Fatal(err)
	}
	b3 := workloadEntry(t, "b", "10.0.0.6")
	if _, err := w.Sync(ctx, []*api.Resource{a3, b3}, false); !errors.Is(err, ErrConflict) {
		t.Fatalf("writing a key another writer changed: %v, want ErrConflict", err)
	}
	// The next sync reads the space again: it knows b and c now, and deletes c.
	st, err := w.Sync(ctx, []*api.Resource{a3, b3}, false)
	if err != nil || st.Updated != 1 || st.Deleted != 1 {
		t.Fatalf("after a conflict: %+v, %v; want b updated and c deleted", st, err)
	}
	// An invalid resource is refused, and nothing is written.
	bad := workloadEntry(t, "d", "10.0.0.4")
	bad.Spec.(*networking.WorkloadEntry).Address = "not an address!"
	if _, err := w.Sync(ctx, []*api.Resource{a3, b3, bad}, false); err == nil {
		t.Fatal("an invalid resource was accepted")
	}
	if _, err := s.Get(ctx, sp, bad.Key()); err == nil {
		t.Fatal("the invalid resource was written")
	}
}
