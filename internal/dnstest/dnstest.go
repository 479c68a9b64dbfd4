// Package dnstest is a DNS server for tests to stand in for a machine's resolver:
// it listens on loopback, UDP and TCP, answers every A query with one address and
// every other query with no records, and reports the names it is asked for.
package dnstest

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/navarch/navarch/internal/ports"
)

// Address is the address every A query is answered with (TEST-NET-1).
var Address = [4]byte{192, 0, 2, 53}

// Server is a running upstream.
type Server struct {
	// Addr is where it listens, UDP and TCP.
	Addr string
	// Queries receives the name of each query (as asked), when there is room.
	Queries chan string
}

// Start starts a Server at addr ("127.0.0.1:0" for any free port), stopped when
// the test ends.
func Start(t testing.TB, addr string) *Server {
	t.Helper()
	pc, l, err := ports.ListenBoth(addr)
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	t.Cleanup(func() { pc.Close(); l.Close() })
	s := &Server{Addr: pc.LocalAddr().String(), Queries: make(chan string, 64)}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := s.respond(buf[:n]); out != nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serveTCP(c)
		}
	}()
	return s
}

func (s *Server) serveTCP(c net.Conn) {
	defer c.Close()
	for {
		q, err := readTCP(c)
		if err != nil {
			return
		}
		out := s.respond(q)
		if out == nil || writeTCP(c, out) != nil {
			return
		}
	}
}

// Exchange sends DNS message q to the server at addr over network (udp or tcp) and
// returns its response.
func Exchange(network, addr string, q []byte) ([]byte, error) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if network == "tcp" {
		if err := writeTCP(c, q); err != nil {
			return nil, err
		}
		return readTCP(c)
	}
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	resp := make([]byte, 65535)
	n, err := c.Read(resp)
	return resp[:n], err
}

// readTCP reads one length-prefixed DNS message.
func readTCP(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(n[:]))
	_, err := io.ReadFull(r, msg)
	return msg, err
}

func writeTCP(w io.Writer, msg []byte) error {
	_, err := w.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...))
	return err
}

// respond answers query q, nil if it cannot be read.
func (s *Server) respond(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	question, err := p.Question()
	if err != nil {
		return nil
	}
	select {
	case s.Queries <- question.Name.String():
	default:
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired,
		RecursionAvailable: true, RCode: dnsmessage.RCodeSuccess})
	_ = b.StartQuestions()
	_ = b.Question(question)
	_ = b.StartAnswers()
	if question.Type == dnsmessage.TypeA {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: Address})
	}
	out, _ := b.Finish()
	return out
}
