package bench

import (
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// delta runs a Delta stream. On a reconnect it tells the server, per type, the
// versions it holds (initial_resource_versions), so a server that has nothing new
// sends nothing; what it sends anyway in a version already held counts as resent.
func (p *Proxy) delta(st deltaStream, reconnect bool) error {
	var prior [nTypes]map[string]string
	var subscribed [nTypes]map[string]bool
	first := true
	send := func(t int, sub, unsub []string, nonce string, initial map[string]string) error {
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: typeURLs[t], ResourceNamesSubscribe: sub,
			ResourceNamesUnsubscribe: unsub, ResponseNonce: nonce, InitialResourceVersions: initial}
		if first {
			req.Node, first = p.node(), false
		}
		return st.Send(req)
	}
	for t := 0; t < nTypes; t++ {
		subscribed[t] = map[string]bool{}
		if reconnect {
			prior[t] = p.priorVersions(t)
		}
		names := p.dependents(t)
		if !(p.wildcard(t) || t == tLDS || (reconnect && len(names) > 0)) {
			continue
		}
		for _, n := range names {
			subscribed[t][n] = true
		}
		if err := send(t, names, nil, "", prior[t]); err != nil {
			return err
		}
	}
	p.markConnected()
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		t := typeIndex(resp.TypeUrl)
		if t < 0 {
			continue
		}
		p.applyDelta(t, resp, prior[t])
		if err := send(t, nil, nil, resp.Nonce, nil); err != nil { // ACK
			return err
		}
		for d := t + 1; d < nTypes; d++ {
			if p.wildcard(d) {
				continue
			}
			want := map[string]bool{}
			var sub, unsub []string
			for _, n := range p.dependents(d) {
				want[n] = true
				if !subscribed[d][n] {
					sub = append(sub, n)
				}
			}
			for n := range subscribed[d] {
				if !want[n] {
					unsub = append(unsub, n)
				}
			}
			if len(sub) == 0 && len(unsub) == 0 {
				continue
			}
			subscribed[d] = want
			if err := send(d, sub, unsub, "", nil); err != nil {
				return err
			}
		}
	}
}

func (p *Proxy) applyDelta(t int, resp *discovery.DeltaDiscoveryResponse, prior map[string]string) {
	now := time.Now()
	type item struct {
		f       *facts
		version string
		size    int
	}
	items := make([]item, 0, len(resp.Resources))
	for _, r := range resp.Resources {
		if r.Resource == nil {
			continue
		}
		f, err := p.cache.get(r.Resource)
		if err != nil {
			continue
		}
		items = append(items, item{f, r.Version, len(r.Resource.Value)})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connected, p.lastRecv = true, now
	if p.firstSync.IsZero() {
		p.firstSync = now
	}
	p.responses.Add(1)
	for _, it := range items {
		p.bytes += int64(it.size)
	}
	for _, it := range items {
		p.record(t, it.f.name, it.version, it.f, it.size, prior, now)
	}
	for _, n := range resp.RemovedResources {
		delete(p.have[t], n)
	}
}
