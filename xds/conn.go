package xds

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// conn is one ADS stream. Its goroutine (the gRPC handler) receives requests and
// answers them; pushes are sent by the server's push workers. Both hold mu while
// they use the stream's state and send, so a stream needs no goroutine of its own
// beyond the handler: per-stream goroutines are most of what an idle proxy costs.
type conn struct {
	id          uint64
	peer        string
	delta       bool
	connectedAt time.Time
	proxy       *Proxy
	identity    *Identity     // who the proxy proved to be; nil over plaintext
	registered  *registration // the proxy's registration as a workload (AUTO_REGISTER_GROUP)
	class       *class
	queued      atomic.Bool  // waiting for a push worker
	queuedAt    atomic.Int64 // since when (Unix nanoseconds)

	mu       sync.Mutex
	closed   bool
	nonce    uint64
	observed *Build       // the last build whose convergence was recorded
	push     func() error // sends what changed since the last response; mu held

	statusMu sync.Mutex // status (and proxy and class, see proxyAndClass) is read by debug views without waiting for a send
	status   map[string]*TypeStatus
}

// TypeStatus is what a proxy has of one resource type, for debug views.
type TypeStatus struct {
	// Wildcard is true when the proxy asked for every resource of the type.
	Wildcard bool `json:"wildcard,omitempty"`
	// Subscribed counts the names the proxy asked for.
	Subscribed int `json:"subscribed"`
	// Sent is the version last sent; Acked the last one the proxy accepted; Nacked the
	// last one it rejected, with its error. For Delta streams the versions are of the
	// last response (a hash of what it carried).
	Sent      string    `json:"sent,omitempty"`
	Acked     string    `json:"acked,omitempty"`
	Nacked    string    `json:"nacked,omitempty"`
	NackError string    `json:"nack_error,omitempty"`
	Nacks     int       `json:"nacks,omitempty"`
	LastSent  time.Time `json:"last_sent,omitempty"`
	// Revision is the configuration revision of the build the type was last
	// brought up to (sent from, or found unchanged in).
	Revision int64 `json:"revision,omitempty"`
}

// syncedRevision is the configuration revision a proxy has taken in full: the
// oldest revision its types were brought up to, if it acknowledged every one's
// last response; 0 while a response waits for its ACK or was rejected.
func syncedRevision(types map[string]*TypeStatus) int64 {
	var rev int64
	for _, ts := range types {
		if ts.Acked != ts.Sent || ts.Nacked != "" && ts.Nacked == ts.Sent {
			return 0
		}
		if rev == 0 || ts.Revision < rev {
			rev = ts.Revision
		}
	}
	return rev
}

func newConn(ctx context.Context, id uint64, delta bool) *conn {
	c := &conn{id: id, delta: delta, connectedAt: time.Now(), status: map[string]*TypeStatus{}}
	if p, ok := peer.FromContext(ctx); ok {
		c.peer = p.Addr.String()
	}
	return c
}

func (c *conn) nextNonce() string {
	c.nonce++
	return strconv.FormatUint(c.nonce, 10)
}

// proxyAndClass returns the stream's proxy and class (nil until its first request is
// handled), for readers that do not hold c.mu. Both change, under c.mu and
// c.statusMu, when a workload registered at the proxy's address changes its labels.
func (c *conn) proxyAndClass() (*Proxy, *class) {
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	return c.proxy, c.class
}

// checked records that the proxy's type t is up to build b, which changed nothing
// it has (sent records a response, and the build it came from).
func (c *conn) checked(t string, b *Build) {
	c.statusMu.Lock()
	c.typeStatus(t).Revision = b.Revision
	c.statusMu.Unlock()
}

// typeStatus returns the status of a type, creating it; c.statusMu must be held.
func (c *conn) typeStatus(typeURL string) *TypeStatus {
	ts := c.status[typeURL]
	if ts == nil {
		ts = &TypeStatus{}
		c.status[typeURL] = ts
	}
	return ts
}

// streamEnd turns the error that ended a stream into what the handler returns.
func streamEnd(err error) error {
	if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// identify handles a stream's first request, which must identify the proxy: the
// stream joins its proxy's class and from then on receives pushes. Over TLS the proxy
// must also prove who it is (client certificate or token), and may claim no other
// namespace or service account than its own: it then gets only its own
// configuration and secrets.
func (s *Server) identify(ctx context.Context, c *conn, nodeErr error, first healthReport) error {
	if nodeErr != nil {
		return status.Errorf(codes.InvalidArgument, "invalid node: %v", nodeErr)
	}
	if err := s.authenticate(ctx, c); err != nil {
		return err
	}
	if err := s.register(ctx, c, first); err != nil {
		return err
	}
	s.join(c)
	s.log.Info("proxy connected", "proxy", c.proxy.ID, "peer", c.peer, "delta", c.delta, "class", string(c.class.key))
	return nil
}

// closeConn marks a stream ended and removes it from the server.
func (s *Server) closeConn(c *conn) {
	c.mu.Lock()
	c.closed = true
	reg := c.registered
	c.mu.Unlock()
	s.leave(c)
	if reg != nil {
		reg.Close()
	}
}

// pushTo sends a stream what its class's new build changed for it. Push workers call
// it; a stream that is sending (or whose proxy reads slowly) holds up one worker only.
func (s *Server) pushTo(c *conn) {
	c.queued.Store(false)
	s.metrics.queueTime.Observe(time.Since(time.Unix(0, c.queuedAt.Load())).Seconds())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.push == nil {
		return
	}
	if err := c.push(); err != nil {
		s.log.Debug("push failed; the stream will end", "proxy", c.proxy.ID, "err", err)
	}
}

// authenticate sets the stream's identity when it came over TLS and an
// Authenticator is configured, and checks the proxy's claims against it.
func (s *Server) authenticate(ctx context.Context, c *conn) error {
	if s.auth == nil {
		return nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	if _, tls := p.AuthInfo.(credentials.TLSInfo); !tls {
		return nil // plaintext: an anonymous proxy, which gets no secrets
	}
	id, err := s.auth.Authenticate(ctx)
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "authenticating the proxy: %v", err)
	}
	if c.proxy.Namespace != id.Namespace || (c.proxy.ServiceAccount != "" && c.proxy.ServiceAccount != id.ServiceAccount) {
		return status.Errorf(codes.PermissionDenied, "proxy %s claims namespace %q and service account %q but is %s/%s",
			c.proxy.ID, c.proxy.Namespace, c.proxy.ServiceAccount, id.Namespace, id.ServiceAccount)
	}
	c.proxy.ServiceAccount = id.ServiceAccount
	c.identity = &id
	return nil
}

// serveStream runs a stream's goroutine, SotW or Delta alike: it receives requests
// and handles each under the stream's lock. The first request must identify the
// proxy; from then on the stream joins its class and push workers send it what
// changes, with push.
func serveStream[Req interface {
	GetNode() *corev3.Node
	healthReport
}](s *Server, ctx context.Context, delta bool,
	recv func() (Req, error), push func(*conn) error, handle func(*conn, Req) error) error {
	c := newConn(ctx, s.nextConn.Add(1), delta)
	defer s.closeConn(c)
	next := recv // a registered stream's is pumped: see pump
	for {
		req, err := next()
		if err != nil {
			return streamEnd(err)
		}
		c.mu.Lock()
		if c.proxy == nil {
			var nodeErr error
			var p *Proxy
			p, nodeErr = ParseProxy(req.GetNode())
			c.statusMu.Lock()
			c.proxy = p
			c.statusMu.Unlock()
			c.push = func() error { return push(c) }
			err = s.identify(ctx, c, nodeErr, req)
			if err == nil && c.registered != nil {
				next = pump(ctx, recv, c.registered.end)
			}
			if err == nil && isHealthReport(req) {
				c.mu.Unlock()
				continue // the registration took the health it reports
			}
		}
		if err == nil && isHealthReport(req) {
			s.reportHealth(ctx, c, req)
		} else if err == nil {
			err = handle(c, req)
		}
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}
