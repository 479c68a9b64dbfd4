package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// FailoverResult is how the proxies of a killed node got back in sync.
type FailoverResult struct {
	Proxies int `json:"proxies"`
	// Moved is how many proxies the killed node had.
	Moved int     `json:"moved"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	// ResourcesResent counts resources the moved proxies received again in a version
	// they already held; BytesResent their size.
	ResourcesResent int     `json:"resources_resent"`
	BytesResent     int64   `json:"bytes_resent"`
	Killed          string  `json:"killed"`
	Delta           bool    `json:"delta"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
}

// Failover connects proxies across the nodes, kills (SIGKILL) the node with most of
// them, and measures until each of its proxies is connected to a survivor and in
// sync: for Delta, when its new stream has said what it holds (a server with nothing
// new sends nothing); for SotW, when it has received the configuration again.
func Failover(ctx context.Context, cfg Config) (*FailoverResult, error) {
	if cfg.Kill == nil {
		return nil, errors.New("bench failover kills a node and needs a local cluster (run it without --target)")
	}
	if len(cfg.Targets) < 2 {
		return nil, errors.New("bench failover needs at least two nodes")
	}
	if err := cfg.needAPI("failover"); err != nil {
		return nil, err
	}
	if err := createServices(ctx, &cfg); err != nil {
		return nil, err
	}
	f, err := connectFleet(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer f.Stop()
	victim, most := "", -1
	for target, n := range f.ByTarget() {
		if n > most {
			victim, most = target, n
		}
	}
	var moved []*Proxy
	resentBefore := map[*Proxy]Status{}
	for _, p := range f.Proxies() {
		if st := p.Status(); st.Target == victim {
			moved = append(moved, p)
			resentBefore[p] = st
		}
	}
	cfg.progress("killing the node at %s, which has %d proxies", victim, len(moved))
	stats0 := readProcStats(cfg.PIDs)
	start := time.Now()
	if err := cfg.Kill(victim); err != nil {
		return nil, err
	}
	lat, err := waitMoved(ctx, &cfg, moved, victim, start)
	if err != nil {
		return nil, err
	}
	// Anything resent arrives right after the new stream's first requests.
	time.Sleep(2 * time.Second)
	r := &FailoverResult{Proxies: cfg.Proxies, Moved: len(moved), P50: ms(lat.Percentile(50)), P99: ms(lat.Percentile(99)),
		Max: ms(lat.Max()), Killed: victim, Delta: cfg.Delta}
	st := readProcStats(cfg.PIDs).since(stats0) // the killed node's counters stop at its death
	r.CPUSeconds, r.PeakRSSBytes = st.CPUSeconds, st.PeakRSS
	for _, p := range moved {
		st := p.Status()
		r.ResourcesResent += st.Resent - resentBefore[p].Resent
		r.BytesResent += int64(st.ResentBytes - resentBefore[p].ResentBytes)
	}
	return r, nil
}

func waitMoved(ctx context.Context, cfg *Config, moved []*Proxy, victim string, start time.Time) (Latencies, error) {
	deadline := time.Now().Add(cfg.Timeout)
	lat := make(Latencies, len(moved))
	done := make([]bool, len(moved))
	remaining := len(moved)
	for remaining > 0 {
		for i, p := range moved {
			if done[i] {
				continue
			}
			st := p.Status()
			if !st.Connected || st.Target == victim || st.ConnectedAt.Before(start) {
				continue
			}
			at := st.ConnectedAt
			if !cfg.Delta {
				if st.LastRecv.Before(st.ConnectedAt) {
					continue // SotW: in sync once the configuration came again
				}
				at = st.LastRecv
			}
			lat[i], done[i] = at.Sub(start), true
			remaining--
		}
		cfg.progress("moved: %d/%d proxies back in sync", len(moved)-remaining, len(moved))
		if remaining == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d proxies did not reconnect within %s", remaining, len(moved), cfg.Timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return lat, nil
}
