package xds

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// conn is one ADS stream. Its state belongs to the stream's goroutine, except status,
// which debug views read under mu.
type conn struct {
	id          uint64
	peer        string
	delta       bool
	connectedAt time.Time
	proxy       *Proxy
	class       *class
	pushCh      chan struct{}
	nonce       uint64
	observed    *Build // the last build whose convergence was recorded

	mu     sync.Mutex
	status map[string]*TypeStatus
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
}

func newConn(ctx context.Context, id uint64, delta bool) *conn {
	c := &conn{id: id, delta: delta, connectedAt: time.Now(), pushCh: make(chan struct{}, 1), status: map[string]*TypeStatus{}}
	if p, ok := peer.FromContext(ctx); ok {
		c.peer = p.Addr.String()
	}
	return c
}

// notify tells the stream that its class has a new build. It never blocks.
func (c *conn) notify() {
	select {
	case c.pushCh <- struct{}{}:
	default:
	}
}

func (c *conn) nextNonce() string {
	c.nonce++
	return strconv.FormatUint(c.nonce, 10)
}

// typeStatus returns the status of a type, creating it; c.mu must be held.
func (c *conn) typeStatus(typeURL string) *TypeStatus {
	ts := c.status[typeURL]
	if ts == nil {
		ts = &TypeStatus{}
		c.status[typeURL] = ts
	}
	return ts
}

// receive runs a stream's receive loop, handing requests to the stream's goroutine
// through reqs. It ends when the stream does and reports why on errc.
func receive[T any](ctx context.Context, recv func() (T, error), reqs chan<- T, errc chan<- error) {
	for {
		req, err := recv()
		if err != nil {
			errc <- err
			return
		}
		select {
		case reqs <- req:
		case <-ctx.Done():
			return
		}
	}
}

// streamEnd turns the error that ended a stream into what the handler returns.
func streamEnd(err error) error {
	if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// checkFirst validates a stream's first request: it must identify the proxy.
func (s *Server) identify(c *conn, nodeErr error) error {
	if nodeErr != nil {
		return status.Errorf(codes.InvalidArgument, "invalid node: %v", nodeErr)
	}
	c.class = s.join(c)
	s.log.Info("proxy connected", "proxy", c.proxy.ID, "peer", c.peer, "delta", c.delta, "class", string(c.class.key))
	return nil
}
