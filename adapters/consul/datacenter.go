package consul

import (
	"context"
	"log/slog"
	"time"

	"github.com/navarch/navarch/store"
)

// Datacenter mirrors one Consul datacenter into its own registry space, so that
// syncing one datacenter never touches another's entries. Run it on one node at a
// time: under the election ElectionName names.
type Datacenter struct {
	a       *Adapter
	name    string
	primary bool
}

// Name returns the datacenter's name.
func (d *Datacenter) Name() string { return d.name }

// Primary reports whether the datacenter publishes the short host names.
func (d *Datacenter) Primary() bool { return d.primary }

// Source returns the registry source the datacenter is written as.
func (d *Datacenter) Source() string { return SourceName(d.name) }

// ElectionName returns the name of the election whose winner syncs the datacenter.
func (d *Datacenter) ElectionName() string { return "consul/" + d.name }

// SourceName returns the registry source of datacenter dc: "consul.<dc>".
func SourceName(dc string) string { return "consul." + dc }

// retrySync is how long a failed write to the store waits before it is tried again.
const retrySync = time.Second

// Run follows the datacenter's catalog and mirrors it into the store until ctx ends
// (leadership is lost or the node stops). It writes nothing until it has read the
// whole catalog once, so a node that takes over never deletes what it has not read
// yet; while Consul cannot be read the last mirrored entries stay and the source's
// status says they are stale. It blocks; the caller owns the goroutine.
func (d *Datacenter) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := d.a.log.With("datacenter", d.name)
	log.Info("syncing Consul datacenter", "source", d.Source(), "primary", d.primary)
	cat := newCatalog()
	w := &watcher{client: d.a.client, token: d.a.token, dc: d.name, waitTime: d.a.cfg.WaitTime,
		cat: cat, log: log, initial: make(chan struct{}, d.a.cfg.MaxInitialFetches), conns: d.a.conns}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	go func() {
		t := time.NewTicker(d.a.cfg.StatusInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				cat.forceSync()
			}
		}
	}()
	s := &syncer{st: d.a.st, space: store.RegistrySpace(d.Source()), source: d.Source(), node: d.a.node,
		tr: newTranslator(d.a.cfg, d.name, d.primary), interval: d.a.cfg.StatusInterval, cat: cat, log: log}
	coalesce(ctx, cat.changed, d.a.cfg.Coalesce, d.a.cfg.CoalesceMax, func() { s.flush(ctx) })
	cancel()
	<-done
	// The agent counts idle connections against its per-client limit: do not leave
	// them to the node that takes over.
	d.a.transport.CloseIdleConnections()
	return nil
}

// syncer writes what the catalog holds into the store, and the source's status. Only
// the coalesce goroutine calls it.
type syncer struct {
	st       Store
	space    store.Space
	source   string
	node     string
	tr       translator
	interval time.Duration
	cat      *catalog
	log      *slog.Logger

	synced   uint64 // the catalog version last written
	wrote    bool   // a sync succeeded this term
	syncErr  error  // the last write to the store failed
	lastSync time.Time
	skipped  string // the skipped resources last reported
	status   *store.SourceStatus
	statusAt time.Time
}

// flush syncs the store with the catalog when the catalog changed (or a re-sync is
// due), then updates the source's status. The term's first sync waits until the
// whole catalog was read; later ones leave out a new service until its first read
// succeeds (it has nothing in the store yet), so one unreadable service does not hold
// back the others.
func (s *syncer) flush(ctx context.Context) {
	v := s.cat.view()
	ready := v.complete || (s.wrote && v.listed)
	if ready && (!s.wrote || v.version != s.synced || v.force || s.syncErr != nil) {
		s.sync(ctx, v)
	}
	if ctx.Err() != nil {
		return
	}
	s.putStatus(ctx, v)
}

func (s *syncer) sync(ctx context.Context, v catalogView) {
	desired, skips := s.tr.catalog(v.services)
	s.reportSkipped(skips)
	start := time.Now()
	stats, err := s.st.Sync(ctx, s.space, desired)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.syncErr = err
		s.log.Warn("writing the Consul catalog to the store failed", "err", err, "retry_in", retrySync)
		time.AfterFunc(retrySync, s.cat.signal)
		return
	}
	s.synced, s.wrote, s.syncErr, s.lastSync = v.version, true, nil, time.Now()
	if stats.Changed() {
		s.log.Info("synced Consul catalog", "services", len(v.services), "resources", len(desired),
			"created", stats.Created, "updated", stats.Updated, "deleted", stats.Deleted,
			"txns", stats.Txns, "took", time.Since(start).Round(time.Millisecond).String())
	}
}

// reportSkipped logs the resources the translation left out, when that set changes.
func (s *syncer) reportSkipped(skips []skipped) {
	text := ""
	for _, sk := range skips {
		text += sk.service + ": " + sk.err.Error() + "\n"
	}
	if text == s.skipped {
		return
	}
	s.skipped = text
	for _, sk := range skips {
		s.log.Warn("a Consul service has an entry that is not valid; left out", "service", sk.service, "err", sk.err)
	}
}

// putStatus writes the source's status when it changes, and every interval while it
// does not: stale when the catalog or the store could not be reached.
func (s *syncer) putStatus(ctx context.Context, v catalogView) {
	err := v.err
	if err == nil {
		err = s.syncErr
	}
	if err == nil && !s.wrote {
		return // still loading; nothing to say yet
	}
	st := store.SourceStatus{Source: s.source, Stale: err != nil, LastSync: s.lastSync, Node: s.node}
	if err != nil {
		st.Error = err.Error()
	}
	if s.status != nil && s.status.Stale == st.Stale && time.Since(s.statusAt) < s.interval {
		return
	}
	if err := s.st.PutSourceStatus(ctx, st); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("writing the Consul source status failed", "err", err)
		}
		return
	}
	if s.status == nil || s.status.Stale != st.Stale {
		s.log.Info("Consul source status", "stale", st.Stale, "error", st.Error)
	}
	s.status, s.statusAt = &st, time.Now()
}
