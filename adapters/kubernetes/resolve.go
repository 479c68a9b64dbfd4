package kubernetes

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Some load balancers have a host name rather than an address (AWS's), and a network
// gateway is reached at its load balancer's addresses: gatewayResolver looks those
// names up, as istiod does, outside the sync loop, which it wakes when an answer
// changes. A name is looked up when first seen and again after every refresh; while
// a lookup fails, the last answer stays.
type gatewayResolver struct {
	lookup  func(ctx context.Context, host string) ([]string, error)
	timeout time.Duration
	changed func() // wakes the sync loop
	log     *slog.Logger

	mu      sync.Mutex
	answers map[string][]string // sorted addresses by host name
	due     map[string]bool     // host names to look up (again)
	running map[string]bool     // lookups under way
}

func newGatewayResolver(changed func(), log *slog.Logger) *gatewayResolver {
	return &gatewayResolver{lookup: net.DefaultResolver.LookupHost, timeout: 5 * time.Second, changed: changed, log: log,
		answers: map[string][]string{}, due: map[string]bool{}, running: map[string]bool{}}
}

// gatewayHosts returns the host names of the load balancers of the network gateways
// among services (labelled with a network).
func gatewayHosts(services []*corev1.Service) []string {
	var out []string
	for _, s := range services {
		if s.Labels[LabelNetwork] == "" {
			continue
		}
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP == "" && in.Hostname != "" {
				out = append(out, in.Hostname)
			}
		}
	}
	return out
}

// addresses returns the addresses last found for each of hosts (none for a host not
// looked up yet), and starts the lookups that are due, until ctx ends.
func (r *gatewayResolver) addresses(ctx context.Context, hosts []string) map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for _, h := range hosts {
		if _, seen := r.answers[h]; !seen && !r.running[h] {
			r.due[h] = true
		}
		if r.due[h] && !r.running[h] {
			delete(r.due, h)
			r.running[h] = true
			go r.resolve(ctx, h)
		}
		out[h] = r.answers[h]
	}
	return out
}

// refresh makes every host name known due for another lookup.
func (r *gatewayResolver) refresh() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for h := range r.answers {
		r.due[h] = true
	}
}

func (r *gatewayResolver) resolve(ctx context.Context, host string) {
	lctx, cancel := context.WithTimeout(ctx, r.timeout)
	addrs, err := r.lookup(lctx, host)
	cancel()
	slices.Sort(addrs)
	r.mu.Lock()
	delete(r.running, host)
	old, seen := r.answers[host]
	changed := err == nil && !slices.Equal(old, addrs)
	switch {
	case changed:
		r.answers[host] = addrs
	case !seen:
		r.answers[host] = nil // looked up, nothing found: again at the next refresh
	}
	r.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		r.log.Warn("looking up a network gateway's load balancer failed; its last addresses stay", "host", host, "err", err)
	}
	if changed {
		r.changed()
	}
}
