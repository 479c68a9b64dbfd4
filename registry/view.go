package registry

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/internal/wait"
	"github.com/navarch/navarch/store"
)

// Source is what a View follows: the store's snapshot and watch. *store.Store
// implements it. Both methods may block on etcd.
type Source interface {
	Snapshot(ctx context.Context) ([]store.Entry, int64, error)
	Watch(ctx context.Context, rev int64) <-chan store.Batch
}

var _ Source = (*store.Store)(nil)

type entryKey struct {
	source string
	key    api.Key
}

// View follows the store and hands out Snapshots. Run owns the following; Snapshot,
// Changes and Ready may be called from any goroutine.
type View struct {
	src    Source
	domain string
	log    *slog.Logger

	changes chan struct{}
	ready   chan struct{}

	mu        sync.Mutex
	entries   map[entryKey]store.Entry
	status    map[string]store.SourceStatus
	rev       int64
	dirty     bool
	changedAt time.Time
	reasons   map[string]bool // since the last snapshot (ChangeReason)
	snap      *Snapshot
	loaded    bool
}

// NewView returns a view of src that resolves short host names under domain.
func NewView(src Source, domain string, log *slog.Logger) *View {
	return &View{
		src:     src,
		domain:  domain,
		log:     log.With("component", "registry"),
		changes: make(chan struct{}, 1),
		ready:   make(chan struct{}),
		entries: map[entryKey]store.Entry{},
		status:  map[string]store.SourceStatus{},
	}
}

// Run follows the store until ctx ends: it loads everything at one revision, then
// applies the watch's changes; when the watch breaks it loads again.
func (v *View) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		entries, rev, err := v.src.Snapshot(ctx)
		if err != nil {
			v.log.Warn("loading the store failed; retrying", "err", err, "in", backoff)
			if !wait.Sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		v.reset(entries, rev)
		for b := range v.src.Watch(ctx, rev) {
			if b.Err != nil {
				if ctx.Err() == nil {
					v.log.Warn("store watch ended; reloading", "err", b.Err)
				}
				break
			}
			v.apply(b)
		}
	}
	return nil
}

func (v *View) reset(entries []store.Entry, rev int64) {
	m := make(map[entryKey]store.Entry, len(entries))
	status := map[string]store.SourceStatus{}
	for _, e := range entries {
		if e.Status != nil {
			status[e.Status.Source] = *e.Status
			continue
		}
		m[entryKey{e.Space.Source(), e.Resource.Key()}] = e
	}
	v.mu.Lock()
	v.entries, v.status, v.rev = m, status, rev
	v.markDirty(ReasonGlobal)
	first := !v.loaded
	v.loaded = true
	v.mu.Unlock()
	if first {
		close(v.ready)
	}
	v.signal()
}

func (v *View) apply(b store.Batch) {
	v.mu.Lock()
	for _, ev := range b.Events {
		if ev.Status != nil {
			if ev.Deleted {
				delete(v.status, ev.Status.Source)
			} else {
				v.status[ev.Status.Source] = *ev.Status
			}
			continue
		}
		k := entryKey{ev.Space.Source(), ev.Key}
		if ev.Deleted {
			delete(v.entries, k)
		} else {
			v.entries[k] = store.Entry{Space: ev.Space, Resource: ev.Resource}
		}
		v.markDirty(ChangeReason(ev.Key.Kind))
	}
	changed := len(b.Events) > 0
	if b.Revision > v.rev {
		v.rev = b.Revision
	}
	v.mu.Unlock()
	if changed {
		v.signal()
	}
}

// markDirty records a change; v.mu must be held.
func (v *View) markDirty(reason string) {
	if !v.dirty {
		v.dirty = true
		v.changedAt = time.Now()
	}
	if v.reasons == nil {
		v.reasons = map[string]bool{}
	}
	v.reasons[reason] = true
}

// Reasons a snapshot changed, as Istio names its push triggers (pilot_push_triggers).
const (
	ReasonGlobal   = "global"   // the mesh config, or everything (the store loaded again)
	ReasonService  = "service"  // a service: a ServiceEntry, or a registry's service
	ReasonEndpoint = "endpoint" // a workload: a WorkloadEntry, or a registry's
	ReasonConfig   = "config"   // any other configuration
)

// ChangeReason is the reason a change to a resource of kind k is pushed.
func ChangeReason(k *api.Kind) string {
	switch k {
	case api.MeshConfig:
		return ReasonGlobal
	case api.ServiceEntry:
		return ReasonService
	case api.WorkloadEntry:
		return ReasonEndpoint
	}
	return ReasonConfig
}

func (v *View) signal() {
	select {
	case v.changes <- struct{}{}:
	default:
	}
}

// Changes delivers a signal after the view changed. Signals coalesce: one receive may
// stand for many changes. Only one goroutine (the xDS pusher) should receive.
func (v *View) Changes() <-chan struct{} { return v.changes }

// Ready is closed once the view has loaded the store for the first time.
func (v *View) Ready() <-chan struct{} { return v.ready }

// Revision returns the store revision the view has seen.
func (v *View) Revision() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rev
}

// Snapshot returns an immutable snapshot of everything the view has seen. It builds a
// new one only when something changed since the last call; callers may compare
// snapshots by pointer to tell whether anything changed.
func (v *View) Snapshot() *Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.snap != nil && !v.dirty {
		// Nothing changed: the same snapshot, though the store may have moved on
		// (writes to keys outside resources, progress notifications).
		return v.snap
	}
	entries := make([]store.Entry, 0, len(v.entries))
	for _, e := range v.entries {
		entries = append(entries, e)
	}
	s := NewSnapshot(entries, v.rev, v.domain)
	s.ChangedAt = v.changedAt
	s.Reasons = SortedKeys(v.reasons)
	v.snap, v.dirty, v.reasons = s, false, nil
	return s
}

// Entries returns everything the view holds, in no order, and the revision it is of:
// what a snapshot is built from, for callers that build one with changes of their own
// (analysis of configuration not yet applied).
func (v *View) Entries() ([]store.Entry, int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	entries := make([]store.Entry, 0, len(v.entries))
	for _, e := range v.entries {
		entries = append(entries, e)
	}
	return entries, v.rev
}

// Sources returns the sync status of every registry source that reported one. A
// source's status does not change what proxies get, so it is kept out of snapshots.
func (v *View) Sources() map[string]store.SourceStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]store.SourceStatus, len(v.status))
	for k, st := range v.status {
		out[k] = st
	}
	return out
}
