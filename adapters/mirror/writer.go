// Package mirror holds what every registry adapter does the same way once it knows
// what its source holds: batching the source's changes (Coalesce) and writing them
// into the source's registry space, with the source's status (Writer).
//
// An adapter keeps its own picture of the source, bumps a version and signals a
// channel on every change, and runs Coalesce over that channel with a flush that
// hands the picture to Writer.Flush. The Writer writes only when the picture moved
// (or a re-sync is due), through store.Sync, which writes only the resources that
// differ; and it keeps the source's status (stale while the source or the store
// cannot be reached) fresh in the store.
package mirror

import (
	"context"
	"log/slog"
	"time"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/store"
)

// Store is where an adapter writes; *store.Store implements it. Both methods block on
// etcd and are called from the goroutine that runs Coalesce.
type Store interface {
	// SpaceWriter returns a writer that makes a registry space equal to the desired
	// resources, writing only what changed.
	SpaceWriter(sp store.Space) *store.SpaceWriter
	// PutSourceStatus records how a source's last sync went.
	PutSourceStatus(ctx context.Context, st store.SourceStatus) error
}

var _ Store = (*store.Store)(nil)

// RetrySync is how long a failed write to the store waits before it is tried again.
const RetrySync = time.Second

// Skipped is a resource a translation left out because it was not valid: one invalid
// resource would make the whole Sync fail.
type Skipped struct {
	// Object names what in the source the resource came from ("service ratings").
	Object string
	Err    error
}

// State is the source as one flush sees it.
type State struct {
	// Ready is true when Desired may be written. A term's first write must wait until
	// the whole source was read: a write before would delete what the previous holder
	// of the election wrote and this one has not read yet.
	Ready bool
	// Version changes whenever what Desired returns may have changed.
	Version uint64
	// Force asks for a write even if Version did not move (a periodic re-sync).
	Force bool
	// Err is why the picture may be out of date (the source cannot be read); nil when
	// every last read succeeded.
	Err error
	// Desired translates the picture into the resources of the registry space.
	Desired func() ([]*api.Resource, []Skipped)
}

// Writer writes a source's resources and status into the store. Its methods are
// called from one goroutine (Coalesce's).
type Writer struct {
	St     Store
	Source string // the registry source, and the space written
	Node   string // recorded in the status
	// What names the source in logs ("the Consul catalog").
	What string
	// Interval is how often the status is written while it does not change.
	Interval time.Duration
	// Retry is called RetrySync after a failed write, to have it tried again.
	Retry func()
	Log   *slog.Logger

	space    *store.SpaceWriter
	synced   uint64 // the Version last written
	wrote    bool   // a write succeeded this term
	syncErr  error  // the last write to the store failed
	lastSync time.Time
	skipped  string // the skipped resources last reported
	status   *store.SourceStatus
	statusAt time.Time
}

// Wrote reports whether a write succeeded since the Writer was made (this term).
func (w *Writer) Wrote() bool { return w.wrote }

// Flush writes the source's resources when they may have changed, and then its
// status.
func (w *Writer) Flush(ctx context.Context, s State) {
	if s.Ready && (!w.wrote || s.Version != w.synced || s.Force || w.syncErr != nil) {
		w.sync(ctx, s)
	}
	if ctx.Err() != nil {
		return
	}
	w.putStatus(ctx, s.Err)
}

func (w *Writer) sync(ctx context.Context, s State) {
	desired, skips := s.Desired()
	w.reportSkipped(skips)
	start := time.Now()
	if w.space == nil {
		w.space = w.St.SpaceWriter(store.RegistrySpace(w.Source))
	}
	// The space is read again at a term's first write and at every periodic
	// re-sync; in between the writer knows what it wrote.
	stats, err := w.space.Sync(ctx, desired, !w.wrote || s.Force)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		w.syncErr = err
		w.Log.Warn("writing "+w.What+" to the store failed", "err", err, "retry_in", RetrySync)
		if w.Retry != nil {
			time.AfterFunc(RetrySync, w.Retry)
		}
		return
	}
	w.synced, w.wrote, w.syncErr, w.lastSync = s.Version, true, nil, time.Now()
	if stats.Changed() {
		w.Log.Info("synced "+w.What, "resources", len(desired),
			"created", stats.Created, "updated", stats.Updated, "deleted", stats.Deleted,
			"txns", stats.Txns, "took", time.Since(start).Round(time.Millisecond).String())
	}
}

// reportSkipped logs the resources the translation left out, when that set changes.
func (w *Writer) reportSkipped(skips []Skipped) {
	text := ""
	for _, sk := range skips {
		text += sk.Object + ": " + sk.Err.Error() + "\n"
	}
	if text == w.skipped {
		return
	}
	w.skipped = text
	for _, sk := range skips {
		w.Log.Warn("an entry of "+w.What+" is not valid; left out", "object", sk.Object, "err", sk.Err)
	}
}

// putStatus writes the source's status when it changes, and every Interval while it
// does not: stale when the source (readErr) or the store could not be reached.
func (w *Writer) putStatus(ctx context.Context, readErr error) {
	err := readErr
	if err == nil {
		err = w.syncErr
	}
	if err == nil && !w.wrote {
		return // still loading; nothing to say yet
	}
	st := store.SourceStatus{Source: w.Source, Stale: err != nil, LastSync: w.lastSync, Node: w.Node}
	if err != nil {
		st.Error = err.Error()
	}
	if w.status != nil && w.status.Stale == st.Stale && time.Since(w.statusAt) < w.Interval {
		return
	}
	if err := w.St.PutSourceStatus(ctx, st); err != nil {
		if ctx.Err() == nil {
			w.Log.Warn("writing the source status failed", "source", w.Source, "err", err)
		}
		return
	}
	if w.status == nil || w.status.Stale != st.Stale {
		w.Log.Info("source status", "source", w.Source, "stale", st.Stale, "error", st.Error)
	}
	w.status, w.statusAt = &st, time.Now()
}
