package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/internal/wait"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// Source is the registry source of auto-registered workloads.
const Source = "vm"

// Space is where auto-registered WorkloadEntries are stored.
var Space = store.RegistrySpace(Source)

// Annotations of an auto-registered WorkloadEntry, Istio's names.
const (
	AnnotationGroup          = "istio.io/autoRegistrationGroup"
	AnnotationController     = "istio.io/workloadController"
	AnnotationConnectedAt    = "istio.io/connectedAt"
	AnnotationDisconnectedAt = "istio.io/disconnectedAt"
	// AnnotationHealthChecks marks an entry whose proxy reports its health.
	AnnotationHealthChecks = "proxy.istio.io/health-checks-enabled"
	// AnnotationHealthMessage is why the proxy last reported itself unhealthy.
	AnnotationHealthMessage = "navarch.io/health-message"
)

var (
	// ErrNoGroup is returned when the WorkloadGroup a proxy names does not exist.
	ErrNoGroup = errors.New("no such WorkloadGroup")
	// ErrForbidden is returned when a proxy may not register in the group it names:
	// it is not authenticated, or its identity is not the group's.
	ErrForbidden = errors.New("not allowed to register")
)

// Config configures a node's registrar.
type Config struct {
	// Node names this node in the entries it writes (istio.io/workloadController).
	Node string
	// Grace is how long an entry outlives its proxy's connection, or its node
	// (Istio's PILOT_WORKLOAD_ENTRY_GRACE_PERIOD, 10 s): a proxy that reconnects
	// within it keeps its entry, and its traffic, throughout.
	Grace time.Duration
	// OnLeaseAtRisk is called when the node's lease cannot be renewed (the node is cut
	// off from its quorum): the proxies registered through it should reconnect to
	// another node before the lease, and their entries with it, ends.
	OnLeaseAtRisk func()
	// Metrics, when set, counts registrations.
	Metrics *Metrics
	// Groups is where WorkloadGroups are read: what navarch apply wrote unless set
	// (a node adds the Kubernetes cluster's Istio configuration it mirrors).
	Groups store.Layered
}

// Request is a proxy asking to be registered.
type Request struct {
	// Group is the WorkloadGroup's name, in Namespace.
	Group     string
	Namespace string
	// ServiceAccount is the service account the proxy proved; Authenticated is false
	// for a proxy that proved nothing (plaintext xDS), which is refused.
	ServiceAccount string
	Authenticated  bool
	// IP is the proxy's address (the second part of its node id).
	IP       string
	Network  string
	Locality string
	// Labels are those the proxy sent; they override the group's.
	Labels map[string]string
	// Healthy is the health the proxy reported with its first request, nil when it
	// reports none (it is then taken to be healthy and to report nothing).
	Healthy *bool
	// ProxyID is the proxy's node id, for logs.
	ProxyID string
}

// Registrar writes the WorkloadEntries of the proxies connected to one node.
type Registrar struct {
	st  *store.Store
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	ctx     context.Context // Run's; nil before Run
	leaseID clientv3.LeaseID
	entries map[api.Key]*entry
	atRisk  atomic.Bool // the lease's renewals are failing
}

// entry is a WorkloadEntry this node wrote, for the proxies connected to it.
type entry struct {
	key api.Key

	mu      sync.Mutex // held while the entry is written
	req     Request    // the last registration, which a change of its group rebuilds the entry from
	written *api.Resource
	streams int
	healthy bool
	message string
	reports bool        // the proxy reports its health
	remove  *time.Timer // the delayed delete after the last stream ended
}

// NewRegistrar returns a node's registrar; Run must run for it to register anything.
func NewRegistrar(st *store.Store, cfg Config, log *slog.Logger) *Registrar {
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Groups.St == nil {
		cfg.Groups = store.Layered{St: st, Spaces: []store.Space{store.ConfigSpace}}
	}
	return &Registrar{st: st, cfg: cfg, log: log.With("component", "vm"), now: time.Now, entries: map[api.Key]*entry{}}
}

// Run holds the node's lease until ctx ends, renewing it. When renewals have failed
// for half the lease's TTL (the node is cut off from its quorum) the lease is at
// risk: new registrations are refused and OnLeaseAtRisk asks the proxies registered
// here to reconnect to another node, which registers them there before etcd deletes
// this node's entries. When the lease is lost all the same, Run takes a new one once
// it can and writes the entries of the proxies still connected again.
func (r *Registrar) Run(ctx context.Context) error {
	r.cfg.Groups.St.WatchKind(ctx, api.WorkloadGroup, func(k api.Key) { r.groupChanged(ctx, k) }, r.cfg.Groups.Spaces...)
	backoff := 200 * time.Millisecond
	held := false
	for ctx.Err() == nil {
		lease, ttl, renewals, err := r.grant(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("taking a lease for registered workloads failed; retrying", "in", backoff, "err", err)
			}
			if !wait.Sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		r.mu.Lock()
		r.ctx, r.leaseID = ctx, lease
		r.mu.Unlock()
		r.atRisk.Store(false)
		if held {
			r.rewriteAll(ctx)
		}
		held = true
		r.renew(ctx, ttl, renewals)
		r.mu.Lock()
		r.leaseID = 0
		r.mu.Unlock()
		if ctx.Err() == nil {
			r.log.Warn("the lease of registered workloads ended (this node was cut off from its quorum); taking a new one")
		}
	}
	// The lease is not revoked: a node stopping (or restarting) leaves its entries to
	// the grace period, time for their proxies to reconnect elsewhere or to this node.
	return nil
}

// grant takes a new lease and starts renewing it. Its TTL is the one etcd granted,
// which is at least etcd's minimum (one and a half election timeouts).
func (r *Registrar) grant(ctx context.Context) (clientv3.LeaseID, time.Duration, <-chan *clientv3.LeaseKeepAliveResponse, error) {
	gctx, cancel := context.WithTimeout(ctx, r.cfg.Grace)
	defer cancel()
	resp, err := r.st.Client().Grant(gctx, int64(r.leaseTTL()))
	if err != nil {
		return 0, 0, nil, err
	}
	renewals, err := r.st.Client().KeepAlive(ctx, resp.ID)
	if err != nil {
		return 0, 0, nil, err
	}
	return resp.ID, time.Duration(resp.TTL) * time.Second, renewals, nil
}

// renew follows a lease's renewals until it ends (or ctx does), marking it at risk
// when they have failed for half its TTL, and when it ended.
func (r *Registrar) renew(ctx context.Context, ttl time.Duration, renewals <-chan *clientv3.LeaseKeepAliveResponse) {
	// etcd's client renews every third of the TTL in whole seconds but at most every
	// 500 ms: a renewal a little late is not yet a risk.
	risky := max(ttl/2, 1500*time.Millisecond)
	check := time.NewTicker(ttl / 8)
	defer check.Stop()
	last := r.now()
	for {
		select {
		case _, ok := <-renewals:
			if !ok { // the lease expired (or ctx ended)
				if ctx.Err() == nil {
					r.setAtRisk(r.now().Sub(last))
				}
				return
			}
			last = r.now()
			if r.atRisk.CompareAndSwap(true, false) {
				r.log.Info("the lease of registered workloads is renewed again")
			}
		case <-check.C:
			if r.now().Sub(last) > risky {
				r.setAtRisk(r.now().Sub(last))
			}
		case <-ctx.Done():
			return
		}
	}
}

// setAtRisk marks the lease at risk and, the first time, asks the registered
// proxies to move.
func (r *Registrar) setAtRisk(unrenewed time.Duration) {
	if !r.atRisk.CompareAndSwap(false, true) {
		return
	}
	r.log.Warn("the lease of registered workloads cannot be renewed (no quorum?): asking registered proxies to move to another node",
		"unrenewed_for", unrenewed.Round(time.Millisecond))
	if r.cfg.OnLeaseAtRisk != nil {
		r.cfg.OnLeaseAtRisk()
	}
}

// leaseTTL is Grace in whole seconds, as etcd counts them (at least one).
func (r *Registrar) leaseTTL() int {
	return max(1, int(math.Ceil(r.cfg.Grace.Seconds())))
}

func (r *Registrar) lease() (context.Context, clientv3.LeaseID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leaseID == 0 {
		return nil, 0, fmt.Errorf("registering workloads: %w (this node holds no lease now)", store.ErrUnavailable)
	}
	if r.atRisk.Load() {
		return nil, 0, fmt.Errorf("registering workloads: %w (this node cannot renew its lease: register with another node)", store.ErrUnavailable)
	}
	return r.ctx, r.leaseID, nil
}

// Registration is one registered proxy's hold on its entry.
type Registration struct {
	r *Registrar
	e *entry
}

// Name is the registered WorkloadEntry's name.
func (g *Registration) Name() string { return g.e.key.Name }

// Register writes the WorkloadEntry of a proxy of Request.Group, or takes over the
// one it already has (written by this node or another), and returns the proxy's
// hold on it; Close the hold when the proxy's stream ends.
func (r *Registrar) Register(ctx context.Context, req Request) (*Registration, error) {
	if _, _, err := r.lease(); err != nil {
		r.cfg.Metrics.errors.Inc()
		return nil, err // refused at once: another node can register the proxy
	}
	group, err := r.group(ctx, req)
	if err != nil {
		r.cfg.Metrics.errors.Inc()
		return nil, err
	}
	res := entryFor(req, group)
	r.mu.Lock()
	e := r.entries[res.Key()]
	if e == nil {
		e = &entry{key: res.Key()}
		r.entries[e.key] = e
		r.cfg.Metrics.held.Set(float64(len(r.entries)))
	}
	r.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.remove != nil {
		e.remove.Stop()
		e.remove = nil
	}
	if e.streams == 0 {
		e.healthy, e.message, e.reports = true, "", req.Healthy != nil
		if req.Healthy != nil {
			e.healthy = *req.Healthy
		}
	}
	e.streams++
	e.req = req
	res.Meta.Annotations[AnnotationConnectedAt] = r.now().UTC().Format(time.RFC3339Nano)
	if err := r.write(ctx, e, res, false); err != nil {
		e.streams--
		r.forgetIfIdle(e)
		r.cfg.Metrics.errors.Inc()
		return nil, err
	}
	r.cfg.Metrics.success.Inc()
	r.log.Info("workload registered", "workload_entry", e.key.Namespace+"/"+e.key.Name, "group", req.Group, "proxy", req.ProxyID, "healthy", e.healthy)
	return &Registration{r: r, e: e}, nil
}

// group returns the WorkloadGroup a request names, once the proxy's identity is
// checked against it.
func (r *Registrar) group(ctx context.Context, req Request) (*api.Resource, error) {
	if !req.Authenticated {
		return nil, fmt.Errorf("registering in WorkloadGroup %s/%s: %w: the proxy is not authenticated (connect to xDS over TLS, 15012, with a certificate of the group's identity)", req.Namespace, req.Group, ErrForbidden)
	}
	g, err := r.cfg.Groups.Get(ctx, groupKey(req))
	return admit(req, g, err)
}

// groupKey is the key of the WorkloadGroup a request names.
func groupKey(req Request) api.Key {
	return api.Key{Kind: api.WorkloadGroup, Namespace: req.Namespace, Name: req.Group}
}

// admit returns the group g of an authenticated request, read with err, when it
// admits the proxy's identity.
func admit(req Request, g *api.Resource, err error) (*api.Resource, error) {
	name := req.Namespace + "/" + req.Group
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("registering in WorkloadGroup %s: %w", name, ErrNoGroup)
	}
	if err != nil {
		return nil, fmt.Errorf("registering in WorkloadGroup %s: %w", name, err)
	}
	sa := g.Spec.(*networking.WorkloadGroup).GetTemplate().GetServiceAccount()
	if sa == "" {
		sa = "default"
	}
	if req.ServiceAccount != sa {
		return nil, fmt.Errorf("registering in WorkloadGroup %s: %w: the proxy is service account %q, the group's workloads are %q",
			name, ErrForbidden, req.ServiceAccount, sa)
	}
	return g, nil
}

// EntryName is the name of the WorkloadEntry registered for a proxy of group at ip
// in network, as istiod names it.
func EntryName(group, ip, network string) string {
	parts := []string{group, strings.ReplaceAll(ip, ":", "-")}
	if network != "" {
		parts = append(parts, network)
	}
	name := strings.Join(parts, "-")
	if len(name) > 253 {
		name = name[len(name)-253:]
	}
	return name
}

// entryFor builds a proxy's WorkloadEntry from its group, as istiod does (see the
// package documentation).
func entryFor(req Request, group *api.Resource) *api.Resource {
	wg := group.Spec.(*networking.WorkloadGroup)
	we := &networking.WorkloadEntry{}
	if t := wg.GetTemplate(); t != nil {
		we = proto.Clone(t).(*networking.WorkloadEntry)
	}
	we.Address = req.IP
	labels := maps.Clone(we.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, wg.GetMetadata().GetLabels())
	maps.Copy(labels, req.Labels)
	delete(labels, "istio-locality")
	we.Labels = labels
	if req.Network != "" {
		we.Network = req.Network
	}
	if req.Locality != "" {
		we.Locality = req.Locality
	}
	ann := maps.Clone(wg.GetMetadata().GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationGroup] = req.Group
	return &api.Resource{
		Kind: api.WorkloadEntry,
		Meta: api.ObjectMeta{
			Name:        EntryName(req.Group, req.IP, req.Network),
			Namespace:   req.Namespace,
			Labels:      maps.Clone(labels),
			Annotations: ann,
		},
		Spec: we,
	}
}

// write stores res as e's entry with this node's lease and e's health. With
// ifOurs it writes only over what this node wrote last (the proxy has not moved to
// another node since). The caller holds e.mu.
func (r *Registrar) write(ctx context.Context, e *entry, res *api.Resource, ifOurs bool) error {
	_, lease, err := r.lease()
	if err != nil {
		return err
	}
	res = res.Clone()
	ann := res.Meta.Annotations
	ann[AnnotationController] = r.cfg.Node
	delete(ann, registry.HealthAnnotation)
	delete(ann, AnnotationHealthMessage)
	delete(ann, AnnotationHealthChecks)
	if e.reports {
		ann[AnnotationHealthChecks] = "true"
	}
	if !e.healthy {
		ann[registry.HealthAnnotation] = "unhealthy"
		if e.message != "" {
			ann[AnnotationHealthMessage] = e.message
		}
	}
	res.Meta.ResourceVersion = ""
	if ifOurs {
		if e.written == nil {
			return nil
		}
		res.Meta.ResourceVersion = e.written.Meta.ResourceVersion
	}
	stored, err := r.st.PutWithLease(ctx, Space, res, lease)
	if err != nil {
		if ifOurs && (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)) {
			return nil // another node took the entry over, or it was deleted
		}
		return fmt.Errorf("writing %s: %w", res, err)
	}
	e.written = stored
	return nil
}

// SetHealth records the health the proxy reported, when it changed.
func (g *Registration) SetHealth(ctx context.Context, healthy bool, message string) error {
	e := g.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reports && e.healthy == healthy && e.message == message {
		return nil
	}
	e.reports, e.healthy, e.message = true, healthy, message
	if e.written == nil {
		return nil // no entry now (its group was deleted): written with it when the group is back
	}
	g.r.log.Info("registered workload reported its health", "workload_entry", e.key.Namespace+"/"+e.key.Name, "healthy", healthy, "message", message)
	g.r.cfg.Metrics.updates.Inc()
	return g.r.write(ctx, e, e.written, true)
}

// Close ends the proxy's hold: once no stream of the proxy is connected to this
// node, the entry is marked disconnected and deleted after the grace period, unless
// the proxy registers again first (here or on another node).
func (g *Registration) Close() {
	r, e := g.r, g.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.streams--
	if e.streams > 0 {
		return
	}
	if e.written == nil { // its group was deleted, and the entry with it
		r.forgetIfIdle(e)
		return
	}
	r.cfg.Metrics.unregister.Inc()
	r.mu.Lock()
	ctx, held := r.ctx, r.leaseID != 0
	r.mu.Unlock()
	if !held || ctx.Err() != nil {
		r.forgetIfIdle(e)
		return // the lease is gone, or the node stopping: the entry goes with the lease
	}
	if !r.atRisk.Load() {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		gone := e.written.Clone()
		delete(gone.Meta.Annotations, AnnotationConnectedAt) // as istiod marks it
		gone.Meta.Annotations[AnnotationDisconnectedAt] = r.now().UTC().Format(time.RFC3339Nano)
		if err := r.write(wctx, e, gone, true); err != nil {
			r.log.Warn("marking a registered workload disconnected failed", "workload_entry", e.key.Namespace+"/"+e.key.Name, "err", err)
		}
		cancel()
	}
	// Removed after the grace period even when the lease is at risk: should it be
	// renewed after all, the entry must not outlive its proxy on it.
	e.remove = time.AfterFunc(r.cfg.Grace, func() { r.remove(ctx, e) })
}

// remove deletes e's entry after its grace period, if no proxy came back for it and
// no other node took it over.
func (r *Registrar) remove(ctx context.Context, e *entry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.streams > 0 || e.remove == nil {
		return // registered again meanwhile
	}
	e.remove = nil
	if e.written != nil {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _, err := r.st.Delete(wctx, Space, e.key, e.written.Meta.ResourceVersion)
		cancel()
		switch {
		case err == nil:
			r.cfg.Metrics.deletes.Inc()
			r.log.Info("registered workload removed after its grace period", "workload_entry", e.key.Namespace+"/"+e.key.Name)
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			// another node holds it now, or its lease already took it
		default:
			// left to the lease: if this node lost its quorum the entry goes with it
			r.log.Warn("removing a registered workload failed", "workload_entry", e.key.Namespace+"/"+e.key.Name, "err", err)
		}
		e.written = nil
	}
	r.forgetIfIdle(e)
}

// forgetIfIdle drops e from the registrar when nothing holds it. The caller holds
// e.mu.
func (r *Registrar) forgetIfIdle(e *entry) {
	if e.streams > 0 || e.remove != nil {
		return
	}
	r.mu.Lock()
	if r.entries[e.key] == e {
		delete(r.entries, e.key)
	}
	r.cfg.Metrics.held.Set(float64(len(r.entries)))
	r.mu.Unlock()
}

// held returns the entries the registrar holds now.
func (r *Registrar) held() []*entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries := make([]*entry, 0, len(r.entries))
	for _, e := range r.entries {
		entries = append(entries, e)
	}
	return entries
}

// rewriteAll writes the entries of connected proxies again, with the new lease.
func (r *Registrar) rewriteAll(ctx context.Context) {
	entries := r.held()
	for _, e := range entries {
		e.mu.Lock()
		if e.streams > 0 && e.written != nil {
			r.cfg.Metrics.updates.Inc()
			if err := r.write(ctx, e, e.written, false); err != nil {
				r.log.Warn("writing a registered workload again failed", "workload_entry", e.key.Namespace+"/"+e.key.Name, "err", err)
			}
		}
		e.mu.Unlock()
	}
	r.log.Info("registered workloads written again with a new lease", "entries", len(entries))
}

// groupChanged brings the entries of connected proxies that this node holds in
// WorkloadGroup k (every group when k is zero) in line with the group: written
// again, built from its new spec, when that changes them (a template's labels,
// ports or weight, the group's metadata; istiod builds an entry from its group only
// when the proxy connects); deleted with the group (as Kubernetes collects
// istiod's entries, which the group owns); written again when the group is back
// (as istiod registers the proxies connected when a group is added). An entry whose
// group no longer admits its proxy's identity (its template names another service
// account) is deleted as with the group: a changed service account is how an
// operator turns a group's running proxies out of the registry, and istiod would
// refuse them at their next connection anyway. They stay connected, with no entry,
// and are registered again if the group takes their identity back.
func (r *Registrar) groupChanged(ctx context.Context, k api.Key) {
	type read struct {
		g   *api.Resource
		err error
	}
	groups := map[api.Key]read{} // each group read once
	for _, e := range r.held() {
		e.mu.Lock()
		if gk := groupKey(e.req); e.streams > 0 && (k.Kind == nil || gk == k) {
			rd, ok := groups[gk]
			if !ok {
				gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				rd.g, rd.err = r.cfg.Groups.Get(gctx, gk)
				cancel()
				groups[gk] = rd
			}
			r.rebuild(ctx, e, rd.g, rd.err)
		}
		e.mu.Unlock()
	}
}

// rebuild brings e's entry in line with its group g, read with readErr (see
// groupChanged). The caller holds e.mu.
func (r *Registrar) rebuild(ctx context.Context, e *entry, g *api.Resource, readErr error) {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	name := e.key.Namespace + "/" + e.key.Name
	group, err := admit(e.req, g, readErr)
	switch {
	case errors.Is(err, ErrNoGroup):
		if e.written != nil {
			r.withdraw(wctx, e, "its WorkloadGroup was deleted")
		}
		return
	case errors.Is(err, ErrForbidden):
		if e.written != nil {
			r.withdraw(wctx, e, "its WorkloadGroup no longer admits the proxy's identity")
		}
		return
	case err != nil:
		if ctx.Err() == nil {
			r.log.Warn("reading the group of a registered workload failed; its entry is left as it was", "workload_entry", name, "err", err)
		}
		return
	}
	res := entryFor(e.req, group)
	if e.written == nil { // the group is back
		res.Meta.Annotations[AnnotationConnectedAt] = r.now().UTC().Format(time.RFC3339Nano)
		if err := r.write(wctx, e, res, false); err != nil {
			r.log.Warn("registering a workload again in its recreated group failed", "workload_entry", name, "err", err)
			return
		}
		r.cfg.Metrics.success.Inc()
		r.log.Info("workload registered again: its WorkloadGroup admits it", "workload_entry", name, "group", e.req.Group)
		return
	}
	res.Meta.Annotations[AnnotationConnectedAt] = e.written.Meta.Annotations[AnnotationConnectedAt]
	if sameEntry(res, e.written) {
		return
	}
	r.cfg.Metrics.updates.Inc()
	if err := r.write(wctx, e, res, true); err != nil {
		r.log.Warn("writing a registered workload for its group's change failed", "workload_entry", name, "err", err)
		return
	}
	r.log.Info("registered workload written again for its group's change", "workload_entry", name, "group", e.req.Group)
}

// withdraw deletes e's entry, which its group no longer has (why says how), unless
// another node holds it now; its proxy stays connected, with no entry, until its
// group takes it back or it disconnects. The caller holds e.mu.
func (r *Registrar) withdraw(ctx context.Context, e *entry, why string) {
	_, _, err := r.st.Delete(ctx, Space, e.key, e.written.Meta.ResourceVersion)
	switch {
	case err == nil, errors.Is(err, store.ErrNotFound):
		e.written = nil
		r.cfg.Metrics.deletes.Inc()
		r.log.Info("registered workload removed: "+why, "workload_entry", e.key.Namespace+"/"+e.key.Name)
	case errors.Is(err, store.ErrConflict):
		// another node holds it now, and removes it
	default:
		r.log.Warn("removing a registered workload failed", "workload_entry", e.key.Namespace+"/"+e.key.Name, "reason", why, "err", err)
	}
}

// sameEntry reports whether built, an entry as entryFor builds it, is what written
// holds, but for what write adds (the controller and the health).
func sameEntry(built, written *api.Resource) bool {
	ann := maps.Clone(written.Meta.Annotations)
	for _, k := range []string{AnnotationController, registry.HealthAnnotation, AnnotationHealthMessage, AnnotationHealthChecks} {
		delete(ann, k)
	}
	return proto.Equal(built.Spec, written.Spec) && maps.Equal(built.Meta.Labels, written.Meta.Labels) && maps.Equal(built.Meta.Annotations, ann)
}

// Registered returns the names (namespace/name) of the entries this node holds for
// connected proxies, for debug views.
func (r *Registrar) Registered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.entries))
	for k := range r.entries {
		out = append(out, k.Namespace+"/"+k.Name)
	}
	return out
}
