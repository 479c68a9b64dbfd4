package xds

import (
	"sort"
	"time"
)

// ProxyStatus describes one connected stream for /debug/proxies and
// `navarch proxy-status`.
type ProxyStatus struct {
	ID   string `json:"id"`
	Conn uint64 `json:"conn"`
	Peer string `json:"peer,omitempty"`
	// Identity is the SPIFFE ID the proxy proved with its certificate (or token)
	// over TLS; empty over plaintext, where the node has only its claims.
	Identity  string   `json:"identity,omitempty"`
	Delta     bool     `json:"delta"`
	Namespace string   `json:"namespace"`
	Labels    []string `json:"labels,omitempty"`
	Generator string   `json:"generator,omitempty"`
	// IstioVersion is the istio-proxy (or istio-agent) release the proxy says it
	// runs (ISTIO_VERSION); UserAgent its xDS client ("gRPC Go 1.75.0").
	IstioVersion string `json:"istio_version,omitempty"`
	UserAgent    string `json:"user_agent,omitempty"`
	// Network, Locality and Node are where the proxy says it is: they choose the
	// endpoints it gets.
	Network     string    `json:"network,omitempty"`
	Locality    string    `json:"locality,omitempty"`
	Node        string    `json:"node,omitempty"`
	ConnectedAt time.Time `json:"connected_at"`
	Revision    int64     `json:"revision"`
	// Synced is the configuration revision the proxy has taken in full: every
	// type it watches was brought up to at least this revision and it
	// acknowledged what it was sent; 0 while it has not (navarch wait).
	Synced int64                  `json:"synced_revision"`
	Types  map[string]*TypeStatus `json:"types"`
	// WorkloadEntry is the workload the proxy is registered as (AUTO_REGISTER_GROUP).
	WorkloadEntry string `json:"workload_entry,omitempty"`
}

// Proxies returns the status of every connected stream, sorted by proxy id.
func (s *Server) Proxies() []ProxyStatus {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(conns))
	for _, c := range conns {
		p, cl := c.proxyAndClass()
		if p == nil || cl == nil {
			continue
		}
		ps := ProxyStatus{
			ID: p.ID, Conn: c.id, Peer: c.peer, Delta: c.delta,
			Namespace: p.Namespace, Labels: sortedLabels(p.Labels), Generator: p.Generator,
			IstioVersion: p.IstioVersion, UserAgent: p.UserAgent,
			Network: p.Network, Locality: p.Locality, Node: p.NodeName,
			ConnectedAt: c.connectedAt, Types: map[string]*TypeStatus{},
		}
		if b := cl.build.Load(); b != nil {
			ps.Revision = b.Revision
		}
		if c.identity != nil { // set before the stream joined s.conns, never changed
			ps.Identity = spiffeID(s.cfg.TrustDomain, c.identity.Namespace, c.identity.ServiceAccount)
		}
		if c.registered != nil { // set before the stream joined s.conns, never changed
			ps.WorkloadEntry = p.Namespace + "/" + c.registered.Name()
		}
		c.statusMu.Lock()
		for t, ts := range c.status {
			cp := *ts
			ps.Types[shortType(t)] = &cp
		}
		ps.Synced = syncedRevision(c.status)
		c.statusMu.Unlock()
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Conn < out[j].Conn
	})
	return out
}

// Resources returns what a proxy of the given identity would be sent: every resource
// of every type (and, for a proxy with DNS capture, its name table), for `navarch
// proxy-config` and golden tests. It builds from the current snapshot without
// connecting anything.
func (s *Server) Resources(p *Proxy) (map[string]*TypeSet, error) {
	ctx := s.newContext(s.src.Snapshot(), p)
	sets, err := profileFor(p).build(ctx)
	if p.DNSCapture {
		sets[NameTableType] = &TypeSet{TypeURL: NameTableType, ByName: map[string]*Resource{"": nameTableResource(nameTable(ctx))}}
	}
	return sets, err
}

// Proxy returns the identity of a connected proxy by node id, or nil.
func (s *Server) Proxy(id string) *Proxy {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if p, _ := c.proxyAndClass(); p != nil && p.ID == id {
			return p
		}
	}
	return nil
}

// Shed picks up to n connected streams, newest first, for a node that has far more
// proxies than its share, and returns their peer addresses; the caller closes those
// connections so the proxies reconnect, preferably to another node.
func (s *Server) Shed(n int) []string {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		if c.peer != "" {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	sort.Slice(conns, func(i, j int) bool { return conns[i].connectedAt.After(conns[j].connectedAt) })
	var out []string
	for _, c := range conns[:min(n, len(conns))] {
		out = append(out, c.peer)
	}
	return out
}
