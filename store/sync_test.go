package store

import (
	"context"
	"fmt"
	"testing"
	"time"

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
