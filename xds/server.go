package xds

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/internal/wait"
	"github.com/navarch/navarch/registry"
)

// SnapshotSource is what the server builds configuration from: the registry view.
// Snapshot may be called from any goroutine; Changes is received only by Run.
type SnapshotSource interface {
	Snapshot() *registry.Snapshot
	Changes() <-chan struct{}
}

var _ SnapshotSource = (*registry.View)(nil)

// Config configures the xDS server.
type Config struct {
	// Debounce batches store changes into pushes.
	Debounce DebounceConfig
	// BuildWorkers is how many proxy classes are built at once during a push.
	BuildWorkers int
	// PushWorkers is how many goroutines send pushes to streams. A proxy that does not
	// read holds one up until its connection times out, so there are plenty.
	PushWorkers int
	// TrustDomain is the mesh's SPIFFE trust domain; servers' certificates are
	// checked against spiffe://<TrustDomain>/ns/<ns>/sa/<sa>.
	TrustDomain string
	// RootNamespace holds mesh-wide policies (PeerAuthentication, AuthorizationPolicy
	// without a selector apply to every workload), istio-system as in Istio.
	RootNamespace string
}

// DefaultConfig returns the configuration navarch runs with.
func DefaultConfig() Config {
	return Config{Debounce: DefaultDebounceConfig(), BuildWorkers: runtime.GOMAXPROCS(0), PushWorkers: 64,
		TrustDomain: "cluster.local", RootNamespace: "istio-system"}
}

// Server is the ADS server of one node: it builds configuration once per proxy class
// from registry snapshots and streams it to every connected proxy, SotW or Delta.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	src     SnapshotSource

	nextConn     atomic.Uint64
	queue        chan *conn // streams waiting for a push worker
	auth         Authenticator
	secretSource SecretSource
	registrar    Registrar
	memo         atomic.Pointer[snapMemo] // shared resources of the newest snapshot built
	validated    validCache               // resources of the last pushes, not validated again

	mu   sync.Mutex
	snap *registry.Snapshot // what the last push built from
	// pushes counts the pushes that set snap: a build carries the count of the push
	// whose snapshot it is from, so that a build from an older snapshot (a stream
	// joining just before a push) never replaces one from a newer.
	pushes uint64
	// labelsVersion is snap's WorkloadLabelsVersion: a push whose snapshot changes
	// it relabels the streams first.
	labelsVersion uint64
	// selectorsVersion is snap's SelectorKeysVersion: the labels that set classes
	// apart (Proxy.classProxy) change with it.
	selectorsVersion uint64
	classes          map[classKey]*class
	conns            map[uint64]*conn
}

var _ discovery.AggregatedDiscoveryServiceServer = (*Server)(nil)

// class is a set of proxies that get identical configuration, and its current build.
type class struct {
	key     classKey
	proxy   *Proxy
	profile Profile
	members int // connected proxies; guarded by Server.mu

	buildMu sync.Mutex // one build of the class at a time
	build   atomic.Pointer[Build]
}

// Build is the configuration of one proxy class at one snapshot. Types never change
// once built; resources asked for by a name only one proxy uses (a gRPC server's
// inbound listener carries its address) are built on first request and kept.
type Build struct {
	snap      *registry.Snapshot
	push      uint64 // Server.pushes when snap was the server's
	Revision  int64
	ChangedAt time.Time
	Types     map[string]*TypeSet

	named func(typeURL, name string) *Resource // builds a resource by name, nil if none
	extra sync.Map                             // typeURL + "\x00" + name -> *Resource (nil: none)
}

// get returns the resource of type t named name, from the class's build or built on
// demand; nil when there is none.
func (b *Build) get(t, name string) *Resource {
	if set := b.Types[t]; set != nil {
		if r := set.ByName[name]; r != nil {
			return r
		}
	}
	if b.named == nil {
		return nil
	}
	key := t + "\x00" + name
	if r, ok := b.extra.Load(key); ok {
		return r.(*Resource)
	}
	r := b.named(t, name)
	b.extra.Store(key, r)
	return r
}

// NewServer returns a server that builds from src. Call Run to follow changes.
func NewServer(cfg Config, src SnapshotSource, m *Metrics, log *slog.Logger) *Server {
	if cfg.BuildWorkers <= 0 {
		cfg.BuildWorkers = 1
	}
	if cfg.PushWorkers <= 0 {
		cfg.PushWorkers = 1
	}
	return &Server{
		queue:   make(chan *conn, 1<<14),
		cfg:     cfg,
		log:     log.With("component", "xds"),
		metrics: m,
		src:     src,
		classes: map[classKey]*class{},
		conns:   map[uint64]*conn{},
	}
}

// SetSecurity makes the server authenticate proxies that connect over TLS and serve
// them their secrets (SDS). Call it before serving.
func (s *Server) SetSecurity(auth Authenticator, secrets SecretSource) {
	s.auth, s.secretSource = auth, secrets
}

// Run pushes changes of the source to connected proxies until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < s.cfg.PushWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case c := <-s.queue:
					s.pushTo(c)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if s.secretSource != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.refreshSecrets(ctx)
		}()
	}
	debounce(ctx, s.src.Changes(), s.cfg.Debounce, time.Now, s.push)
	wg.Wait()
	return nil
}

// secretRefresh is how often streams with secrets are offered them again: the
// secret source renews a certificate well before it expires, and a renewed one is
// a new version, which the push sends.
const secretRefresh = time.Minute

func (s *Server) refreshSecrets(ctx context.Context) {
	wait.Every(ctx, secretRefresh, s.RefreshSecrets)
}

// RefreshSecrets offers every authenticated stream its secrets again: those that
// changed (a renewed certificate, a new trust bundle, a changed credential) are sent.
func (s *Server) RefreshSecrets() {
	s.mu.Lock()
	var conns []*conn
	for _, c := range s.conns {
		if c.identity != nil {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		s.enqueue(c)
	}
}

// enqueue hands a stream to the push workers, once however many pushes wait.
func (s *Server) enqueue(c *conn) {
	if !c.queued.CompareAndSwap(false, true) {
		return
	}
	c.queuedAt.Store(time.Now().UnixNano())
	select {
	case s.queue <- c:
	default:
		go func() { s.queue <- c }() // the queue is full: wait without holding up the push
	}
}

// push rebuilds every class with connected proxies from the current snapshot and
// tells their streams, for changes the first of which came at first.
func (s *Server) push(first time.Time) {
	start := time.Now()
	snap := s.src.Snapshot()
	s.metrics.snapshotTime.Observe(time.Since(start).Seconds())
	s.mu.Lock()
	if snap == s.snap {
		s.mu.Unlock()
		return
	}
	s.snap = snap
	s.pushes++
	push := s.pushes
	for _, r := range snap.Reasons {
		s.metrics.triggers.WithLabelValues(r).Inc()
	}
	s.metrics.services.Set(float64(len(snap.Services())))
	s.metrics.virtual.Set(float64(len(snap.Config(api.VirtualService))))
	relabel := snap.WorkloadLabelsVersion() != s.labelsVersion || snap.SelectorKeysVersion() != s.selectorsVersion
	s.labelsVersion, s.selectorsVersion = snap.WorkloadLabelsVersion(), snap.SelectorKeysVersion()
	s.mu.Unlock()
	if relabel {
		s.relabel(snap)
	}
	s.validated.rotate()
	s.mu.Lock()
	classes := make([]*class, 0, len(s.classes))
	for _, c := range s.classes {
		classes = append(classes, c)
	}
	s.mu.Unlock()

	work := make(chan *class)
	var wg sync.WaitGroup
	for i := 0; i < min(s.cfg.BuildWorkers, len(classes)); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				s.buildClass(c, snap, push)
			}
		}()
	}
	for _, c := range classes {
		work <- c
	}
	close(work)
	wg.Wait()

	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		s.enqueue(c)
	}
	s.metrics.debounceTime.Observe(time.Since(first).Seconds())
}

// buildClass returns the class's build for snap, the server's snapshot since push,
// building it unless it exists or the class has a build of a later push.
func (s *Server) buildClass(c *class, snap *registry.Snapshot, push uint64) *Build {
	c.buildMu.Lock()
	defer c.buildMu.Unlock()
	if b := c.build.Load(); b != nil && (b.snap == snap || b.push > push) {
		return b
	}
	start := time.Now()
	types, err := c.profile.build(s.newContext(snap, c.proxy))
	if err != nil {
		s.metrics.buildErrors.Inc()
		s.log.Error("resources left out of the build", "class", string(c.key), "revision", snap.Revision, "err", err)
	}
	s.metrics.buildTime.Observe(time.Since(start).Seconds())
	b := &Build{snap: snap, push: push, Revision: snap.Revision, ChangedAt: snap.ChangedAt, Types: types}
	b.named = func(t, name string) *Resource { return s.buildNamed(b, c.proxy, t, name) }
	c.build.Store(b)
	return b
}

// join adds a connection to the class of its proxy, sets it as the connection's
// class and builds the class unless it has a build. The proxy takes its labels from
// the snapshot of the last push first (withAddressWorkload). The class is chosen and
// set under s.mu, so a stream is in s.conns only with its class set: a push that
// changes what the class depends on after this sees the stream and relabels it (it
// takes cn.mu, so it waits until the first request is handled); the build, outside
// s.mu, never replaces a later push's (buildClass). The caller holds cn.mu.
func (s *Server) join(cn *conn) *class {
	s.mu.Lock()
	snap, push := s.snap, s.pushes
	if snap == nil {
		snap = s.src.Snapshot()
	}
	if p := cn.proxy.withAddressWorkload(snap); p != cn.proxy {
		cn.statusMu.Lock()
		cn.proxy = p
		cn.statusMu.Unlock()
	}
	rep := cn.proxy.classProxy(snap)
	key := rep.classKey()
	c := s.classes[key]
	if c == nil {
		c = &class{key: key, proxy: rep, profile: profileFor(rep)}
		s.classes[key] = c
		s.metrics.classes.Set(float64(len(s.classes)))
	}
	c.members++
	s.conns[cn.id] = cn
	cn.statusMu.Lock()
	cn.class = c
	cn.statusMu.Unlock()
	s.mu.Unlock()
	if c.build.Load() == nil {
		s.buildClass(c, snap, push)
	}
	s.metrics.connected.Inc()
	return c
}

// relabel moves the streams whose class snap changes to their new class: a proxy's
// labels changed with the workload at its address (registered, relabelled or gone:
// withAddressWorkload), or configuration began or ceased to select by a label the
// proxy has (classProxy). Callers skip it when neither changed since the last push.
func (s *Server) relabel(snap *registry.Snapshot) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	moves := func(p *Proxy, cl *class) bool {
		return p.withAddressWorkload(snap) != p || p.classProxy(snap).classKey() != cl.key
	}
	for _, c := range conns {
		if p, cl := c.proxyAndClass(); p == nil || cl == nil || !moves(p, cl) {
			continue // checked without c.mu, which a push to the stream may hold a while
		}
		c.mu.Lock()
		if !c.closed && c.class != nil && moves(c.proxy, c.class) {
			relabelled := c.proxy.withAddressWorkload(snap) != c.proxy
			s.leave(c)
			cl := s.join(c)
			if relabelled {
				s.log.Info("proxy labels changed with the workload at its address", "proxy", c.proxy.ID, "labels", sortedLabels(c.proxy.Labels))
			} else {
				s.log.Debug("proxy moved to the class of the labels configuration selects by", "proxy", c.proxy.ID, "class", string(cl.key))
			}
		}
		c.mu.Unlock()
	}
}

// leave removes a connection; a class without connections is forgotten.
func (s *Server) leave(cn *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[cn.id]; !ok {
		return
	}
	delete(s.conns, cn.id)
	s.metrics.connected.Dec()
	if c := cn.class; c != nil {
		c.members--
		if c.members == 0 {
			delete(s.classes, c.key)
			s.metrics.classes.Set(float64(len(s.classes)))
		}
	}
}

// profileFor chooses the generators for a proxy: proxyless gRPC clients and servers
// (GENERATOR=grpc), Envoy gateways (type router) or Envoy sidecars.
func profileFor(p *Proxy) Profile {
	switch {
	case p.Generator == GeneratorGRPC:
		return grpcProfile()
	case p.Type == TypeRouter:
		return gatewayProfile()
	}
	return sidecarProfile()
}

// Connections returns how many streams are connected.
// ServedRevision is the store revision of the configuration the server has pushed:
// what a proxy connecting now is sent first. It trails the view's by up to the
// push debounce.
func (s *Server) ServedRevision() int64 {
	s.mu.Lock()
	snap := s.snap
	s.mu.Unlock()
	if snap == nil {
		return s.src.Snapshot().Revision
	}
	return snap.Revision
}

func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// buildNamed builds a resource of b's class that is asked for by a name the class
// build does not hold: the inbound listener of a proxyless gRPC server, which its own
// address names, or a service's listener asked for by a short name of its host; the
// class's name table, which only proxies with istio-agent's DNS proxy ask for; and
// a WorkloadGroup of the class's namespace, which navarch's agent asks for.
func (s *Server) buildNamed(b *Build, p *Proxy, t, name string) *Resource {
	if t == NameTableType && name == "" {
		return nameTableResource(nameTable(newContext(b.snap, p, s.cfg.TrustDomain, s.cfg.RootNamespace)))
	}
	if t == WorkloadGroupType {
		r, err := workloadGroupResource(b.snap, p.Namespace, name)
		if err != nil {
			s.log.Error("WorkloadGroup left out", "namespace", p.Namespace, "name", name, "err", err)
		}
		return r
	}
	if t != ListenerType {
		return nil
	}
	if r := aliasListener(b, p, name); r != nil {
		return r
	}
	ctx := &Context{Snapshot: b.snap, Proxy: p, Mesh: meshOf(b.snap), TrustDomain: s.cfg.TrustDomain, RootNamespace: s.cfg.RootNamespace}
	l, ok := inboundListener(ctx, name)
	if !ok {
		return nil
	}
	if err := l.Validate(); err != nil {
		s.log.Error("inbound listener left out", "name", name, "err", err)
		return nil
	}
	r, err := newResource(t, name, l)
	if err != nil {
		s.log.Error("inbound listener left out", "name", name, "err", err)
		return nil
	}
	return r
}
