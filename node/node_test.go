package node

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// A node that cannot bind one of its addresses fails with an error naming it and
// releases what it had bound already.
func TestNewReleasesWhatItBoundWhenAnAddressIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := DefaultConfig()
	cfg.Dev = true
	cfg.DataDir = t.TempDir()
	cfg.XDSAddr, cfg.HTTPAddr, cfg.XDSTLSAddr = "127.0.0.1:0", "127.0.0.1:0", taken.Addr().String()
	// The plaintext xDS and HTTP listeners are bound before the TLS one; fixed ports
	// show that they were closed again.
	for _, a := range []*string{&cfg.XDSAddr, &cfg.HTTPAddr} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*a = l.Addr().String()
		l.Close()
	}
	n, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		n.Close()
		t.Fatal("New succeeded on a taken --xds-tls-addr")
	}
	if !strings.Contains(err.Error(), "--xds-tls-addr") {
		t.Fatalf("error %q does not name --xds-tls-addr", err)
	}
	for _, a := range []string{cfg.XDSAddr, cfg.HTTPAddr} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s still bound after New failed: %v", a, err)
		}
		l.Close()
	}
}
