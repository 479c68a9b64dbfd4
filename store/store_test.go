package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
)

func openTestStore(t *testing.T) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ClientURL, cfg.PeerURL = AnyLoopbackURL, AnyLoopbackURL
	cfg.UnsafeNoFsync = true
	s, err := Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func decodeOne(t *testing.T, doc string) *api.Resource {
	t.Helper()
	rs, _, err := api.Decode("test", []byte(doc), "")
	if err != nil || len(rs) != 1 {
		t.Fatalf("decode: %v (%d resources)", err, len(rs))
	}
	return rs[0]
}

const vsDoc = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
`

func TestApplyCreatesUpdatesAndLeavesUnchanged(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	vs := decodeOne(t, vsDoc)

	res, err := s.Apply(ctx, ConfigSpace, []*api.Resource{vs})
	if err != nil || res[0].Action != Created {
		t.Fatalf("first apply: %v %+v", err, res)
	}
	created := res[0].Resource
	if created.Meta.ResourceVersion == "" || created.Meta.Generation != 1 || created.Meta.CreationTimestamp == nil {
		t.Fatalf("store metadata not set: %+v", created.Meta)
	}

	res, err = s.Apply(ctx, ConfigSpace, []*api.Resource{vs})
	if err != nil || res[0].Action != Unchanged || res[0].Resource.Meta.ResourceVersion != created.Meta.ResourceVersion {
		t.Fatalf("re-apply of the same spec: %v %+v, want unchanged at %s", err, res, created.Meta.ResourceVersion)
	}

	changed := vs.Clone()
	changed.Spec.(*networking.VirtualService).Http[0].Route[0].Destination.Subset = "v2"
	res, err = s.Apply(ctx, ConfigSpace, []*api.Resource{changed})
	if err != nil || res[0].Action != Configured || res[0].Resource.Meta.Generation != 2 {
		t.Fatalf("apply of a change: %v %+v", err, res)
	}
	got, err := s.Get(ctx, ConfigSpace, vs.Key())
	if err != nil {
		t.Fatal(err)
	}
	if sub := got.Spec.(*networking.VirtualService).Http[0].Route[0].Destination.Subset; sub != "v2" {
		t.Fatalf("stored subset %q, want v2", sub)
	}
	if !got.Meta.CreationTimestamp.Equal(*created.Meta.CreationTimestamp) {
		t.Fatal("an update must keep the creation timestamp")
	}
}

// TestDryRunSaysWhatApplyWouldDoAndWritesNothing: a dry run reports created,
// configured and unchanged as Apply would, refuses what Apply refuses, and leaves the
// store's revision where it was.
func TestDryRunSaysWhatApplyWouldDoAndWritesNothing(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	vs := decodeOne(t, vsDoc)
	rev := func() int64 {
		t.Helper()
		r, err := s.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	before := rev()
	res, err := s.DryRun(ctx, ConfigSpace, []*api.Resource{vs})
	if err != nil || res[0].Action != Created {
		t.Fatalf("dry run of a new resource: %v %+v", err, res)
	}
	if _, err := s.Get(ctx, ConfigSpace, vs.Key()); !errors.Is(err, ErrNotFound) || rev() != before {
		t.Fatalf("the dry run wrote: get %v, revision %d -> %d", err, before, rev())
	}

	if _, err := s.Apply(ctx, ConfigSpace, []*api.Resource{vs}); err != nil {
		t.Fatal(err)
	}
	before = rev()
	changed := vs.Clone()
	changed.Spec.(*networking.VirtualService).Http[0].Route[0].Destination.Subset = "v2"
	res, err = s.DryRun(ctx, ConfigSpace, []*api.Resource{vs, changed})
	if err != nil || len(res) != 1 || res[0].Action != Configured {
		t.Fatalf("dry run of a change (the last of a key wins): %v %+v", err, res)
	}
	if res, err = s.DryRun(ctx, ConfigSpace, []*api.Resource{vs}); err != nil || res[0].Action != Unchanged {
		t.Fatalf("dry run of the stored spec: %v %+v", err, res)
	}
	got, err := s.Get(ctx, ConfigSpace, vs.Key())
	if err != nil || got.Spec.(*networking.VirtualService).Http[0].Route[0].Destination.Subset != "v1" || rev() != before {
		t.Fatalf("the dry run wrote: %v, revision %d -> %d", err, before, rev())
	}

	invalid := vs.Clone()
	invalid.Spec.(*networking.VirtualService).Http[0].Route[0].Weight = -1
	if _, err := s.DryRun(ctx, ConfigSpace, []*api.Resource{invalid}); err == nil {
		t.Fatal("a dry run passed a resource Apply refuses")
	}
}

func TestUpdateIsCompareAndSwap(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	created, err := s.Create(ctx, ConfigSpace, decodeOne(t, vsDoc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, ConfigSpace, decodeOne(t, vsDoc)); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	first := created.Clone()
	first.Spec.(*networking.VirtualService).Hosts = []string{"reviews", "reviews.example.com"}
	if _, err := s.Update(ctx, ConfigSpace, first); err != nil {
		t.Fatalf("update at the current version: %v", err)
	}
	stale := created.Clone() // still carries the first resourceVersion
	stale.Spec.(*networking.VirtualService).Hosts = []string{"stale"}
	if _, err := s.Update(ctx, ConfigSpace, stale); !errors.Is(err, ErrConflict) {
		t.Fatalf("update at a stale version: %v, want ErrConflict", err)
	}
	if _, _, err := s.Delete(ctx, ConfigSpace, created.Key(), created.Meta.ResourceVersion); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete at a stale version: %v, want ErrConflict", err)
	}
	if _, _, err := s.Delete(ctx, ConfigSpace, created.Key(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, ConfigSpace, created.Key()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
}

func TestInvalidResourceIsNeverWritten(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	good := decodeOne(t, vsDoc)
	bad := good.Clone()
	bad.Meta.Name = "bad"
	bad.Spec.(*networking.VirtualService).Http[0].Route[0].Destination.Host = ""
	if _, err := s.Apply(ctx, ConfigSpace, []*api.Resource{good, bad}); err == nil {
		t.Fatal("apply with an invalid resource succeeded")
	}
	rs, _, err := s.List(ctx, ConfigSpace, api.VirtualService, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 0 {
		t.Fatalf("an apply that failed validation stored %d resources, want none", len(rs))
	}
}

func TestWatchFollowsChangesInOrder(t *testing.T) {
	s := openTestStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, rev, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	batches := s.Watch(ctx, rev)
	vs := decodeOne(t, vsDoc)
	if _, err := s.Apply(ctx, ConfigSpace, []*api.Resource{vs}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx, ConfigSpace, vs.Key(), ""); err != nil {
		t.Fatal(err)
	}
	var events []Event
	for len(events) < 2 {
		b := <-batches
		if b.Err != nil {
			t.Fatal(b.Err)
		}
		events = append(events, b.Events...)
	}
	if events[0].Deleted || events[0].Resource == nil || events[0].Key != vs.Key() {
		t.Fatalf("first event %+v, want the put of %s", events[0], vs)
	}
	if !events[1].Deleted || events[1].Revision <= events[0].Revision {
		t.Fatalf("second event %+v, want the delete after revision %d", events[1], events[0].Revision)
	}
	entries, _, err := s.Snapshot(ctx)
	if err != nil || len(entries) != 0 {
		t.Fatalf("snapshot after delete: %v %d entries", err, len(entries))
	}
}

func TestKeysRoundTrip(t *testing.T) {
	for _, sp := range []Space{ConfigSpace, RegistrySpace("consul")} {
		k := api.Key{Kind: api.ServiceEntry, Namespace: "default", Name: "ratings"}
		gotSp, gotK, err := ParseKey(sp.Key(k))
		if err != nil || gotSp != sp || gotK != k {
			t.Fatalf("ParseKey(%q) = %v %v %v", sp.Key(k), gotSp, gotK, err)
		}
	}
	if _, _, err := ParseKey("/navarch/nodes/n1"); err == nil {
		t.Fatal("a node key parsed as a resource key")
	}
}

// TestLayeredReadsTheFirstSpaceThatHasTheKey: a resource applied to navarch hides a
// mirrored one of the same key; a key only mirrored is read from its source.
func TestLayeredReadsTheFirstSpaceThatHasTheKey(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	mirrored := RegistrySpace("kubernetes.c1.config")
	l := Layered{St: s, Spaces: []Space{ConfigSpace, mirrored}}
	vs := decodeOne(t, vsDoc)
	if _, err := l.Get(ctx, vs.Key()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("in no space: %v, want ErrNotFound", err)
	}
	if _, err := s.Apply(ctx, mirrored, []*api.Resource{vs}); err != nil {
		t.Fatal(err)
	}
	got, err := l.Get(ctx, vs.Key())
	if err != nil || got.Spec.(*networking.VirtualService).Http[0].Route[0].Destination.Subset != "v1" {
		t.Fatalf("mirrored only: %v, %v", got, err)
	}
	applied := decodeOne(t, strings.Replace(vsDoc, "subset: v1", "subset: v2", 1))
	if _, err := s.Apply(ctx, ConfigSpace, []*api.Resource{applied}); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Get(ctx, vs.Key()); err != nil || got.Spec.(*networking.VirtualService).Http[0].Route[0].Destination.Subset != "v2" {
		t.Fatalf("applied and mirrored: %v, %v; want the applied one", got, err)
	}
}

// TestWatchKeysSeesWritesOfItsKeys: a resource watched by key is seen written and
// deleted, in either space watched, and a write of another key sets nothing off.
func TestWatchKeysSeesWritesOfItsKeys(t *testing.T) {
	s := openTestStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vs := decodeOne(t, vsDoc)
	changes := make(chan struct{}, 16)
	s.WatchKeys(ctx, vs.Key(), func() { changes <- struct{}{} }, ConfigSpace, RegistrySpace("test"))
	await := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-ctx.Done():
			t.Fatalf("%s: not seen", what)
		}
	}
	other := decodeOne(t, strings.Replace(vsDoc, "name: reviews", "name: other", 1))
	if other.Key() == vs.Key() {
		t.Fatal("the other VirtualService has the watched key")
	}
	for _, step := range []struct {
		what string
		do   func() error
	}{
		{"a write of another key, then of the key", func() error {
			if _, err := s.Apply(ctx, ConfigSpace, []*api.Resource{other}); err != nil {
				return err
			}
			_, err := s.Apply(ctx, ConfigSpace, []*api.Resource{vs})
			return err
		}},
		{"its delete", func() error { _, _, err := s.Delete(ctx, ConfigSpace, vs.Key(), ""); return err }},
		{"a write in the other space", func() error { _, err := s.Apply(ctx, RegistrySpace("test"), []*api.Resource{vs}); return err }},
	} {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		await(step.what)
		if n := len(changes); n != 0 {
			t.Fatalf("%s: %d more changes seen than made", step.what, n)
		}
	}
}

// WatchKindFrom follows one kind in one namespace from a revision, telling a
// creation from an update; a revision compacted away or not reached yet is refused
// at once.
func TestWatchKindFromFollowsOneKindOfOneNamespace(t *testing.T) {
	s := openTestStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vs := decodeOne(t, vsDoc)
	if _, err := s.Apply(ctx, ConfigSpace, []*api.Resource{vs}); err != nil {
		t.Fatal(err)
	}
	_, rev, err := s.List(ctx, ConfigSpace, api.VirtualService, "default")
	if err != nil {
		t.Fatal(err)
	}
	batches, err := s.WatchKindFrom(ctx, ConfigSpace, api.VirtualService, "default", rev)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := decodeOne(t, strings.Replace(vsDoc, "namespace: default", "namespace: other", 1))
	dr := decodeOne(t, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews}\n")
	other := decodeOne(t, strings.Replace(vsDoc, "name: reviews", "name: other", 1))
	changed := decodeOne(t, strings.Replace(vsDoc, "subset: v1", "subset: v2", 1))
	if _, err := s.Apply(ctx, ConfigSpace, []*api.Resource{elsewhere, dr, other}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, ConfigSpace, []*api.Resource{changed}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Delete(ctx, ConfigSpace, vs.Key(), ""); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		b := <-batches
		if b.Err != nil {
			t.Fatal(b.Err)
		}
		for _, e := range b.Events {
			got = append(got, fmt.Sprintf("%s created=%v deleted=%v", e.Key, e.Created, e.Deleted))
		}
	}
	want := []string{
		"VirtualService default/other created=true deleted=false",
		"VirtualService default/reviews created=false deleted=false",
		"VirtualService default/reviews created=false deleted=true",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	now, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WatchKindFrom(ctx, ConfigSpace, api.VirtualService, "", now+100); !errors.Is(err, ErrFutureRevision) {
		t.Errorf("a watch from a revision ahead of the store: %v, want ErrFutureRevision", err)
	}
	if _, err := s.cli.Compact(ctx, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WatchKindFrom(ctx, ConfigSpace, api.VirtualService, "", rev); !errors.Is(err, ErrCompacted) {
		t.Errorf("a watch from a compacted revision: %v, want ErrCompacted", err)
	}
}

// CheckLayout records this build's layout on data that has none, keeps what was
// recorded first, and refuses a newer layout or a record it cannot read.
func TestCheckLayout(t *testing.T) {
	s := openTestStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec, err := s.CheckLayout(ctx, "v1.0.0")
	if err != nil || rec != (LayoutRecord{Layout: Layout, WrittenBy: "v1.0.0"}) {
		t.Fatalf("first check: %+v %v", rec, err)
	}
	if rec, err := s.CheckLayout(ctx, "v1.1.0"); err != nil || rec.WrittenBy != "v1.0.0" {
		t.Errorf("second check: %+v %v, want the first record kept", rec, err)
	}
	for value, want := range map[string]string{
		`{"layout":2,"written_by":"v2.0.0"}`: "layout 2, written by navarch v2.0.0; this build reads layout 1: run v2.0.0 or a later build",
		`not json`:                           "which this build cannot read",
	} {
		if _, err := s.cli.Put(ctx, LayoutKey, value); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CheckLayout(ctx, "v1.0.0"); !errors.Is(err, ErrNewerLayout) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrNewerLayout saying %q", value, err, want)
		}
	}
}
