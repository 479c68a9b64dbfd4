package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Probe is a workload's readiness check, as a WorkloadGroup's probe describes one:
// a TCP connection, a gRPC health check, an HTTP GET or a command, every Period,
// with Kubernetes' thresholds.
type Probe struct {
	// Kind is "tcp", "grpc", "http" or "exec".
	Kind string
	// Target is host:port for tcp and grpc, an http:// or https:// URL for http.
	Target string
	// Service is the service name of a gRPC health check ("" is the server's).
	Service string
	// Header is sent with an HTTP probe's request.
	Header http.Header
	// Command is an exec probe's program and arguments: healthy when it exits 0.
	Command []string
	// InitialDelay passes before the first check; the workload is unready until
	// then. Period between checks, Timeout of each.
	InitialDelay, Period, Timeout time.Duration
	// FailureThreshold consecutive failures make the workload unhealthy,
	// SuccessThreshold consecutive successes healthy again.
	FailureThreshold, SuccessThreshold int
}

// ParseProbe reads a probe from its flag form: tcp:host:port, grpc:host:port[/service],
// an http:// or https:// URL, or exec:command args... (split as a shell splits words:
// SplitCommand);
// the timings are Kubernetes' defaults until set.
func ParseProbe(s string) (*Probe, error) {
	p := &Probe{Period: 10 * time.Second, Timeout: time.Second, FailureThreshold: 3, SuccessThreshold: 1}
	switch {
	case strings.HasPrefix(s, "tcp:"):
		p.Kind, p.Target = "tcp", strings.TrimPrefix(s, "tcp:")
	case strings.HasPrefix(s, "grpc:"):
		p.Kind, p.Target = "grpc", strings.TrimPrefix(s, "grpc:")
		p.Target, p.Service, _ = strings.Cut(p.Target, "/")
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		p.Kind, p.Target = "http", s
	case strings.HasPrefix(s, "exec:"):
		cmd, err := SplitCommand(strings.TrimPrefix(s, "exec:"))
		if err != nil {
			return nil, fmt.Errorf("agent: --probe %q: %v", s, err)
		}
		p.Kind, p.Command = "exec", cmd
	default:
		return nil, fmt.Errorf("agent: --probe %q: want tcp:host:port, grpc:host:port[/service], http(s)://host:port/path or exec:command", s)
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
		if u, err := url.Parse(p.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("agent: http probe target must be an http:// or https:// URL, got %q", p.Target))
		}
	case "exec":
		if len(p.Command) == 0 {
			errs = append(errs, errors.New("agent: exec probe needs a command"))
		}
	default:
		errs = append(errs, fmt.Errorf("agent: probe kind must be tcp, grpc, http or exec, got %q", p.Kind))
	}
	if len(p.Header) > 0 && p.Kind != "http" {
		errs = append(errs, fmt.Errorf("agent: probe headers are for http probes, not %s", p.Kind))
	}
	if p.Period <= 0 || p.Timeout <= 0 || p.InitialDelay < 0 {
		errs = append(errs, fmt.Errorf("agent: probe period and timeout must be positive and the initial delay not negative, got %s, %s and %s", p.Period, p.Timeout, p.InitialDelay))
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

// run checks the workload every Period, from InitialDelay on, until ctx ends and
// reports its health: the first result at once, then each change once a
// threshold is crossed.
func (p *Probe) run(ctx context.Context, report func(probeResult)) {
	if p.InitialDelay > 0 {
		select {
		case <-time.After(p.InitialDelay):
		case <-ctx.Done():
			return
		}
	}
	var cur probeResult
	first := true
	fails, successes := 0, 0
	t := time.NewTicker(p.Period)
	defer t.Stop()
	for {
		err := p.Check(ctx)
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
			report(cur)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// Check runs the probe once: nil when the workload is ready.
func (p *Probe) Check(ctx context.Context) error {
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
	case "exec":
		out, err := exec.CommandContext(ctx, p.Command[0], p.Command[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("exec probe: %w: %s", err, lastLine(out))
		}
		return nil
	default:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Target, nil)
		if err != nil {
			return err
		}
		for k, vs := range p.Header {
			req.Header[k] = vs
		}
		if h := p.Header.Get("Host"); h != "" {
			req.Host = h
		}
		resp, err := probeClient.Do(req)
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

// probeClient makes HTTP probes' requests. As Kubernetes' and Istio's probes, an
// https:// probe does not verify the workload's certificate: it asks whether the
// workload answers, not who it is.
var probeClient = &http.Client{Transport: &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a readiness check, not a trust decision
	DisableKeepAlives: true,
}}

// lastLine is the last non-empty line of a command's output, for a probe's message.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}
