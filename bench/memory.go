package bench

import (
	"context"
	"runtime"
	"time"
)

// MemoryResult is the memory the nodes use for idle connected proxies.
type MemoryResult struct {
	Proxies int `json:"proxies"`
	// RSSBytes is the nodes' resident memory with the proxies connected.
	RSSBytes int64 `json:"rss_bytes"`
	// BaselineRSSBytes is the nodes' resident memory before the proxies connected.
	BaselineRSSBytes int64 `json:"baseline_rss_bytes"`
	// BytesPerProxy is what connecting the proxies added, divided by the proxies.
	BytesPerProxy int64   `json:"bytes_per_proxy"`
	Services      int     `json:"services"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
}

// Memory connects idle proxies and reports the nodes' memory per proxy.
func Memory(ctx context.Context, cfg Config) (*MemoryResult, error) {
	if cfg.API != nil {
		if err := createServices(ctx, &cfg); err != nil {
			return nil, err
		}
	}
	settle(ctx)
	before := readProcStats(cfg.PIDs)
	f, err := connectFleet(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer f.Stop()
	settle(ctx)
	after := readProcStats(cfg.PIDs)
	r := &MemoryResult{Proxies: cfg.Proxies, Services: cfg.Services, RSSBytes: after.RSS, BaselineRSSBytes: before.RSS,
		CPUSeconds: after.since(before).CPUSeconds, PeakRSSBytes: after.PeakRSS}
	if cfg.Proxies > 0 {
		r.BytesPerProxy = (after.RSS - before.RSS) / int64(cfg.Proxies)
	}
	return r, nil
}

// settle gives the nodes a few seconds to finish pushes and collect garbage, so the
// memory read is what idle proxies cost, not a burst.
func settle(ctx context.Context) {
	runtime.GC()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
}
