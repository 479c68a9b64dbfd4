package xds

import (
	"slices"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/navarch/navarch/registry"
)

// sotwWatch is a SotW stream's state for one type.
type sotwWatch struct {
	wildcard bool
	names    []string // sorted, when not wildcard
	sent     string   // version of the last response
	nonce    string   // nonce of the last response
	nacked   string   // last version the proxy rejected
}

// StreamAggregatedResources serves one SotW ADS stream.
func (s *Server) StreamAggregatedResources(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	watches := map[string]*sotwWatch{}
	return serveStream(s, stream.Context(), false, stream.Recv,
		func(c *conn) error {
			b := c.class.build.Load()
			for _, t := range pushOrder {
				if w := watches[t]; w != nil {
					if err := s.sotwRespond(stream, c, b, t, w, false); err != nil {
						return err
					}
				}
			}
			return nil
		},
		func(c *conn, req *discovery.DiscoveryRequest) error { return s.sotwRequest(stream, c, watches, req) })
}

func (s *Server) sotwRequest(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer,
	c *conn, watches map[string]*sotwWatch, req *discovery.DiscoveryRequest) error {
	t := req.TypeUrl
	if t == "" {
		return status.Error(codes.InvalidArgument, "type_url is required on an ADS stream")
	}
	w := watches[t]
	first := w == nil
	if first {
		w = &sotwWatch{}
		watches[t] = w
	}
	if req.ResponseNonce != "" {
		if req.ResponseNonce != w.nonce {
			s.metrics.expiredNonce.WithLabelValues(shortType(t)).Inc()
			return nil // a reply to an older response; a newer one is on its way
		}
		s.sotwAck(c, t, w, req)
	}
	names := w.names
	if first || !slices.Equal(req.ResourceNames, w.names) { // an ACK names what it did
		names = slices.Clone(req.ResourceNames)
		slices.Sort(names)
		names = slices.Compact(names)
	}
	wildcard := isWildcard(t, names, w, first)
	changed := first || wildcard != w.wildcard || !slices.Equal(names, w.names)
	w.wildcard, w.names = wildcard, names
	c.statusMu.Lock()
	ts := c.typeStatus(t)
	ts.Wildcard, ts.Subscribed = wildcard, len(names)
	c.statusMu.Unlock()
	if !changed {
		return nil
	}
	// The first request of a type on a stream is always answered, even when its
	// version_info is what the proxy would get: that field is the last version the
	// proxy accepted for the type, not a promise that it still holds those resources
	// (grpc-go drops resources whose watchers went away and asks for them again
	// with the old version). Only Delta says exactly what the proxy has.
	return s.sotwRespond(stream, c, c.class.build.Load(), t, w, true)
}

// isWildcard applies the xDS rules: listeners and clusters (and the name table, which
// has one resource without a name) asked for with no names (on the first request, or
// ever since) or with "*" mean every resource.
func isWildcard(t string, names []string, w *sotwWatch, first bool) bool {
	if slices.Contains(names, "*") {
		return true
	}
	if t != ListenerType && t != ClusterType && t != NameTableType {
		return false
	}
	return len(names) == 0 && (first || w.wildcard)
}

func (s *Server) sotwAck(c *conn, t string, w *sotwWatch, req *discovery.DiscoveryRequest) {
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	ts := c.typeStatus(t)
	if req.ErrorDetail == nil {
		ts.Acked = req.VersionInfo
		return
	}
	w.nacked = w.sent
	ts.Nacked, ts.NackError = w.sent, req.ErrorDetail.GetMessage()
	ts.Nacks++
	s.metrics.rejects.WithLabelValues(shortType(t)).Inc()
	s.log.Warn("proxy rejected configuration", "proxy", c.proxy.ID, "type", shortType(t), "version", w.sent, "err", req.ErrorDetail.GetMessage())
}

// sotwRespond sends the proxy the resources of type t it asked for, unless it already
// has them (same version) or rejected exactly them before. force sends even an
// unchanged version (the proxy changed its subscription).
func (s *Server) sotwRespond(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer,
	c *conn, b *Build, t string, w *sotwWatch, force bool) error {
	start := time.Now()
	o := s.offerFor(c, b, t)
	var rs []*Resource
	if w.wildcard {
		for _, n := range registry.SortedKeys(o.all) {
			rs = append(rs, o.all[n])
		}
	} else {
		for _, n := range w.names {
			if r := o.get(n); r != nil {
				rs = append(rs, r)
			}
		}
	}
	version := setVersion(rs)
	if version == w.nacked || (version == w.sent && !force) {
		c.checked(t, b)
		return nil
	}
	resp := &discovery.DiscoveryResponse{VersionInfo: version, TypeUrl: t, Nonce: c.nextNonce(), Resources: make([]*anypb.Any, len(rs))}
	for i, r := range rs {
		resp.Resources[i] = r.Body
	}
	if err := stream.Send(resp); err != nil {
		return err
	}
	w.sent, w.nonce = version, resp.Nonce
	s.sent(c, b, t, version, rs, start)
	return nil
}

// sent records a response of resources rs, begun at start, in metrics and the
// stream's status.
func (s *Server) sent(c *conn, b *Build, t, version string, rs []*Resource, start time.Time) {
	now := time.Now()
	size := 0
	for _, r := range rs {
		size += len(r.Body.GetValue())
	}
	s.metrics.pushes.WithLabelValues(shortType(t)).Inc()
	s.metrics.pushTime.WithLabelValues(shortType(t)).Observe(now.Sub(start).Seconds())
	s.metrics.configSize.WithLabelValues(t).Observe(float64(size))
	s.metrics.sent.WithLabelValues(shortType(t)).Add(float64(len(rs)))
	if c.observed != b {
		// Convergence counts pushes of changes a connected proxy had to be told of,
		// not the configuration a proxy gets when it connects.
		if c.observed != nil && b.ChangedAt.After(c.connectedAt) {
			s.metrics.convergence.Observe(now.Sub(b.ChangedAt).Seconds())
		}
		c.observed = b
	}
	c.statusMu.Lock()
	ts := c.typeStatus(t)
	ts.Sent, ts.LastSent, ts.Revision = version, now, b.Revision
	c.statusMu.Unlock()
}
