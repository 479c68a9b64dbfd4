package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/navarch/navarch/client"
)

// WatchResult is how fast configuration changes reach API watchers (navarch get
// -w, controllers), and what the watchers cost the nodes.
type WatchResult struct {
	Watchers int `json:"watchers"`
	Changes  int `json:"changes"`
	// P50, P99 and Max are from the start of an apply to each watcher's receipt
	// of its event, over every watcher and change.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	// Missed counts events some watcher never got (within the timeout).
	Missed int `json:"missed"`
	// RSSPerWatcher is what the nodes' resident memory grew by, per watcher, once
	// the watches were open.
	RSSPerWatcher int64   `json:"rss_per_watcher_bytes"`
	CPU           float64 `json:"cpu_seconds"`
	PeakRSS       int64   `json:"peak_rss_bytes"`
}

// Watch opens Clients watches of the benchmark namespace's VirtualServices, spread
// over the nodes' APIs, then applies Writers changes one after another through the
// first node and measures when each watcher gets each change.
func Watch(ctx context.Context, cfg Config) (*WatchResult, error) {
	if err := cfg.needAPI("watch"); err != nil {
		return nil, err
	}
	apis := cfg.NodeAPIs
	if len(apis) == 0 {
		apis = []*client.Client{cfg.API}
	}
	changes := max(cfg.Writers, 1)
	before := readProcStats(cfg.PIDs)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type arrival struct {
		rv string
		at time.Time
	}
	var mu sync.Mutex
	got := make([][]arrival, cfg.Clients)
	var wg sync.WaitGroup
	for i := range cfg.Clients {
		events, err := apis[i%len(apis)].Watch(wctx, client.Selection{Kind: "virtualservices", Namespace: cfg.Namespace}, "")
		if err != nil {
			return nil, fmt.Errorf("watch %d: %w", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range events {
				if ev.Type != client.WatchModified && ev.Type != client.WatchAdded {
					continue
				}
				r, err := ev.Resource()
				if err != nil {
					continue
				}
				mu.Lock()
				got[i] = append(got[i], arrival{r.Meta.ResourceVersion, time.Now()})
				mu.Unlock()
			}
		}()
		cfg.progress("watchers: %d of %d", i+1, cfg.Clients)
	}
	time.Sleep(time.Second) // let the nodes settle before reading their memory
	open := readProcStats(cfg.PIDs)

	var lat Latencies
	missed := 0
	for c := range changes {
		doc := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench-watched, namespace: %s}
spec:
  hosts: [%s]
  http:
  - route:
    - {destination: {host: %s}, weight: %d}
    - {destination: {host: %s}, weight: %d}
`, cfg.Namespace, host(cfg.Namespace, 0), host(cfg.Namespace, 0), 1+c%99, host(cfg.Namespace, 1), 99-c%99)
		start := time.Now()
		resp, err := cfg.API.Apply(ctx, "", []client.File{{Source: "bench", Data: doc}})
		if err != nil {
			return nil, err
		}
		rv := strconv.FormatInt(resp.Revision, 10)
		deadline := time.Now().Add(cfg.Timeout)
		for {
			arrived := 0
			mu.Lock()
			for i := range got {
				for _, a := range got[i] {
					if a.rv == rv {
						arrived++
						break
					}
				}
			}
			mu.Unlock()
			cfg.progress("change %d of %d: %d of %d watchers", c+1, changes, arrived, cfg.Clients)
			if arrived == cfg.Clients || time.Now().After(deadline) {
				missed += cfg.Clients - arrived
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		for i := range got {
			for _, a := range got[i] {
				if a.rv == rv {
					lat = append(lat, a.at.Sub(start))
				}
			}
			got[i] = got[i][:0]
		}
		mu.Unlock()
	}
	cancel()
	wg.Wait()
	st := readProcStats(cfg.PIDs).since(before)
	return &WatchResult{
		Watchers: cfg.Clients, Changes: changes, Missed: missed,
		P50: ms(lat.Percentile(50)), P99: ms(lat.Percentile(99)), Max: ms(lat.Max()),
		RSSPerWatcher: (open.RSS - before.RSS) / int64(max(cfg.Clients, 1)),
		CPU:           st.CPUSeconds, PeakRSS: st.PeakRSS,
	}, nil
}
