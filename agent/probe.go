package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Probe is a workload's readiness check, as a WorkloadGroup's probe describes one:
// a TCP connection, a gRPC health check or an HTTP GET, every Period, with
// Kubernetes' thresholds.
type Probe struct {
	// Kind is "tcp", "grpc" or "http".
	Kind string
	// Target is host:port for tcp and grpc, a URL for http.
	Target string
	// Service is the service name of a gRPC health check ("" is the server's).
	Service string
	// Period between checks, Timeout of each.
	Period, Timeout time.Duration
	// FailureThreshold consecutive failures make the workload unhealthy,
	// SuccessThreshold consecutive successes healthy again.
	FailureThreshold, SuccessThreshold int
}

// ParseProbe reads a probe from its flag form: tcp:host:port, grpc:host:port[/service]
// or an http:// URL; the timings are Kubernetes' defaults until set.
func ParseProbe(s string) (*Probe, error) {
	p := &Probe{Period: 10 * time.Second, Timeout: time.Second, FailureThreshold: 3, SuccessThreshold: 1}
	switch {
	case strings.HasPrefix(s, "tcp:"):
		p.Kind, p.Target = "tcp", strings.TrimPrefix(s, "tcp:")
	case strings.HasPrefix(s, "grpc:"):
		p.Kind, p.Target = "grpc", strings.TrimPrefix(s, "grpc:")
		p.Target, p.Service, _ = strings.Cut(p.Target, "/")
	case strings.HasPrefix(s, "http://"):
		p.Kind, p.Target = "http", s
	default:
		return nil, fmt.Errorf("agent: --probe %q: want tcp:host:port, grpc:host:port[/service] or http://host:port/path", s)
	}
	return p, p.Validate()
}

// Validate checks the probe without side effects.
func (p *Probe) Validate() error {
	var errs []error
	switch p.Kind {
	case "tcp", "grpc":
		if _, _, err := net.SplitHostPort(p.Target); err != nil {
			errs = append(errs, fmt.Errorf("agent: %s probe target must be host:port, got %q", p.Kind, p.Target))
		}
	case "http":
		if u, err := url.Parse(p.Target); err != nil || u.Scheme != "http" || u.Host == "" {
			errs = append(errs, fmt.Errorf("agent: http probe target must be an http:// URL, got %q", p.Target))
		}
	default:
		errs = append(errs, fmt.Errorf("agent: probe kind must be tcp, grpc or http, got %q", p.Kind))
	}
	if p.Period <= 0 || p.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("agent: probe period and timeout must be positive, got %s and %s", p.Period, p.Timeout))
	}
	if p.FailureThreshold < 1 || p.SuccessThreshold < 1 {
		errs = append(errs, fmt.Errorf("agent: probe thresholds must be at least 1, got %d failures and %d successes", p.FailureThreshold, p.SuccessThreshold))
	}
	return errors.Join(errs...)
}

// probeResult is a workload's health as its probe last decided it.
type probeResult struct {
	healthy bool
	message string // why it is unhealthy
}

// run checks the workload every Period until ctx ends and sends its health on out:
// the first result at once, then each change once a threshold is crossed. out
// holds one result; an unread one is replaced by the newer.
func (p *Probe) run(ctx context.Context, out chan probeResult) {
	var cur probeResult
	first := true
	fails, successes := 0, 0
	t := time.NewTicker(p.Period)
	defer t.Stop()
	for {
		err := p.check(ctx)
		if ctx.Err() != nil {
			return
		}
		next := cur
		if err == nil {
			fails, successes = 0, successes+1
			if first || successes >= p.SuccessThreshold {
				next = probeResult{healthy: true}
			}
		} else {
			successes, fails = 0, fails+1
			// A workload starts unready until its first success, as in Kubernetes.
			if first || fails >= p.FailureThreshold {
				next = probeResult{healthy: false, message: err.Error()}
			}
		}
		if first || next.healthy != cur.healthy {
			cur, first = next, false
			select {
			case <-out: // drop the unread older result
			default:
			}
			out <- cur
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// check runs the probe once.
func (p *Probe) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	switch p.Kind {
	case "tcp":
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.Target)
		if err != nil {
			return fmt.Errorf("tcp probe: %w", err)
		}
		return c.Close()
	case "grpc":
		conn, err := grpc.NewClient(p.Target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.Service})
		if err != nil {
			return fmt.Errorf("grpc probe: %w", err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("grpc probe: %s", resp.Status)
		}
		return nil
	default:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Target, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("http probe: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("http probe: %s", resp.Status)
		}
		return nil
	}
}
