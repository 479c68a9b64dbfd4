package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// The xDS name: every node answers DNS queries for one name (XDSName, e.g.
// "xds.navarch.local") with the IPs of every live node's xDS listener. A proxyless
// gRPC client whose bootstrap's server_uri is dns://<node>/<name>:<port> then holds
// every node's address in one channel and moves to another node when its node dies;
// grpc-go does not fail over between separate xds_servers once it has cached its
// configuration (gRFC A71 falls back only for resources it has never received). All
// nodes must serve xDS on the same port for this (they do in production: 15010).

// dnsTTL is short: a node that died should leave the answers quickly.
const dnsTTL = 5

// serveDNS answers queries on conn until it is closed.
func (n *Node) serveDNS(ctx context.Context, conn net.PacketConn) error {
	buf := make([]byte, 1500)
	for {
		k, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		resp, err := n.answerDNS(buf[:k])
		if err != nil {
			continue // not a DNS query we can parse: drop it
		}
		conn.WriteTo(resp, from)
	}
}

// answerDNS answers one query: A and AAAA records of live nodes for the xDS name,
// an empty answer for other types of that name, NXDOMAIN for any other name.
func (n *Node) answerDNS(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RecursionDesired: hdr.RecursionDesired})
	b.EnableCompression()
	name := strings.ToLower(q.Name.String())
	if name != strings.ToLower(dnsName(n.cfg.XDSName)) {
		b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, RCode: dnsmessage.RCodeNameError, RecursionDesired: hdr.RecursionDesired})
	}
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if name == strings.ToLower(dnsName(n.cfg.XDSName)) {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
		ips := n.liveXDSIPs()
		// A random order spreads clients that take the first address over the nodes.
		rand.Shuffle(len(ips), func(i, j int) { ips[i], ips[j] = ips[j], ips[i] })
		for _, ip := range ips {
			switch v4 := ip.To4(); {
			case q.Type == dnsmessage.TypeA && v4 != nil:
				var a dnsmessage.AResource
				copy(a.A[:], v4)
				b.AResource(rh, a)
			case q.Type == dnsmessage.TypeAAAA && v4 == nil:
				var a dnsmessage.AAAAResource
				copy(a.AAAA[:], ip.To16())
				b.AAAAResource(rh, a)
			}
		}
	}
	return b.Finish()
}

func dnsName(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// liveXDSIPs returns the IP of every live node's xDS address.
func (n *Node) liveXDSIPs() []net.IP {
	seen := map[string]bool{}
	var out []net.IP
	add := func(addr string) {
		h, _, err := net.SplitHostPort(addr)
		ip := net.ParseIP(h)
		if err != nil || ip == nil || seen[ip.String()] {
			return
		}
		seen[ip.String()] = true
		out = append(out, ip)
	}
	add(n.advertised(n.XDSAddr()))
	if n.gossip != nil {
		for _, p := range n.gossip.Peers() {
			if p.Alive && p.Meta.State == stateRunning {
				add(p.Meta.XDS)
			}
		}
	}
	return out
}
