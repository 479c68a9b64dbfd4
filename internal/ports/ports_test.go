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
