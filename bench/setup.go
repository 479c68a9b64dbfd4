package bench

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/navarch/navarch/client"
)

// host is the name of the benchmark's service i.
func host(ns string, i int) string { return fmt.Sprintf("svc-%04d.%s.svc.cluster.local", i, ns) }

// cluster is the default cluster of service i.
func cluster(ns string, i int) string { return "outbound|80||" + host(ns, i) }

// endpointAddr is the address of endpoint j of service i: unique, never dialled.
func endpointAddr(i, j int) string {
	n := i*250*250 + j
	return fmt.Sprintf("10.%d.%d.%d", n/62500%250, n/250%250, n%250+1)
}

// serviceEntry is service i with its endpoints listed inline.
func serviceEntry(ns string, i, endpoints int) map[string]any {
	var eps []map[string]any
	for j := 0; j < endpoints; j++ {
		eps = append(eps, map[string]any{"address": endpointAddr(i, j), "labels": map[string]string{"version": []string{"v1", "v2"}[j%2]}})
	}
	return map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
		"metadata": map[string]string{"name": fmt.Sprintf("svc-%04d", i), "namespace": ns},
		"spec": map[string]any{
			"hosts": []string{host(ns, i)}, "location": "MESH_INTERNAL", "resolution": "STATIC",
			"ports":     []map[string]any{{"number": 80, "name": "http", "protocol": "HTTP"}},
			"endpoints": eps,
		},
	}
}

// list wraps documents in a List, one request body.
func list(items []map[string]any) client.File {
	b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	return client.File{Source: "bench", Data: string(b)}
}

// createServices applies the benchmark's services, in chunks.
func createServices(ctx context.Context, cfg *Config) error {
	const chunk = 200
	for start := 0; start < cfg.Services; start += chunk {
		var items []map[string]any
		for i := start; i < min(start+chunk, cfg.Services); i++ {
			items = append(items, serviceEntry(cfg.Namespace, i, cfg.Endpoints))
		}
		if _, err := cfg.API.Apply(ctx, "", []client.File{list(items)}); err != nil {
			return fmt.Errorf("creating services: %w", err)
		}
		cfg.progress("services: %d/%d created", min(start+chunk, cfg.Services), cfg.Services)
	}
	if cfg.Classes > 1 && !cfg.UnselectedClasses {
		if _, err := cfg.API.Apply(ctx, "", []client.File{classSelector(cfg.Namespace)}); err != nil {
			return fmt.Errorf("creating the class selector: %w", err)
		}
	}
	return nil
}

// classSelector is an AuthorizationPolicy that selects by the label the proxies'
// label sets differ in (see FleetConfig.Classes) and applies to none of them: a
// node tells proxies apart only by labels some configuration selects on, so this
// keeps each label set a class of its own.
func classSelector(ns string) client.File {
	return list([]map[string]any{{
		"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
		"metadata": map[string]string{"name": "bench-classes", "namespace": ns},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]string{"class": "none"}},
			"action":   "ALLOW",
		},
	}})
}

// meshPolicy is a DestinationRule for every service of the namespace; changing its
// value changes every cluster, so every proxy gets new configuration.
func meshPolicy(ns string, maxRequests int) client.File {
	return list([]map[string]any{{
		"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]string{"name": "bench-policy", "namespace": ns},
		"spec": map[string]any{
			"host":          "*." + ns + ".svc.cluster.local",
			"trafficPolicy": map[string]any{"connectionPool": map[string]any{"http": map[string]any{"http2MaxRequests": maxRequests}}},
		},
	}})
}

// serviceHost is the host of the scenario's service i: a ServiceEntry host, or the
// name the Consul adapter gives a Consul service.
func (c *Config) serviceHost(i int) string {
	if c.Consul != "" {
		return consulService(i) + ".service.consul"
	}
	return host(c.Namespace, i)
}

// fleetConfig is the fleet of a scenario: Named proxy i asks for service i mod S.
func fleetConfig(cfg *Config) FleetConfig {
	return FleetConfig{
		Proxies: cfg.Proxies, Targets: cfg.Targets, Delta: cfg.Delta, Mode: cfg.Mode, IstioVersion: cfg.IstioVersion, GRPCClients: cfg.GRPCClients,
		Namespace: cfg.Namespace, Classes: cfg.Classes,
		Listeners: func(i int) []string { return []string{cfg.serviceHost(i%cfg.Services) + ":80"} },
	}
}

// trackedCluster is the cluster whose arrival a scenario waits for at proxy i.
func trackedCluster(cfg *Config) func(i int) []string {
	return func(i int) []string { return []string{"outbound|80||" + cfg.serviceHost(i%cfg.Services)} }
}

// connectFleet starts the fleet and waits until every proxy holds its cluster or,
// against a server this run did not configure (no API), until every proxy has had
// a first response.
func connectFleet(ctx context.Context, cfg *Config) (*Fleet, error) {
	f := StartFleet(ctx, fleetConfig(cfg))
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	want := trackedCluster(cfg)
	if cfg.API == nil {
		want = func(int) []string { return nil }
	}
	err := f.WaitSynced(wctx, typeURLs[tCDS], want, func(done, total int) {
		cfg.progress("proxies: %d/%d connected and synced", done, total)
	})
	if err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}
