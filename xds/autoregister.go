package xds

import (
	"context"
	"sync"
	"time"

	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// HealthType is the type URL of Istio's health reports: a proxy that runs its
// workload's readiness probe (istio-agent with a readinessProbe in its proxy
// config) sends a request of this type whenever the result changes, without an
// error detail when the probe passes and with the failure otherwise. It is answered
// with nothing. LegacyHealthType is the type URL of Istio releases before 1.9.
const (
	HealthType       = "type.googleapis.com/istio.v1.HealthInformation"
	LegacyHealthType = "istio.io/health"
)

// isHealthReport reports whether a request is a health report.
func isHealthReport(req healthReport) bool {
	return req.GetTypeUrl() == HealthType || req.GetTypeUrl() == LegacyHealthType
}

// Registrar registers the proxies that ask for it (node metadata
// AUTO_REGISTER_GROUP, Istio's WorkloadGroup auto-registration) as workloads of
// their group while they are connected.
type Registrar interface {
	// Register registers p, which proved to be id (nil over plaintext). healthy is
	// the health p reported with its first request, nil when it reported none.
	Register(ctx context.Context, p *Proxy, id *Identity, healthy *bool) (Registered, error)
}

// Registered is a proxy's registration, held while its stream lasts.
type Registered interface {
	// Name is the registered workload's name.
	Name() string
	// SetHealth records the health the proxy reported.
	SetHealth(ctx context.Context, healthy bool, message string) error
	// Close ends the registration's hold when the stream ends.
	Close()
}

// SetRegistrar sets who registers proxies that ask to be (AUTO_REGISTER_GROUP). Set
// it before serving. Without one such proxies are served without being registered.
func (s *Server) SetRegistrar(r Registrar) { s.registrar = r }

// registerTimeout bounds the write of a proxy's registration (the stream's first
// request waits for it).
const registerTimeout = 10 * time.Second

// register registers a proxy that asks to be, before its stream joins a class: a
// proxy that cannot be registered is refused, as istiod refuses it. first is the
// stream's first request, which may be a health report. The caller holds c.mu.
func (s *Server) register(ctx context.Context, c *conn, first healthReport) error {
	if c.proxy.AutoRegisterGroup == "" || s.registrar == nil {
		return nil
	}
	var healthy *bool
	if isHealthReport(first) {
		h := first.GetErrorDetail() == nil
		healthy = &h
	}
	rctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	reg, err := s.registrar.Register(rctx, c.proxy, c.identity, healthy)
	if err != nil {
		s.log.Warn("auto-registration refused", "proxy", c.proxy.ID, "group", c.proxy.AutoRegisterGroup, "err", err)
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.FailedPrecondition, "auto-registration in WorkloadGroup %s/%s: %v", c.proxy.Namespace, c.proxy.AutoRegisterGroup, err)
	}
	c.registered = &registration{Registered: reg, end: make(chan struct{})}
	return nil
}

// registration is a stream's registration, and how the server ends the stream.
type registration struct {
	Registered
	end  chan struct{} // closed to end the stream
	once sync.Once
}

// EndRegistered ends the streams of the proxies registered through this node, with
// Unavailable: they reconnect, to another node if theirs lists several. The node
// calls it when it cannot keep their registrations (its lease cannot be renewed).
func (s *Server) EndRegistered() {
	s.mu.Lock()
	var regs []*registration
	for _, c := range s.conns {
		if c.registered != nil { // set before the stream joined s.conns, never changed
			regs = append(regs, c.registered)
		}
	}
	s.mu.Unlock()
	for _, r := range regs {
		r.once.Do(func() { close(r.end) })
	}
	if len(regs) > 0 {
		s.log.Warn("ended the streams of registered proxies so that they register with another node", "streams", len(regs))
	}
}

// errRegistrationEnded ends a registered stream whose node cannot keep its
// registration.
var errRegistrationEnded = status.Error(codes.Unavailable, "this node cannot keep the proxy's registration (it is cut off from its quorum): reconnect to another node")

// pump returns a registered stream's recv: its requests are received in a goroutine
// of their own, so that the stream's handler can also wait for end (EndRegistered),
// which it then returns as its error. Only registered proxies (VMs) pay for the
// goroutine. The select stays out of serveStream's loop: a bigger frame there grew
// every stream's goroutine stack, ~3 KB a proxy (`navarch bench memory`).
func pump[Req any](ctx context.Context, recv func() (Req, error), end <-chan struct{}) func() (Req, error) {
	type received struct {
		req Req
		err error
	}
	out := make(chan received)
	go func() {
		for {
			req, err := recv()
			select {
			case out <- received{req, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return func() (Req, error) {
		var zero Req
		select {
		case m := <-out:
			return m.req, m.err
		case <-end:
			return zero, errRegistrationEnded
		case <-ctx.Done(): // the stream ended; the goroutine may have given up delivering its error
			return zero, ctx.Err()
		}
	}
}

// healthReport is what the requests of both protocols have for health reports.
type healthReport interface {
	GetTypeUrl() string
	GetErrorDetail() *rpcstatus.Status
}

// reportHealth records a health report of the stream's proxy on its registration. The
// caller holds c.mu.
func (s *Server) reportHealth(ctx context.Context, c *conn, req healthReport) {
	if c.registered == nil {
		return // only registered workloads have a health to keep
	}
	rctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	if err := c.registered.SetHealth(rctx, req.GetErrorDetail() == nil, req.GetErrorDetail().GetMessage()); err != nil {
		s.log.Warn("recording a proxy's health failed", "proxy", c.proxy.ID, "err", err)
	}
}
