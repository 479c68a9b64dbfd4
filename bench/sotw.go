package bench

import (
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// sotwState is what a SotW stream tracks for one type.
type sotwState struct {
	names          []string
	version, nonce string
	requested      bool
}

// sotw runs a State-of-the-World stream: it asks for listeners (and, for Wildcard
// proxies, clusters), then for what each response names, ACKing every response.
func (p *Proxy) sotw(st sotwStream, reconnect bool) error {
	var prior [nTypes]map[string]string
	if reconnect {
		for t := range prior {
			prior[t] = p.priorVersions(t)
		}
	}
	var state [nTypes]sotwState
	first := true
	send := func(t int) error {
		req := &discovery.DiscoveryRequest{TypeUrl: typeURLs[t], ResourceNames: state[t].names,
			VersionInfo: state[t].version, ResponseNonce: state[t].nonce}
		if first {
			req.Node, first = p.node(), false
		}
		state[t].requested = true
		return st.Send(req)
	}
	for t := 0; t < nTypes; t++ {
		names := p.dependents(t)
		if p.wildcard(t) || (t == tLDS) || (reconnect && len(names) > 0) {
			state[t].names = names
			if err := send(t); err != nil {
				return err
			}
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
		p.applySotW(t, resp, prior[t], state[t].names)
		state[t].version, state[t].nonce = resp.VersionInfo, resp.Nonce
		if err := send(t); err != nil { // ACK
			return err
		}
		for d := t + 1; d < nTypes; d++ {
			if p.wildcard(d) {
				continue
			}
			names := p.dependents(d)
			if slices.Equal(names, state[d].names) && (state[d].requested || len(names) == 0) {
				continue
			}
			state[d].names = names
			if err := send(d); err != nil {
				return err
			}
		}
	}
}

// applySotW stores a SotW response. Listeners and clusters responses carry every
// resource asked for: those missing are gone. A SotW response has no per-resource
// version, so a resource's version is a hash of its bytes.
func (p *Proxy) applySotW(t int, resp *discovery.DiscoveryResponse, prior map[string]string, asked []string) {
	now := time.Now()
	type item struct {
		f       *facts
		version string
		size    int
	}
	items := make([]item, 0, len(resp.Resources))
	for _, a := range resp.Resources {
		f, err := p.cache.get(a)
		if err != nil {
			continue
		}
		items = append(items, item{f, strconv.FormatUint(xxhash.Sum64(a.Value), 16), len(a.Value)})
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
	present := map[string]bool{}
	for _, it := range items {
		present[it.f.name] = true
		p.record(t, it.f.name, it.version, it.f, it.size, prior, now)
	}
	if t == tLDS || t == tCDS {
		for name := range p.have[t] {
			if !present[name] && (p.wildcard(t) || slices.Contains(asked, name)) {
				delete(p.have[t], name)
			}
		}
	}
}
