package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	networking "istio.io/api/networking/v1alpha3"
)

// GroupProbe is the probe a WorkloadGroup's readiness probe describes; nil for none.
// Hosts default to 127.0.0.1 and the timings to Kubernetes' defaults, as in
// istio-agent. An error names the field below spec.probe (".tcpSocket.port: ...").
// `navarch agent configure` writes it as flags, and a running agent with
// --probe-from-group takes the group's probe as it changes.
func GroupProbe(p *networking.ReadinessProbe) (*Probe, error) {
	if p == nil {
		return nil, nil
	}
	host := func(h string) string {
		if h == "" {
			return "127.0.0.1"
		}
		return h
	}
	port := func(field string, port uint32) (string, error) {
		if port == 0 || port > 65535 {
			return "", fmt.Errorf(".%s.port: must be 1-65535, got %d", field, port)
		}
		return strconv.Itoa(int(port)), nil
	}
	seconds := func(n, def int32) time.Duration {
		if n <= 0 {
			n = def
		}
		return time.Duration(n) * time.Second
	}
	failures := p.GetFailureThreshold()
	if failures <= 0 {
		failures = 3
	}
	out := &Probe{
		Period:           seconds(p.GetPeriodSeconds(), 10),
		Timeout:          seconds(p.GetTimeoutSeconds(), 1),
		InitialDelay:     time.Duration(max(p.GetInitialDelaySeconds(), 0)) * time.Second,
		FailureThreshold: int(failures),
		SuccessThreshold: int(max(p.GetSuccessThreshold(), 1)),
	}
	switch m := p.GetHealthCheckMethod().(type) {
	case *networking.ReadinessProbe_TcpSocket:
		pt, err := port("tcpSocket", m.TcpSocket.GetPort())
		if err != nil {
			return nil, err
		}
		out.Kind, out.Target = "tcp", net.JoinHostPort(host(m.TcpSocket.GetHost()), pt)
	case *networking.ReadinessProbe_HttpGet:
		h := m.HttpGet
		pt, err := port("httpGet", h.GetPort())
		if err != nil {
			return nil, err
		}
		scheme := strings.ToLower(h.GetScheme())
		switch scheme {
		case "":
			scheme = "http"
		case "http", "https":
		default:
			return nil, fmt.Errorf(".httpGet.scheme: must be HTTP or HTTPS, got %q", h.GetScheme())
		}
		path := h.GetPath()
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		out.Kind, out.Target = "http", scheme+"://"+net.JoinHostPort(host(h.GetHost()), pt)+path
		for i, hd := range h.GetHttpHeaders() {
			if hd.GetName() == "" || strings.ContainsAny(hd.GetName(), ": \t\r\n") || strings.ContainsAny(hd.GetValue(), "\r\n") {
				return nil, fmt.Errorf(".httpGet.httpHeaders[%d]: not a valid header: %q: %q", i, hd.GetName(), hd.GetValue())
			}
			if out.Header == nil {
				out.Header = http.Header{}
			}
			out.Header.Add(hd.GetName(), hd.GetValue())
		}
	case *networking.ReadinessProbe_Exec:
		if len(m.Exec.GetCommand()) == 0 {
			return nil, errors.New(".exec.command: must name a command")
		}
		out.Kind, out.Command = "exec", m.Exec.GetCommand()
	default:
		return nil, errors.New(": names no check Istio takes (httpGet, tcpSocket or exec)")
	}
	return out, nil
}

// String is the probe in the form of --probe (ParseProbe), "none" for no probe.
func (p *Probe) String() string {
	switch {
	case p == nil:
		return "none"
	case p.Kind == "exec":
		return "exec:" + QuoteCommand(p.Command)
	case p.Kind == "http":
		return p.Target
	case p.Kind == "grpc" && p.Service != "":
		return "grpc:" + p.Target + "/" + p.Service
	}
	return p.Kind + ":" + p.Target
}

// prober runs the workload's probe, one at a time, and reports its results on
// health (which holds one: an unread result is replaced by the newer). Setting
// another probe stops the running one; a result the stopped one was about to
// report is dropped. With no probe the workload is healthy.
type prober struct {
	ctx    context.Context
	health chan probeResult

	mu      sync.Mutex
	current *Probe
	gen     int // counts set calls; a runner reports only while its own is current
	stop    context.CancelFunc
}

func newProber(ctx context.Context) *prober {
	return &prober{ctx: ctx, health: make(chan probeResult, 1), stop: func() {}}
}

// set runs p (nil: none) in place of the current probe, unless it is the same; it
// reports whether it changed anything.
func (pr *prober) set(p *Probe, first bool) bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if !first && reflect.DeepEqual(p, pr.current) {
		return false
	}
	pr.stop()
	pr.gen++
	pr.current = p
	if p == nil {
		pr.stop = func() {}
		pr.report(probeResult{healthy: true})
		return true
	}
	ctx, cancel := context.WithCancel(pr.ctx)
	pr.stop = cancel
	gen := pr.gen
	go p.run(ctx, func(r probeResult) {
		pr.mu.Lock()
		defer pr.mu.Unlock()
		if gen == pr.gen {
			pr.report(r)
		}
	})
	return true
}

// report puts r on health, replacing an unread result; pr.mu is held.
func (pr *prober) report(r probeResult) {
	select {
	case <-pr.health:
	default:
	}
	pr.health <- r
}
