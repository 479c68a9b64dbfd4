package consul

import (
	"context"

	"github.com/navarch/navarch/adapters/mirror"
	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/internal/wait"
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
	go wait.Every(ctx, d.a.cfg.StatusInterval, cat.forceSync)
	tr := newTranslator(d.a.cfg, d.name, d.primary)
	mw := &mirror.Writer{St: d.a.st, Source: d.Source(), Node: d.a.node, What: "the Consul catalog",
		Interval: d.a.cfg.StatusInterval, Retry: cat.signal, Log: log}
	mirror.Coalesce(ctx, cat.changed, d.a.cfg.Coalesce, d.a.cfg.CoalesceMax, func() {
		v := cat.view()
		// A term's first write waits until the whole catalog was read; later ones
		// leave out a new service until its first read succeeds (it has nothing in
		// the store yet), so one unreadable service does not hold back the others.
		mw.Flush(ctx, mirror.State{
			Ready: v.complete || (mw.Wrote() && v.listed), Version: v.version, Force: v.force, Err: v.err,
			Desired: func() ([]*api.Resource, []mirror.Skipped) { return tr.catalog(v.services, v.defaults) },
		})
	})
	cancel()
	<-done
	// The agent counts idle connections against its per-client limit: do not leave
	// them to the node that takes over.
	d.a.transport.CloseIdleConnections()
	return nil
}
