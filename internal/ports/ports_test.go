package ports

import (
	"net"
	"strconv"
	"testing"
)

func TestHoldPicksDistinctPortsBelowTheEphemeralRange(t *testing.T) {
	lo, hi := candidates()
	seen := map[int]bool{}
	for i := 0; i < 50; i++ {
		port, release, err := Hold()
		if err != nil {
			t.Fatal(err)
		}
		if port < lo || port >= hi {
			t.Fatalf("port %d outside [%d, %d)", port, lo, hi)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			t.Fatalf("%s (tcp) bindable while held", addr)
		}
		if u, err := net.ListenPacket("udp", addr); err == nil {
			u.Close()
			t.Fatalf("%s (udp) bindable while held", addr)
		}
		release()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s not free after release: %v", addr, err)
		}
		l.Close()
	}
}

func TestHoldPortTakesAGivenPortOnlyWhenFree(t *testing.T) {
	port, release, err := Hold()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := HoldPort(port, "127.0.0.1"); err == nil {
		t.Fatalf("HoldPort(%d) while Hold holds it succeeded", port)
	}
	release()
	again, err := HoldPort(port, "127.0.0.1")
	if err != nil {
		t.Fatalf("HoldPort(%d) once free: %v", port, err)
	}
	if l, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
		l.Close()
		t.Errorf("HoldPort(%d) left UDP free", port)
	}
	again()
}

// ListenBoth takes one port for UDP and TCP, another when the kernel's UDP pick is
// taken for TCP.
func TestListenBoth(t *testing.T) {
	// Hold TCP on many ephemeral ports, so that UDP picks collide with some.
	var held []net.Listener
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for range 50 {
		udp, tcp, err := ListenBoth("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if udp.LocalAddr().String() != tcp.Addr().String() {
			t.Errorf("UDP on %s, TCP on %s", udp.LocalAddr(), tcp.Addr())
		}
		udp.Close()
		tcp.Close()
	}
	if _, _, err := ListenBoth(held[0].Addr().String()); err == nil {
		t.Errorf("a given port that is taken: no error")
	}
}
