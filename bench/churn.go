package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/navarch/navarch/client"
)

// churnSource is the registry source the churn scenario writes, as an adapter would.
const churnSource = "bench"

// ChurnResult is how endpoint changes reached the proxies.
type ChurnResult struct {
	Rate    int `json:"rate"`
	Proxies int `json:"proxies"`
	// Changes is how many endpoint changes were made; Observed how many (change,
	// subscribed proxy) pairs were measured.
	Changes  int     `json:"changes"`
	Observed int     `json:"observed"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	// Dropped counts (change, subscribed proxy) pairs never seen.
	Dropped    int     `json:"dropped"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSS    int64   `json:"peak_rss_bytes"`
	Achieved   float64 `json:"achieved_rate"`
}

// workloadEntry is endpoint j of service i in the churn registry, with its weight
// carrying the sequence number of the last change to it.
func workloadEntry(ns string, i, j int, weight uint32) map[string]any {
	return map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
		"metadata": map[string]string{"name": fmt.Sprintf("svc-%04d-%d", i, j), "namespace": ns},
		"spec": map[string]any{"address": endpointAddr(i, j), "weight": weight,
			"labels": map[string]string{"app": fmt.Sprintf("svc-%04d", i)}},
	}
}

func selectorServiceEntry(ns string, i int) map[string]any {
	return map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
		"metadata": map[string]string{"name": fmt.Sprintf("svc-%04d", i), "namespace": ns},
		"spec": map[string]any{
			"hosts": []string{host(ns, i)}, "location": "MESH_INTERNAL", "resolution": "STATIC",
			"ports":            []map[string]any{{"number": 80, "name": "http", "protocol": "HTTP"}},
			"workloadSelector": map[string]any{"labels": map[string]string{"app": fmt.Sprintf("svc-%04d", i)}},
		},
	}
}

// Churn changes endpoints at Rate per second for Duration, through the registry API
// (as an adapter writes) or, with Consul set, in Consul, while proxies are connected, and measures from each change
// to each subscribed proxy's receipt of it. A change sets an endpoint's weight to the
// change's sequence number, so a proxy's endpoint assignment tells which changes it
// reflects.
func Churn(ctx context.Context, cfg Config) (*ChurnResult, error) {
	if err := cfg.needAPI("churn"); err != nil {
		return nil, err
	}
	create, run := createChurnServices, churn
	if cfg.Consul != "" {
		create, run = registerConsulServices, churnConsul
	}
	if err := create(ctx, &cfg); err != nil {
		return nil, err
	}
	fc := fleetConfig(&cfg)
	fc.History = true
	f := StartFleet(ctx, fc)
	defer f.Stop()
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	err := f.WaitSynced(wctx, typeURLs[tEDS], trackedCluster(&cfg), func(done, total int) {
		cfg.progress("proxies: %d/%d connected and synced", done, total)
	})
	cancel()
	if err != nil {
		return nil, err
	}
	stats0 := readProcStats(cfg.PIDs)
	sent, elapsed, err := run(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	cfg.progress("churn done: %d changes; waiting for the proxies to catch up", len(sent))
	time.Sleep(3 * time.Second)
	r := measureChurn(&cfg, f, sent)
	st := readProcStats(cfg.PIDs).since(stats0)
	r.CPUSeconds, r.PeakRSS = st.CPUSeconds, st.PeakRSS
	r.Achieved = float64(len(sent)) / elapsed.Seconds()
	return r, nil
}

func createChurnServices(ctx context.Context, cfg *Config) error {
	for start := 0; start < cfg.Services; start += 100 {
		var ses, wes []map[string]any
		for i := start; i < min(start+100, cfg.Services); i++ {
			ses = append(ses, selectorServiceEntry(cfg.Namespace, i))
			for j := 0; j < cfg.Endpoints; j++ {
				wes = append(wes, workloadEntry(cfg.Namespace, i, j, 1))
			}
		}
		if _, err := cfg.API.Apply(ctx, "", []client.File{list(ses)}); err != nil {
			return err
		}
		if _, err := cfg.API.RegistryApply(ctx, churnSource, []client.File{list(wes)}); err != nil {
			return err
		}
		cfg.progress("services: %d/%d created", min(start+100, cfg.Services), cfg.Services)
	}
	return nil
}

// change is one endpoint change: its sequence number, service, and when it was sent.
type change struct {
	seq     uint32
	service int
	at      time.Time
}

// churn writes changes at cfg.Rate for cfg.Duration, batching the changes of each
// 10 ms into one request, one request at a time.
func churn(ctx context.Context, cfg *Config) ([]change, time.Duration, error) {
	const tick = 10 * time.Millisecond
	var mu sync.Mutex
	var sent []change
	var firstErr error
	sem := make(chan struct{}, 1) // in order: a proxy's view of a service reflects every change up to the largest weight it holds
	var wg sync.WaitGroup
	start := time.Now()
	seq := uint32(1)
	made := 0
	t := time.NewTicker(tick)
	defer t.Stop()
	for time.Since(start) < cfg.Duration && ctx.Err() == nil {
		<-t.C
		// Everything due by now: when a request takes longer than a tick, the next
		// one carries more changes, as an adapter batches a burst.
		n := int(float64(cfg.Rate)*time.Since(start).Seconds()) - made
		if n <= 0 {
			continue
		}
		made += n
		var items []map[string]any
		var batch []change
		for k := 0; k < n; k++ {
			seq++
			svc := int(seq) % cfg.Services
			items = append(items, workloadEntry(cfg.Namespace, svc, int(seq/uint32(cfg.Services))%cfg.Endpoints, seq))
			batch = append(batch, change{seq: seq, service: svc})
		}
		body, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
		sem <- struct{}{} // waits for the previous request: changes stay in order
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			at := time.Now()
			_, err := cfg.API.RegistryApply(ctx, churnSource, []client.File{{Source: "churn", Data: string(body)}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			for i := range batch {
				batch[i].at = at
			}
			sent = append(sent, batch...)
		}()
		cfg.progress("churn: %d changes sent", seq-1)
	}
	wg.Wait()
	return sent, time.Since(start), firstErr
}

// measureChurn matches changes with what each subscribed proxy received.
func measureChurn(cfg *Config, f *Fleet, sent []change) *ChurnResult {
	r := &ChurnResult{Rate: cfg.Rate, Proxies: cfg.Proxies, Changes: len(sent)}
	byService := map[int][]change{}
	for _, c := range sent {
		byService[c.service] = append(byService[c.service], c)
	}
	var lat Latencies
	tracked := trackedCluster(cfg)
	for i, p := range f.Proxies() {
		svc := i % cfg.Services
		name := tracked(i)[0]
		var marks []mark
		for _, m := range p.History() {
			if m.name == name {
				marks = append(marks, m)
			}
		}
		for _, c := range byService[svc] {
			seen := false
			for _, m := range marks {
				if m.weight >= c.seq && !m.at.Before(c.at) {
					lat = append(lat, m.at.Sub(c.at))
					seen = true
					break
				}
			}
			if seen {
				r.Observed++
			} else {
				r.Dropped++
			}
		}
	}
	r.P50, r.P99, r.Max = ms(lat.Percentile(50)), ms(lat.Percentile(99)), ms(lat.Max())
	return r
}
