package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// FleetConfig describes a fleet of simulated proxies.
type FleetConfig struct {
	// Proxies is how many.
	Proxies int
	// Targets are the xDS servers; proxy i connects first to Targets[i % len].
	Targets []string
	// Delta makes the proxies use Delta xDS instead of SotW.
	Delta bool
	// Mode is how they subscribe.
	Mode Mode
	// IstioVersion is the ISTIO_VERSION Wildcard proxies send (Config.IstioVersion).
	IstioVersion string
	// Namespace is their namespace; Services names what they may subscribe to.
	Namespace string
	// Listeners gives Named proxy i the listener names it asks for.
	Listeners func(i int) []string
	// Classes spreads the proxies over this many label sets (proxy classes); 1 means
	// every proxy gets identical configuration.
	Classes int
	// ConnectConcurrency bounds streams being opened at once.
	ConnectConcurrency int
	// History makes proxies keep every endpoint assignment's arrival.
	History bool
	// Pinned makes every proxy connect first to Targets[0] instead of spreading them.
	Pinned bool
	// GRPCClients makes the proxies use grpc-go's client instead of the load
	// generator's own HTTP/2 streams (wireTransport), which cost it less CPU.
	GRPCClients bool
}

// Fleet is a running set of simulated proxies.
type Fleet struct {
	cfg     FleetConfig
	proxies []*Proxy
	cache   *factCache
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// StartFleet connects the proxies, at most ConnectConcurrency at a time, and returns
// once every proxy has opened its first stream (not necessarily received anything).
func StartFleet(ctx context.Context, cfg FleetConfig) *Fleet {
	if cfg.Classes < 1 {
		cfg.Classes = 1
	}
	if cfg.ConnectConcurrency < 1 {
		cfg.ConnectConcurrency = 256
	}
	fctx, cancel := context.WithCancel(context.Background())
	f := &Fleet{cfg: cfg, cache: &factCache{}, cancel: cancel}
	var tr transport = wireTransport{mode: cfg.Mode}
	if cfg.GRPCClients {
		tr = newGRPCTransport(cfg.Mode)
	}
	sem := make(chan struct{}, cfg.ConnectConcurrency)
	for i := 0; i < cfg.Proxies; i++ {
		pc := ProxyConfig{
			ID:           fmt.Sprintf("sidecar~10.%d.%d.%d~bench-%d.%s~%s.svc.cluster.local", i>>16&255, i>>8&255, i&255, i, cfg.Namespace, cfg.Namespace),
			Namespace:    cfg.Namespace,
			Labels:       map[string]string{"app": "bench", "class": fmt.Sprint(i % cfg.Classes)},
			Delta:        cfg.Delta,
			Mode:         cfg.Mode,
			IstioVersion: cfg.IstioVersion,
			Targets:      cfg.Targets,
			First:        i % len(cfg.Targets),
			History:      cfg.History,
		}
		if cfg.Listeners != nil {
			pc.Listeners = cfg.Listeners(i)
		}
		if cfg.Pinned {
			pc.First = 0
		}
		p := newProxy(pc, f.cache)
		f.proxies = append(f.proxies, p)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return f
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			go func() {
				// Free the slot once the stream is up (or after a while).
				deadline := time.Now().Add(10 * time.Second)
				for !p.Status().Connected && time.Now().Before(deadline) && fctx.Err() == nil {
					time.Sleep(2 * time.Millisecond)
				}
				<-sem
			}()
			p.Run(fctx, tr)
		}()
	}
	return f
}

// Proxies returns the fleet's proxies.
func (f *Fleet) Proxies() []*Proxy { return f.proxies }

// Stop disconnects every proxy.
func (f *Fleet) Stop() {
	f.cancel()
	f.wg.Wait()
}

// WaitSynced waits until every proxy has received a response and holds, for each
// name of want(i), some version of that resource. It reports progress through tick.
func (f *Fleet) WaitSynced(ctx context.Context, typeURL string, want func(i int) []string, tick func(done, total int)) error {
	t := typeIndex(typeURL)
	for {
		done := 0
		for i, p := range f.proxies {
			ok := p.Status().Synced
			for _, n := range want(i) {
				if !ok {
					break
				}
				ok = p.held(t, n) != nil
			}
			if ok {
				done++
			}
		}
		if tick != nil {
			tick(done, len(f.proxies))
		}
		if done == len(f.proxies) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d proxies synced: %w", done, len(f.proxies), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ByTarget counts connected proxies per target.
func (f *Fleet) ByTarget() map[string]int {
	out := map[string]int{}
	for _, p := range f.proxies {
		if st := p.Status(); st.Connected {
			out[st.Target]++
		}
	}
	return out
}
