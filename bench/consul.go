package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// Churn through Consul: the scenario's services are registered in a Consul agent and
// their instances re-registered with a new weight for each change; the Consul adapter
// of the nodes (started with --consul-address) follows the catalog, so a change's
// latency includes Consul's blocking query, the adapter's batching and its write.

func consulService(i int) string { return fmt.Sprintf("svc-%04d", i) }

// consulInstance is instance j of service i, registered in the catalog as an
// external node's service (as a registrator or Nomad would), without checks, so
// passing.
func consulInstance(i, j int, weight int) *consul.CatalogRegistration {
	return &consul.CatalogRegistration{
		Node:    fmt.Sprintf("bench-node-%d", j),
		Address: endpointAddr(i, j),
		Service: &consul.AgentService{
			ID:      fmt.Sprintf("%s-%d", consulService(i), j),
			Service: consulService(i),
			Address: endpointAddr(i, j),
			Port:    80,
			Meta:    map[string]string{"protocol": "http"},
			Weights: consul.AgentWeights{Passing: weight, Warning: 1},
		},
		SkipNodeUpdate: true,
	}
}

func consulClient(addr string) (*consul.Client, error) {
	cfg := consul.DefaultConfig()
	cfg.Address = addr
	return consul.NewClient(cfg)
}

// registerConsulServices registers every instance of the scenario's services.
func registerConsulServices(ctx context.Context, cfg *Config) error {
	c, err := consulClient(cfg.Consul)
	if err != nil {
		return err
	}
	for i := 0; i < cfg.Services; i++ {
		for j := 0; j < cfg.Endpoints; j++ {
			if _, err := c.Catalog().Register(consulInstance(i, j, 1), (&consul.WriteOptions{}).WithContext(ctx)); err != nil {
				return fmt.Errorf("registering in Consul: %w", err)
			}
		}
		cfg.progress("services: %d/%d registered in Consul", i+1, cfg.Services)
	}
	return nil
}

// churnConsul re-registers instances at cfg.Rate for cfg.Duration, each change giving
// an instance its sequence number as weight. A service's changes go through one
// worker, in order; services are spread over several.
func churnConsul(ctx context.Context, cfg *Config) ([]change, time.Duration, error) {
	c, err := consulClient(cfg.Consul)
	if err != nil {
		return nil, 0, err
	}
	const workers = 16
	queues := make([]chan change, workers)
	var mu sync.Mutex
	var sent []change
	var firstErr error
	var wg sync.WaitGroup
	for w := range queues {
		queues[w] = make(chan change, 1024)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ch := range queues[w] {
				ch.at = time.Now()
				j := int(ch.seq/uint32(cfg.Services)) % cfg.Endpoints
				_, err := c.Catalog().Register(consulInstance(ch.service, j, int(ch.seq)), (&consul.WriteOptions{}).WithContext(ctx))
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				} else if err == nil {
					sent = append(sent, ch)
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	seq := uint32(1)
	made := 0
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for time.Since(start) < cfg.Duration && ctx.Err() == nil {
		<-t.C
		n := int(float64(cfg.Rate)*time.Since(start).Seconds()) - made
		for k := 0; k < n; k++ {
			seq++
			svc := int(seq) % cfg.Services
			queues[svc%workers] <- change{seq: seq, service: svc}
		}
		made += max(n, 0)
		cfg.progress("churn: %d changes sent to Consul", made)
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	return sent, time.Since(start), firstErr
}
