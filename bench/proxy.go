package bench

import (
	"context"
	"errors"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Mode is how a simulated proxy subscribes.
type Mode int

const (
	// Named subscribes as grpc-go does: its listeners by name, then the routes,
	// clusters and endpoint assignments they name.
	Named Mode = iota
	// Wildcard subscribes as Envoy does: every listener and cluster, then the routes
	// and endpoint assignments they name.
	Wildcard
)

// Resource types in the order dependencies flow.
const (
	tLDS = iota
	tRDS
	tCDS
	tEDS
	nTypes
)

var typeURLs = [nTypes]string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType}

func typeIndex(url string) int {
	for i, u := range typeURLs {
		if u == url {
			return i
		}
	}
	return -1
}

// ProxyConfig is who a simulated proxy is and what it subscribes to.
type ProxyConfig struct {
	ID        string
	Namespace string
	Labels    map[string]string
	Delta     bool
	Mode      Mode
	// IstioVersion is the ISTIO_VERSION a Wildcard proxy sends (istio-proxy), if any.
	IstioVersion string
	// Listeners are the listener names a Named proxy asks for.
	Listeners []string
	// Targets are xDS servers (host:port); the proxy connects to Targets[First] and,
	// when its stream breaks, to the next.
	Targets []string
	First   int
	// History keeps every endpoint-assignment version's arrival (churn scenario).
	History bool
}

// mark is an endpoint assignment's arrival: when, and its largest endpoint weight.
type mark struct {
	name   string
	at     time.Time
	weight uint32
}

// held is a resource version a proxy holds.
type held struct {
	version string
	at      time.Time // when this version arrived
	facts   *facts
}

// Proxy is one simulated proxy. Its methods may be called from any goroutine.
type Proxy struct {
	cfg   ProxyConfig
	cache *factCache

	mu          sync.Mutex
	have        [nTypes]map[string]*held
	target      string
	connected   bool
	connectedAt time.Time // when the current stream's first requests were sent
	firstSync   time.Time // when the first response arrived
	streams     int       // streams opened
	resent      int       // resources received again in a version already held, after a reconnect
	resentBytes int
	nacks       int
	bytes       int64 // resource bytes received
	lastRecv    time.Time
	history     []mark

	// responses counts the responses stored (each is ACKed), so that a waiter can
	// pass over proxies that received nothing since it last looked without taking mu.
	responses atomic.Uint64
}

func newProxy(cfg ProxyConfig, cache *factCache) *Proxy {
	p := &Proxy{cfg: cfg, cache: cache}
	for i := range p.have {
		p.have[i] = map[string]*held{}
	}
	return p
}

// Run keeps the proxy connected until ctx ends, moving to the next target whenever
// its stream breaks.
func (p *Proxy) Run(ctx context.Context, tr transport) {
	i := p.cfg.First
	backoff := 20 * time.Millisecond
	for ctx.Err() == nil {
		target := p.cfg.Targets[i%len(p.cfg.Targets)]
		err := p.session(ctx, target, tr)
		p.mu.Lock()
		p.connected = false
		p.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if err == nil || errors.Is(err, io.EOF) {
			backoff = 20 * time.Millisecond
		}
		i++
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (p *Proxy) node() *corev3.Node {
	md := map[string]any{"NAMESPACE": p.cfg.Namespace}
	if p.cfg.Mode == Named {
		md["GENERATOR"] = "grpc"
	} else if p.cfg.IstioVersion != "" {
		md["ISTIO_VERSION"] = p.cfg.IstioVersion
	}
	if len(p.cfg.Labels) > 0 {
		l := map[string]any{}
		for k, v := range p.cfg.Labels {
			l[k] = v
		}
		md["LABELS"] = l
	}
	s, _ := structpb.NewStruct(md)
	return &corev3.Node{Id: p.cfg.ID, Metadata: s}
}

// session runs one stream to target until it breaks.
func (p *Proxy) session(ctx context.Context, target string, tr transport) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the stream's connection
	p.mu.Lock()
	p.target = target
	p.streams++
	reconnect := p.streams > 1
	p.mu.Unlock()
	if p.cfg.Delta {
		st, err := tr.delta(sctx, target)
		if err != nil {
			return err
		}
		return p.delta(st, reconnect)
	}
	st, err := tr.sotw(sctx, target)
	if err != nil {
		return err
	}
	return p.sotw(st, reconnect)
}

// dependents returns, for a type, the names the proxy must subscribe to given what it
// holds of the type before it; nil for listeners and (Wildcard) clusters.
func (p *Proxy) dependents(t int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parent int
	switch t {
	case tLDS:
		if p.cfg.Mode == Named {
			return append([]string(nil), p.cfg.Listeners...)
		}
		return nil
	case tRDS:
		parent = tLDS
	case tCDS:
		if p.cfg.Mode == Wildcard {
			return nil
		}
		parent = tRDS
	case tEDS:
		parent = tCDS
	}
	set := map[string]bool{}
	for _, h := range p.have[parent] {
		var names []string
		switch t {
		case tRDS:
			names = h.facts.routes
		case tCDS:
			names = h.facts.clusters
		case tEDS:
			names = h.facts.endpoints
		}
		for _, n := range names {
			set[n] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// wildcard reports whether the proxy asks for every resource of type t.
func (p *Proxy) wildcard(t int) bool {
	return p.cfg.Mode == Wildcard && (t == tLDS || t == tCDS)
}

// record stores a received resource and counts it as resent if the proxy already
// held that version when the stream (re)started.
func (p *Proxy) record(t int, name, version string, f *facts, size int, prior map[string]string, now time.Time) {
	if prior != nil && prior[name] == version {
		p.resent++
		p.resentBytes += size
	}
	if h := p.have[t][name]; h != nil && h.version == version {
		return
	}
	p.have[t][name] = &held{version: version, at: now, facts: f}
	if p.cfg.History && t == tEDS {
		p.history = append(p.history, mark{name: name, at: now, weight: f.maxWeight})
	}
}

// Version returns the version of a resource the proxy holds and when it arrived.
func (p *Proxy) Version(typeURL, name string) (string, time.Time) {
	t := typeIndex(typeURL)
	p.mu.Lock()
	defer p.mu.Unlock()
	if h := p.have[t][name]; h != nil {
		return h.version, h.at
	}
	return "", time.Time{}
}

// Held returns the held resource's facts, nil if the proxy does not hold it.
func (p *Proxy) held(t int, name string) *held {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.have[t][name]
}

// markConnected records that a stream is up and has asked for its resources.
func (p *Proxy) markConnected() {
	p.mu.Lock()
	p.connected, p.connectedAt = true, time.Now()
	p.mu.Unlock()
}

// Status is a snapshot of a proxy's connection.
type Status struct {
	Target      string
	Connected   bool
	ConnectedAt time.Time
	Synced      bool // received its first response
	Streams     int
	Resent      int
	ResentBytes int
	NACKs       int
	Bytes       int64
	LastRecv    time.Time
}

// Status returns the proxy's connection state.
func (p *Proxy) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Status{Target: p.target, Connected: p.connected, ConnectedAt: p.connectedAt, Synced: !p.firstSync.IsZero(), Streams: p.streams,
		Resent: p.resent, ResentBytes: p.resentBytes, NACKs: p.nacks, Bytes: p.bytes, LastRecv: p.lastRecv}
}

// priorVersions returns the versions the proxy holds of type t, for counting resends.
func (p *Proxy) priorVersions(t int) map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.have[t]))
	for n, h := range p.have[t] {
		out[n] = h.version
	}
	return out
}

// History returns the endpoint assignments the proxy received, in order.
func (p *Proxy) History() []mark {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]mark(nil), p.history...)
}
