package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The streams a simulated proxy speaks: grpc-go's generated ADS client streams
// satisfy these, and so do the wire streams below.
type (
	sotwStream interface {
		Send(*discovery.DiscoveryRequest) error
		Recv() (*discovery.DiscoveryResponse, error)
	}
	deltaStream interface {
		Send(*discovery.DeltaDiscoveryRequest) error
		Recv() (*discovery.DeltaDiscoveryResponse, error)
	}
)

// A transport opens a proxy's ADS stream to a target, on a connection of the
// stream's own that closes when ctx ends.
type transport interface {
	sotw(ctx context.Context, target string) (sotwStream, error)
	delta(ctx context.Context, target string) (deltaStream, error)
}

// grpcTransport opens streams with grpc-go's client, as proxyless gRPC does: small
// buffers, one connection per proxy. Flow control is each kind's own: grpc-go
// (Named) estimates the bandwidth-delay product, pinging the server whenever data
// arrives after the last estimate; Envoy (Wildcard) keeps fixed windows and sends
// no such pings.
type grpcTransport struct{ opts []grpc.DialOption }

func newGRPCTransport(mode Mode) grpcTransport {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithReadBufferSize(8 << 10),
		grpc.WithWriteBufferSize(8 << 10),
		grpc.WithDisableServiceConfig(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
	}
	if mode == Wildcard {
		opts = append(opts, grpc.WithStaticStreamWindowSize(1<<20), grpc.WithStaticConnWindowSize(1<<20))
	}
	return grpcTransport{opts: opts}
}

func (g grpcTransport) client(ctx context.Context, target string) (discovery.AggregatedDiscoveryServiceClient, error) {
	cc, err := grpc.NewClient("passthrough:///"+target, g.opts...)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { cc.Close() })
	return discovery.NewAggregatedDiscoveryServiceClient(cc), nil
}

func (g grpcTransport) sotw(ctx context.Context, target string) (sotwStream, error) {
	c, err := g.client(ctx, target)
	if err != nil {
		return nil, err
	}
	return c.StreamAggregatedResources(ctx)
}

func (g grpcTransport) delta(ctx context.Context, target string) (deltaStream, error) {
	c, err := g.client(ctx, target)
	if err != nil {
		return nil, err
	}
	return c.DeltaAggregatedResources(ctx)
}

// wireTransport opens streams that speak gRPC's HTTP/2 mapping themselves, on the
// proxy's own goroutine: no reader, writer or keepalive goroutines per connection,
// and what a response calls for (its ACK, window updates, a ping) goes out in one
// write. The server sees what a grpc-go client would send it, including, for Named
// proxies, the bandwidth-estimation PING after each response (grpc-go sends one,
// with a window update and in a write of its own, whenever data arrives and none is
// outstanding). Windows are fixed at 1 MiB, as Envoy keeps them and as grpc-go's
// estimation grows them. It is the default because the load generator shares the
// cores with the nodes it measures: it costs about a third less CPU per response
// than grpc-go's client (bench/RESULTS.md).
type wireTransport struct{ mode Mode }

const (
	adsSotWPath  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	adsDeltaPath = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
	// wireWindow is the stream and connection receive window a wire stream grants.
	wireWindow = 1 << 20
	// wireMaxMessage bounds a response, as the grpc-go clients' MaxCallRecvMsgSize.
	wireMaxMessage = 64 << 20
)

// bdpPing is the payload of grpc-go's bandwidth-estimation pings.
var bdpPing = [8]byte{2, 4, 16, 16, 9, 14, 7, 7}

func (w wireTransport) sotw(ctx context.Context, target string) (sotwStream, error) {
	c, err := dialWire(ctx, target, adsSotWPath, w.mode == Named)
	if err != nil {
		return nil, err
	}
	return wireStream[*discovery.DiscoveryRequest, *discovery.DiscoveryResponse]{c, func() *discovery.DiscoveryResponse { return new(discovery.DiscoveryResponse) }}, nil
}

func (w wireTransport) delta(ctx context.Context, target string) (deltaStream, error) {
	c, err := dialWire(ctx, target, adsDeltaPath, w.mode == Named)
	if err != nil {
		return nil, err
	}
	return wireStream[*discovery.DeltaDiscoveryRequest, *discovery.DeltaDiscoveryResponse]{c, func() *discovery.DeltaDiscoveryResponse { return new(discovery.DeltaDiscoveryResponse) }}, nil
}

// wireStream gives a wireConn the typed Send and Recv of an ADS stream.
type wireStream[Req, Resp proto.Message] struct {
	c       *wireConn
	newResp func() Resp
}

func (s wireStream[Req, Resp]) Send(m Req) error { return s.c.send(m) }

func (s wireStream[Req, Resp]) Recv() (Resp, error) {
	m := s.newResp()
	return m, s.c.recv(m)
}

// wireConn is one HTTP/2 connection carrying one client stream (id 1). It is not
// safe for concurrent use: a simulated proxy sends and receives on one goroutine.
type wireConn struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	fr   *http2.Framer
	ping bool // send grpc-go's bandwidth-estimation pings

	// Receiving.
	msg                        []byte // gRPC message bytes received and not yet returned
	connUnacked, streamUnacked uint32 // bytes received since the last window update
	pingSent                   bool   // a bandwidth-estimation ping awaits its ACK
	end                        error  // how the stream ended (trailers, reset), once it has

	// Sending.
	connWindow, streamWindow int64  // what the server lets us send
	initialWindow            int64  // the server's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame                 uint32 // the server's SETTINGS_MAX_FRAME_SIZE
	out                      []byte
}

// dialWire connects to target and opens the stream at path, without waiting for the
// server's answer (as grpc-go opens one): what the server thinks of it comes with
// the first Recv.
func dialWire(ctx context.Context, target, path string, ping bool) (*wireConn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	c := &wireConn{conn: conn, ping: ping, connWindow: 65535, streamWindow: 65535, initialWindow: 65535, maxFrame: 16384}
	c.br, c.bw = bufio.NewReaderSize(conn, 8<<10), bufio.NewWriterSize(conn, 4<<10)
	c.fr = http2.NewFramer(c.bw, c.br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.SetReuseFrames()

	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", target},
		{"content-type", "application/grpc"}, {"te", "trailers"}, {"user-agent", "navarch-bench"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			conn.Close()
			return nil, err
		}
	}
	c.bw.WriteString(http2.ClientPreface)
	err = errors.Join(
		c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: wireWindow}, http2.Setting{ID: http2.SettingEnablePush, Val: 0}),
		c.fr.WriteWindowUpdate(0, wireWindow-65535),
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}),
		c.bw.Flush())
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// send writes m as one gRPC message, in frames as large as the server allows and
// its windows permit (waiting for window updates, and keeping what arrives in the
// meantime, when they do not).
func (c *wireConn) send(m proto.Message) error {
	if c.end != nil {
		return io.EOF // as grpc-go's SendMsg: the stream's status comes from Recv
	}
	b, err := proto.MarshalOptions{}.MarshalAppend(append(c.out[:0], 0, 0, 0, 0, 0), m)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(b[1:5], uint32(len(b)-5))
	c.out = b
	for len(b) > 0 {
		for c.connWindow <= 0 || c.streamWindow <= 0 {
			if err := c.bw.Flush(); err != nil {
				return err
			}
			if err := c.readFrame(); err != nil {
				return err
			}
			if c.end != nil {
				return io.EOF
			}
		}
		n := min(int64(len(b)), int64(c.maxFrame), c.connWindow, c.streamWindow)
		if err := c.fr.WriteData(1, false, b[:n]); err != nil {
			return err
		}
		c.connWindow -= n
		c.streamWindow -= n
		b = b[n:]
	}
	if cap(c.out) > 64<<10 {
		c.out = nil
	}
	return c.bw.Flush()
}

// recv reads frames until a whole gRPC message is in and unmarshals it into m.
// It returns io.EOF when the server ended the stream with status OK, and the
// status as an error otherwise. Control frames are answered as they come; the
// answers go out with the next write (at the latest before the next read blocks).
func (c *wireConn) recv(m proto.Message) error {
	for {
		if len(c.msg) >= 5 {
			if c.msg[0] != 0 {
				return status.Error(codes.Internal, "compressed message received without a compressor")
			}
			n := int(binary.BigEndian.Uint32(c.msg[1:5]))
			if n > wireMaxMessage {
				return status.Errorf(codes.ResourceExhausted, "received message larger than max (%d vs. %d)", n, wireMaxMessage)
			}
			if len(c.msg) >= 5+n {
				err := proto.Unmarshal(c.msg[5:5+n], m)
				rest := copy(c.msg, c.msg[5+n:])
				c.msg = c.msg[:rest]
				if cap(c.msg) > 64<<10 && rest < 4<<10 {
					c.msg = append([]byte(nil), c.msg...)
				}
				return err
			}
		}
		if c.end != nil {
			return c.end
		}
		if c.br.Buffered() == 0 && c.bw.Buffered() > 0 { // the read will wait: answer first
			if err := c.bw.Flush(); err != nil {
				return err
			}
		}
		if err := c.readFrame(); err != nil {
			return err
		}
	}
}

// readFrame reads one frame and does what it asks: keeps stream data, records the
// stream's end, applies settings and window updates, answers pings.
func (c *wireConn) readFrame() error {
	f, err := c.fr.ReadFrame()
	if err != nil {
		if c.end != nil {
			return c.end
		}
		return status.Errorf(codes.Unavailable, "reading from the server: %v", err)
	}
	switch f := f.(type) {
	case *http2.DataFrame:
		if len(c.msg)+len(f.Data()) > wireMaxMessage+5 {
			return status.Errorf(codes.ResourceExhausted, "received message larger than max (%d)", wireMaxMessage)
		}
		if f.StreamID == 1 {
			c.msg = append(c.msg, f.Data()...)
		}
		c.connUnacked += f.Length
		c.streamUnacked += f.Length
		if c.ping && !c.pingSent && f.Length > 0 {
			// grpc-go's reader, as the data arrives, hands its writer a window update
			// for the connection and the ping, which leave together ahead of the ACK
			// the application sends once it has the message.
			c.pingSent = true
			err := c.fr.WriteWindowUpdate(0, c.connUnacked)
			c.connUnacked = 0
			return errors.Join(err, c.fr.WritePing(false, bdpPing), c.bw.Flush())
		}
		if c.connUnacked >= wireWindow/4 {
			err := c.fr.WriteWindowUpdate(0, c.connUnacked)
			c.connUnacked = 0
			if err != nil {
				return err
			}
		}
		if c.streamUnacked >= wireWindow/4 {
			err := c.fr.WriteWindowUpdate(1, c.streamUnacked)
			c.streamUnacked = 0
			if err != nil {
				return err
			}
		}
	case *http2.MetaHeadersFrame:
		if f.StreamID == 1 && f.StreamEnded() {
			c.end = trailerStatus(f)
		} else if s := f.PseudoValue("status"); s != "" && s != "200" {
			c.end = status.Errorf(codes.Unknown, "unexpected HTTP status %s", s)
		}
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		err := f.ForeachSetting(func(s http2.Setting) error {
			switch s.ID {
			case http2.SettingInitialWindowSize:
				c.streamWindow += int64(s.Val) - c.initialWindow
				c.initialWindow = int64(s.Val)
			case http2.SettingMaxFrameSize:
				c.maxFrame = s.Val
			}
			return nil
		})
		return errors.Join(err, c.fr.WriteSettingsAck())
	case *http2.PingFrame:
		if f.IsAck() {
			if f.Data == bdpPing {
				c.pingSent = false
			}
			return nil
		}
		return c.fr.WritePing(true, f.Data)
	case *http2.WindowUpdateFrame:
		switch f.StreamID {
		case 0:
			c.connWindow += int64(f.Increment)
		case 1:
			c.streamWindow += int64(f.Increment)
		}
	case *http2.RSTStreamFrame:
		if f.StreamID == 1 && c.end == nil {
			c.end = status.Errorf(codes.Unavailable, "stream reset by the server: %v", f.ErrCode)
		}
	case *http2.GoAwayFrame:
		// The stream may finish; the server closes the connection when it has.
	}
	return nil
}

// trailerStatus is the gRPC status that trailers carry: io.EOF for OK, as grpc-go's
// Recv returns.
func trailerStatus(f *http2.MetaHeadersFrame) error {
	code := codes.Unknown
	if v := field(f, "grpc-status"); v != nil {
		if n, err := strconv.Atoi(v.Value); err == nil {
			code = codes.Code(n)
		}
	}
	if code == codes.OK {
		return io.EOF
	}
	return status.Error(code, decodeGRPCMessage(field(f, "grpc-message")))
}

// field returns the header field named name, nil if there is none.
func field(f *http2.MetaHeadersFrame, name string) *hpack.HeaderField {
	for i := range f.Fields {
		if f.Fields[i].Name == name {
			return &f.Fields[i]
		}
	}
	return nil
}

// decodeGRPCMessage undoes the percent-encoding of grpc-message.
func decodeGRPCMessage(v *hpack.HeaderField) string {
	if v == nil {
		return ""
	}
	s := v.Value
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(n))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}
