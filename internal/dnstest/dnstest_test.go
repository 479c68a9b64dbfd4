package dnstest

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"
)

// TestServer: Go's resolver, over UDP and over TCP, gets the A answer, and the
// server reports the name.
func TestServer(t *testing.T) {
	s := Start(t, "127.0.0.1:0")
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.Addr)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := r.LookupIP(ctx, "ip4", "anything.example.org.")
		cancel()
		if err != nil || len(got) != 1 || !got[0].Equal(net.IP(Address[:])) {
			t.Errorf("%s: %v %v", network, got, err)
		}
		if q := <-s.Queries; q != "anything.example.org." {
			t.Errorf("%s: reported %q", network, q)
		}
	}
	// An AAAA query has no records: NOERROR, no addresses.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.Addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := r.LookupIP(ctx, "ip6", "anything.example.org."); err == nil || slices.ContainsFunc(got, func(ip net.IP) bool { return ip.To4() == nil }) {
		t.Errorf("AAAA: %v %v", got, err)
	}
}
