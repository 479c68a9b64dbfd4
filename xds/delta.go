package xds

import (
	"sort"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// deltaWatch is a Delta stream's state for one type.
type deltaWatch struct {
	wildcard bool
	names    map[string]struct{}
	// known maps each resource the proxy has to its version, as far as this stream
	// knows: what it was sent, or what it said it had when it (re)connected.
	known map[string]string
	// nacked maps resources of a rejected response to the version rejected; they are
	// not sent again until their version changes.
	nacked map[string]string
	nonce  string
	sent   []string // names in the last response, for NACK bookkeeping
	sentV  []string // their versions
}

// DeltaAggregatedResources serves one Delta (incremental) ADS stream.
func (s *Server) DeltaAggregatedResources(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	watches := map[string]*deltaWatch{}
	return serveStream(s, stream.Context(), true, stream.Recv,
		func(c *conn) error {
			b := c.class.build.Load()
			for _, t := range pushOrder {
				if w := watches[t]; w != nil {
					if err := s.deltaRespond(stream, c, b, t, w); err != nil {
						return err
					}
				}
			}
			return nil
		},
		func(c *conn, req *discovery.DeltaDiscoveryRequest) error {
			return s.deltaRequest(stream, c, watches, req)
		})
}

func (s *Server) deltaRequest(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer,
	c *conn, watches map[string]*deltaWatch, req *discovery.DeltaDiscoveryRequest) error {
	t := req.TypeUrl
	if t == "" {
		return status.Error(codes.InvalidArgument, "type_url is required on an ADS stream")
	}
	w := watches[t]
	if w == nil {
		w = &deltaWatch{names: map[string]struct{}{}, known: map[string]string{}, nacked: map[string]string{}}
		// No names on the first request of a type means every resource (legacy wildcard).
		w.wildcard = len(req.ResourceNamesSubscribe) == 0
		for name, v := range req.InitialResourceVersions {
			w.known[name] = v
		}
		watches[t] = w
	}
	switch {
	case req.ResponseNonce != "" && req.ResponseNonce == w.nonce:
		s.deltaAck(c, t, w, req)
	case req.ResponseNonce != "":
		s.metrics.expiredNonce.WithLabelValues(shortType(t)).Inc() // a reply to an older response
	}
	changed := false
	for _, n := range req.ResourceNamesSubscribe {
		if n == "*" {
			changed = changed || !w.wildcard
			w.wildcard = true
			continue
		}
		if _, ok := w.names[n]; !ok {
			w.names[n] = struct{}{}
			changed = true
		}
	}
	for _, n := range req.ResourceNamesUnsubscribe {
		if n == "*" {
			w.wildcard = false
			continue
		}
		delete(w.names, n)
		delete(w.known, n) // the proxy forgets it; a later subscribe must send it again
	}
	c.statusMu.Lock()
	ts := c.typeStatus(t)
	ts.Wildcard, ts.Subscribed = w.wildcard, len(w.names)
	c.statusMu.Unlock()
	if !changed && req.ResponseNonce != "" {
		return nil // a pure ACK or NACK
	}
	return s.deltaRespond(stream, c, c.class.build.Load(), t, w)
}

func (s *Server) deltaAck(c *conn, t string, w *deltaWatch, req *discovery.DeltaDiscoveryRequest) {
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	ts := c.typeStatus(t)
	if req.ErrorDetail == nil {
		ts.Acked = ts.Sent
		return
	}
	for i, n := range w.sent {
		w.nacked[n] = w.sentV[i]
	}
	ts.Nacked, ts.NackError = ts.Sent, req.ErrorDetail.GetMessage()
	ts.Nacks++
	s.metrics.rejects.WithLabelValues(shortType(t)).Inc()
	s.log.Warn("proxy rejected configuration", "proxy", c.proxy.ID, "type", shortType(t), "resources", w.sent, "err", req.ErrorDetail.GetMessage())
}

// deltaRespond sends the resources of type t whose version differs from what the proxy
// has, and the names of those it has that are gone. Nothing is sent when nothing
// differs, and a resource is not sent again in a version the proxy rejected.
func (s *Server) deltaRespond(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer,
	c *conn, b *Build, t string, w *deltaWatch) error {
	start := time.Now()
	o := s.offerFor(c, b, t)
	var names []string
	if w.wildcard {
		for n := range o.all {
			names = append(names, n)
		}
	}
	for n := range w.names {
		if _, dup := o.all[n]; !w.wildcard || !dup {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	resp := &discovery.DeltaDiscoveryResponse{TypeUrl: t}
	var sent, sentV []string
	for _, n := range names {
		r := o.get(n)
		if r == nil {
			continue
		}
		if w.known[n] == r.Version || w.nacked[n] == r.Version {
			continue
		}
		resp.Resources = append(resp.Resources, &discovery.Resource{Name: n, Version: r.Version, Resource: r.Body})
		sent, sentV = append(sent, n), append(sentV, r.Version)
	}
	for n := range w.known {
		if o.get(n) == nil {
			resp.RemovedResources = append(resp.RemovedResources, n)
		}
	}
	if len(resp.Resources) == 0 && len(resp.RemovedResources) == 0 {
		c.checked(t, b)
		return nil
	}
	sort.Strings(resp.RemovedResources)
	rs := make([]*Resource, len(sent))
	for i, n := range sent {
		rs[i] = o.get(n)
	}
	version := setVersion(rs)
	resp.SystemVersionInfo = version
	resp.Nonce = c.nextNonce()
	if err := stream.Send(resp); err != nil {
		return err
	}
	for i, n := range sent {
		w.known[n] = sentV[i]
	}
	for _, n := range resp.RemovedResources {
		delete(w.known, n)
	}
	w.nonce, w.sent, w.sentV = resp.Nonce, sent, sentV
	s.sent(c, b, t, version, rs, start)
	return nil
}
