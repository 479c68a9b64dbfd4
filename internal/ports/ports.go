// Package ports picks loopback ports for servers that are told their address before
// they bind it: a dev node's etcd, the nodes of `navarch dev cluster`, test peers.
//
// A port found free by binding port 0 and closing again comes from the kernel's
// ephemeral range, which is also where every outgoing connection on the host takes
// its local port; one of those can take it before the server binds it, and the
// server fails with "address already in use". Hold picks ports below that range
// instead, which only another explicit pick can take, and never hands the same port
// out twice in one process.
package ports

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// The ephemeral range is read from Linux's ip_local_port_range; elsewhere, or when
// it leaves too little below it, these apply.
const (
	lowest       = 10000 // below are well-known and registered services
	minCandidate = 1000  // fewer ports than this below the ephemeral range: use it anyway
	defaultLow   = 32768 // Linux's default ephemeral range starts here
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Hold finds a port that is free for TCP and UDP (gossip uses both) on every one of
// hosts (127.0.0.1 when none), binds it there, and returns it with a function that
// closes what it bound. Hold it while the rest of a layout is picked; release it just
// before the server that is to bind it starts.
func Hold(hosts ...string) (port int, release func(), err error) {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	lo, hi := candidates()
	for attempt := 0; attempt < 200; attempt++ {
		p := lo + rand.IntN(hi-lo)
		mu.Lock()
		taken := given[p]
		given[p] = true
		mu.Unlock()
		if taken {
			continue
		}
		if held, ok := bind(hosts, p); ok {
			return p, func() { closeAll(held) }, nil
		}
	}
	return 0, nil, fmt.Errorf("ports: no port in %d-%d is free on %s", lo, hi-1, strings.Join(hosts, ", "))
}

// HoldPort binds port for TCP and UDP on every one of hosts, as Hold does a port it
// picks, for a server that must take a given port (the one its peers use) on
// another address.
func HoldPort(port int, hosts ...string) (release func(), err error) {
	mu.Lock()
	given[port] = true
	mu.Unlock()
	held, ok := bind(hosts, port)
	if !ok {
		return nil, fmt.Errorf("ports: %d is not free on %s", port, strings.Join(hosts, ", "))
	}
	return func() { closeAll(held) }, nil
}

// Loopback returns 127.0.0.1:P for a port P that Hold found free, released again.
func Loopback() (string, error) {
	port, release, err := Hold()
	if err != nil {
		return "", err
	}
	release()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// candidates is the range [lo, hi) ports are picked from: below the ephemeral range.
func candidates() (lo, hi int) {
	ephemeral := defaultLow
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				ephemeral = n
			}
		}
	}
	if ephemeral-lowest >= minCandidate {
		return lowest, ephemeral
	}
	if ephemeral-1024 >= minCandidate {
		return 1024, ephemeral
	}
	return lowest, 65536 // an ephemeral range that leaves nothing below: share it
}

// bind binds TCP and UDP on every host at port, or nothing.
func bind(hosts []string, port int) ([]io.Closer, bool) {
	var held []io.Closer
	for _, h := range hosts {
		addr := net.JoinHostPort(h, strconv.Itoa(port))
		t, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(held)
			return nil, false
		}
		held = append(held, t)
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			closeAll(held)
			return nil, false
		}
		held = append(held, u)
	}
	return held, true
}

func closeAll(cs []io.Closer) {
	for _, c := range cs {
		c.Close()
	}
}

// ListenBoth binds addr for UDP and for TCP on the same port, as a DNS server
// serves both. Given port 0, it takes the port the kernel picks for UDP, and, when
// that port is taken for TCP (the kernel picks UDP ports regardless of TCP's; an
// outgoing connection may hold it), tries again with another.
func ListenBoth(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if port != "0" || attempt == 20 {
			return nil, nil, err
		}
	}
}
