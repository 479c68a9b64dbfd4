package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	capi "github.com/hashicorp/consul/api"

	"github.com/navarch/navarch/internal/wait"
)

// A datacenter is followed with Consul's blocking queries: one on the service list
// (/v1/catalog/services) and one per service on its instances with their checks
// (/v1/health/service/<name>). Each query waits at the agent until what it reads
// changes, so an idle catalog costs one open request per service and no work; a
// change costs one read of the service that changed, not of the whole catalog.
// Reads are stale-allowed: any server answers, not only the leader.

const (
	// minQueryGap spaces the queries of one watcher, so a catalog that changes all
	// the time is read at most this often per service.
	minQueryGap = 20 * time.Millisecond
	// backoffMin and backoffMax bound the wait before retrying a failed query.
	backoffMin = 200 * time.Millisecond
	backoffMax = 5 * time.Second
)

// watcher runs the blocking queries of one datacenter and records what they read in
// a catalog.
type watcher struct {
	client   *capi.Client
	token    func() string // the ACL token of each request
	dc       string
	waitTime time.Duration
	cat      *catalog
	log      *slog.Logger
	// initial bounds the first reads of services running at once.
	initial chan struct{}
	// conns bounds the service queries open at once (nil: no bound).
	conns *connections
	wg    sync.WaitGroup
}

// connections bounds the service queries an adapter has open at once, over every
// datacenter, when each holds a connection of its own (plain HTTP). While more
// services are watched than there are slots, queries wait for a slot (in turn: a
// channel's waiters are served in order) and hold it at most sharedWait, so that every
// service is read every so often; queries that were waiting longer when the services
// outgrew the slots are cut short.
type connections struct {
	slots      chan struct{}
	sharedWait time.Duration

	mu      sync.Mutex
	watched int
	// long ends the queries that wait the full time, when services outgrow the slots.
	long       context.Context
	cancelLong context.CancelFunc
	warned     bool
}

func newConnections(n int, sharedWait time.Duration) *connections {
	c := &connections{slots: make(chan struct{}, n), sharedWait: sharedWait}
	c.long, c.cancelLong = context.WithCancel(context.Background())
	return c
}

// watch counts a service in (delta 1) or out (-1) and reports whether services just
// outgrew the slots.
func (c *connections) watch(delta int) (outgrown bool) {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.watched > cap(c.slots)
	c.watched += delta
	now := c.watched > cap(c.slots)
	switch {
	case now && !was:
		c.cancelLong()
	case was && !now:
		c.long, c.cancelLong = context.WithCancel(context.Background())
	}
	outgrown = now && !c.warned
	c.warned = c.warned || now
	return outgrown
}

// acquire takes a slot for a query of a service followed with ctx. It returns the
// query's context (ended early when its slot is wanted back), how long it may wait
// for a change, and the release of the slot; ok is false if ctx ended first.
func (c *connections) acquire(ctx context.Context, want time.Duration) (qctx context.Context, qwait time.Duration, release func(), ok bool) {
	if c == nil {
		return ctx, want, func() {}, true
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, nil, false
	}
	c.mu.Lock()
	shared, long := c.watched > cap(c.slots), c.long
	c.mu.Unlock()
	if shared {
		return ctx, min(want, c.sharedWait), func() { <-c.slots }, true
	}
	qctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(long, cancel)
	return qctx, want, func() { stop(); cancel(); <-c.slots }, true
}

// run follows the service list and starts and stops the service watchers, and
// follows the config entries that give services their protocols, until ctx ends;
// then it waits for them.
func (w *watcher) run(ctx context.Context) {
	defer w.wg.Wait()
	defer w.cat.stopAll()
	for _, kind := range configKinds {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.runConfig(ctx, kind)
		}()
	}
	filtered := false
	w.follow(ctx, func(idx uint64) (uint64, error) {
		names, meta, err := w.client.Catalog().Services(w.query(ctx, idx))
		if err != nil {
			return 0, explain(err)
		}
		if meta.ResultsFilteredByACLs && !filtered {
			w.log.Warn("the Consul ACL token hides some services; they are not synced (it needs service:read and node:read)")
		}
		filtered = meta.ResultsFilteredByACLs
		if meta.LastIndex != idx || idx == 0 {
			w.cat.setList(names, func(name string) *serviceState { return w.startService(ctx, name) })
		}
		return meta.LastIndex, nil
	}, func(err error, retry time.Duration, first bool) {
		lvl := slog.LevelDebug // the first failure of an outage at warn, the retries at debug
		if first {
			lvl = slog.LevelWarn
		}
		w.log.Log(ctx, lvl, "reading the Consul service list failed", "err", err, "retry_in", retry)
		w.cat.setListErr(err)
	})
}

// configKinds are the config entries followed: services' protocols, as Consul's own
// proxies take them (a service's service-defaults, else proxy-defaults "global").
var configKinds = []string{capi.ServiceDefaults, capi.ProxyDefaults}

// runConfig follows the config entries of one kind until ctx ends. An agent that
// refuses them (an ACL token without service:read on a service hides only that
// service's entry; 403 or 404 for the whole kind: a Consul without config entries)
// counts as having none, said once.
func (w *watcher) runConfig(ctx context.Context, kind string) {
	refused := false
	w.follow(ctx, func(idx uint64) (uint64, error) {
		entries, meta, err := w.client.ConfigEntries().List(kind, w.query(ctx, idx))
		if err != nil {
			return 0, explain(err)
		}
		refused = false
		if meta.LastIndex != idx || idx == 0 {
			w.cat.setConfig(kind, entries)
		}
		return meta.LastIndex, nil
	}, func(err error, retry time.Duration, first bool) {
		var se capi.StatusError
		if errors.As(err, &se) && (se.Code == http.StatusForbidden || se.Code == http.StatusNotFound) {
			if !refused { // once: the retries change nothing
				w.log.Warn("Consul refuses to list config entries: services take their protocols from ServiceMeta only", "kind", kind, "err", err)
				w.cat.setConfig(kind, nil)
				refused = true
			}
			return
		}
		w.log.Debug("reading Consul config entries failed", "kind", kind, "err", err, "retry_in", retry)
		w.cat.setConfigErr(kind, err)
	})
}

// follow repeats a blocking query until ctx ends. read runs it after index idx,
// records what it read, and returns the answer's index; failed records a failure
// (first: the first of an outage), retried after a backoff growing from backoffMin
// to backoffMax, afresh (index 0: the agent may have restarted with other indexes).
// Queries are at least minQueryGap apart.
func (w *watcher) follow(ctx context.Context, read func(idx uint64) (uint64, error), failed func(err error, retry time.Duration, first bool)) {
	var idx uint64
	backoff := backoffMin
	for {
		start := time.Now()
		got, err := read(idx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failed(err, backoff, backoff == backoffMin)
			idx = 0
			if !wait.Sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, backoffMax)
			continue
		}
		backoff = backoffMin
		idx = nextIndex(idx, got)
		if !wait.Sleep(ctx, minQueryGap-time.Since(start)) {
			return
		}
	}
}

// startService starts the watcher of one service and returns its state.
func (w *watcher) startService(ctx context.Context, name string) *serviceState {
	sctx, cancel := context.WithCancel(ctx)
	st := &serviceState{cancel: cancel}
	w.wg.Add(1)
	if w.conns.watch(1) {
		w.log.Warn("more Consul services than connections: services share them, and a change may take a while to be seen; use the agent's HTTPS API (HTTP/2 needs no connection per service) or raise --consul-max-connections with the agent's limits.http_max_conns_per_client",
			"max_connections", cap(w.conns.slots), "shared_wait", w.conns.sharedWait)
	}
	go func() {
		defer w.wg.Done()
		defer w.conns.watch(-1)
		w.watchService(sctx, name, st)
	}()
	return st
}

// watchService follows one service's instances and checks until ctx ends.
func (w *watcher) watchService(ctx context.Context, name string, st *serviceState) {
	var idx uint64
	first := true
	select {
	case w.initial <- struct{}{}:
	case <-ctx.Done():
		return
	}
	release := func() {
		if first {
			<-w.initial
			first = false
		}
	}
	defer release()
	backoff := backoffMin
	for {
		qctx, qwait, done, ok := w.conns.acquire(ctx, w.waitTime)
		if !ok {
			return
		}
		start := time.Now()
		q := w.query(qctx, idx)
		q.WaitTime = qwait
		entries, meta, err := w.client.Health().Service(name, "", false, q)
		preempted := qctx.Err() != nil
		done()
		err = explain(err)
		release()
		if ctx.Err() != nil {
			return
		}
		if err != nil && preempted {
			continue // its slot was wanted back: ask again, in turn
		}
		if err != nil {
			w.log.Debug("reading a Consul service failed", "service", name, "err", err, "retry_in", backoff)
			w.cat.setServiceErr(name, st, err)
			idx = 0
			if !wait.Sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, backoffMax)
			continue
		}
		backoff = backoffMin
		if meta.LastIndex != idx || idx == 0 {
			w.cat.setService(name, st, entries)
		}
		idx = nextIndex(idx, meta.LastIndex)
		if !wait.Sleep(ctx, minQueryGap-time.Since(start)) {
			return
		}
	}
}

// errConnLimit marks the error of a query the agent refused for too many connections
// from this address.
var errConnLimit = errors.New("the Consul agent limits connections per client address (limits.http_max_conns_per_client); set --consul-max-connections below it, or use the agent's HTTPS API")

// explain adds what to do to the error of a query the agent refused for too many
// connections (errConnLimit). (The agent also refuses by closing a new connection at
// once, which cannot be told from other failures.)
func explain(err error) error {
	var se capi.StatusError
	if errors.As(err, &se) && se.Code == http.StatusTooManyRequests {
		return fmt.Errorf("%w: %w", err, errConnLimit)
	}
	return err
}

// query returns the options of a blocking read after index idx (0: answer at once).
func (w *watcher) query(ctx context.Context, idx uint64) *capi.QueryOptions {
	q := &capi.QueryOptions{Datacenter: w.dc, AllowStale: true, WaitIndex: idx, WaitTime: w.waitTime, Token: w.token()}
	return q.WithContext(ctx)
}

// nextIndex is the index to wait on after a read that returned index got, following
// Consul's rules for blocking queries: an index that went backwards (the servers
// lost or restored their state) starts over, and an index is never below 1.
func nextIndex(prev, got uint64) uint64 {
	if got < prev {
		return 0
	}
	return max(got, 1)
}

// jitter spreads retries by up to a quarter either way, so that many watchers
// retrying after an outage do not arrive at the agent all at once.
func jitter(d time.Duration) time.Duration {
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}
