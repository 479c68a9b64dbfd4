package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/navarch/navarch/client"
)

// ApplyResult is how fast concurrent configuration writes go through the API.
type ApplyResult struct {
	Writers   int     `json:"writers"`
	Applied   int     `json:"applied"`
	PerSecond float64 `json:"per_second"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	Failed    int     `json:"failed"`
	CPU       float64 `json:"cpu_seconds"`
	PeakRSS   int64   `json:"peak_rss_bytes"`
}

// Apply runs Writers concurrent writers for Duration, each applying a
// VirtualService of its own with a new weight split every time.
func Apply(ctx context.Context, cfg Config) (*ApplyResult, error) {
	if err := cfg.needAPI("apply"); err != nil {
		return nil, err
	}
	if err := createServices(ctx, &cfg); err != nil {
		return nil, err
	}
	stats0 := readProcStats(cfg.PIDs)
	var mu sync.Mutex
	var lat Latencies
	failed := 0
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < max(cfg.Writers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < cfg.Duration && ctx.Err() == nil; i++ {
				doc := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench-writer-%d, namespace: %s}
spec:
  hosts: [%s]
  http:
  - route:
    - {destination: {host: %s}, weight: %d}
    - {destination: {host: %s}, weight: %d}
`, w, cfg.Namespace, host(cfg.Namespace, w%cfg.Services), host(cfg.Namespace, w%cfg.Services), 1+i%99, host(cfg.Namespace, (w+1)%cfg.Services), 99-i%99)
				t := time.Now()
				_, err := cfg.API.Apply(ctx, "", []client.File{{Source: "bench", Data: doc}})
				mu.Lock()
				if err != nil {
					failed++
				} else {
					lat = append(lat, time.Since(t))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	st := readProcStats(cfg.PIDs).since(stats0)
	return &ApplyResult{PeakRSS: st.PeakRSS, Writers: cfg.Writers, Applied: len(lat), PerSecond: float64(len(lat)) / elapsed.Seconds(),
		P50: ms(lat.Percentile(50)), P99: ms(lat.Percentile(99)), Failed: failed,
		CPU: st.CPUSeconds}, nil
}
