package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/navarch/navarch/xds"
)

// dnsTTL is the time to live of the answers the DNS proxy gives from its table:
// istio-agent's.
const dnsTTL = 30

// DNS is the agent's DNS proxy, as istio-agent's (ISTIO_META_DNS_CAPTURE): it
// answers A and AAAA queries for the mesh's host names from the name table the node
// sends the registration stream (Registration.DNS), and passes every other query to
// the machine's resolvers, so that a VM resolves reviews.default.svc.cluster.local
// with no Kubernetes DNS and everything else as before. Point the VM's resolver (or
// an iptables redirect of port 53) at Addr.
type DNS struct {
	// Addr is where it listens, UDP and TCP (127.0.0.1:15053, as istio-agent).
	Addr string
	// Upstreams are the resolvers (host:port) asked for names not in the table, in
	// turn: the machine's (/etc/resolv.conf) unless given.
	Upstreams []string
	// Timeout bounds one upstream exchange.
	Timeout time.Duration

	table atomic.Pointer[dnsTable]
	log   *slog.Logger
	udp   net.PacketConn
	tcp   net.Listener
	wg    sync.WaitGroup
}

// dnsTable is a name table as the proxy answers from it: every name (lower case,
// absolute, with its short forms for Kubernetes services) with its addresses.
type dnsTable struct {
	names     map[string][]netip.Addr
	wildcards map[string][]netip.Addr // "*.example.com." hosts, by "example.com."
}

// setTable makes nt, as the node sent it for a workload in namespace ns, the table
// the proxy answers from.
func (d *DNS) setTable(nt map[string]xds.NameInfo, ns string) {
	t := &dnsTable{names: map[string][]netip.Addr{}, wildcards: map[string][]netip.Addr{}}
	for host, ni := range nt {
		var addrs []netip.Addr
		for _, ip := range ni.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				addrs = append(addrs, a.Unmap())
			}
		}
		host = strings.ToLower(host)
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			t.wildcards[rest+"."] = addrs
			continue
		}
		t.names[host+"."] = addrs
		// A Kubernetes service's names in a pod's search path, as istio-agent
		// makes them: name.namespace, name.namespace.svc, and name in its own
		// namespace.
		if ni.Shortname != "" && strings.HasPrefix(host, ni.Shortname+"."+ni.Namespace+".svc.") {
			t.names[ni.Shortname+"."+ni.Namespace+"."] = addrs
			t.names[ni.Shortname+"."+ni.Namespace+".svc."] = addrs
			if ni.Namespace == ns {
				t.names[ni.Shortname+"."] = addrs
			}
		}
	}
	d.table.Store(t)
}

// lookup returns the addresses of name (absolute, lower case) and whether the table
// has it: a name of its own, else the longest wildcard host it falls under.
func (t *dnsTable) lookup(name string) ([]netip.Addr, bool) {
	if addrs, ok := t.names[name]; ok {
		return addrs, true
	}
	for rest := name; ; {
		_, after, ok := strings.Cut(rest, ".")
		if !ok || after == "" {
			return nil, false
		}
		if addrs, ok := t.wildcards[after]; ok {
			return addrs, true
		}
		rest = after
	}
}

// Start listens on Addr, UDP and TCP, and answers queries until Close. Until the
// first name table arrives every query fails (SERVFAIL, which clients retry), as
// istio-agent's do: passed upstream, a mesh name would get an NXDOMAIN that
// clients keep for a while.
func (d *DNS) Start(log *slog.Logger) error {
	d.log = log
	if d.Timeout <= 0 {
		d.Timeout = 2 * time.Second
	}
	udp, err := net.ListenPacket("udp", d.Addr)
	if err != nil {
		return fmt.Errorf("agent: DNS proxy: %w", err)
	}
	tcp, err := net.Listen("tcp", udp.LocalAddr().String())
	if err != nil {
		udp.Close()
		return fmt.Errorf("agent: DNS proxy: %w", err)
	}
	d.udp, d.tcp = udp, tcp
	d.log.Info("DNS proxy listening", "addr", udp.LocalAddr().String(), "upstreams", d.Upstreams)
	d.wg.Add(2)
	go func() { defer d.wg.Done(); d.serveUDP(udp) }()
	go func() { defer d.wg.Done(); d.serveTCP(tcp) }()
	return nil
}

// LocalAddr is the address the proxy listens on, once started.
func (d *DNS) LocalAddr() string { return d.udp.LocalAddr().String() }

// Close stops listening.
func (d *DNS) Close() {
	d.udp.Close()
	d.tcp.Close()
	d.wg.Wait()
}

func (d *DNS) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := append([]byte(nil), buf[:n]...)
		go func() {
			if resp := d.answer(q, "udp"); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}()
	}
}

func (d *DNS) serveTCP(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				q, err := readTCPMessage(c)
				if err != nil {
					return
				}
				resp := d.answer(q, "tcp")
				if resp == nil || writeTCPMessage(c, resp) != nil {
					return
				}
			}
		}()
	}
}

// readTCPMessage reads one length-prefixed DNS message.
func readTCPMessage(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(n[:]))
	_, err := io.ReadFull(r, msg)
	return msg, err
}

func writeTCPMessage(w io.Writer, msg []byte) error {
	_, err := w.Write(binary.BigEndian.AppendUint16(nil, uint16(len(msg))))
	if err == nil {
		_, err = w.Write(msg)
	}
	return err
}

// answer returns the response to query q (received over network proto): from the
// table when it has the name, else the upstreams'; nil to drop a query that cannot
// be parsed.
func (d *DNS) answer(q []byte, proto string) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	question, err := p.Question()
	if err != nil {
		return reply(h, nil, dnsmessage.RCodeFormatError, nil)
	}
	t := d.table.Load()
	if t == nil {
		return reply(h, &question, dnsmessage.RCodeServerFailure, nil)
	}
	if addrs, ok := t.lookup(strings.ToLower(question.Name.String())); ok {
		// Found: an answer of the addresses of the type asked for, possibly none
		// (NOERROR, not NXDOMAIN: the name exists; clients asking A and AAAA at
		// once must not take the empty one for its absence).
		out := reply(h, &question, dnsmessage.RCodeSuccess, addrs)
		if proto == "udp" && len(out) > udpSize(&p) {
			// Too long for the client's UDP (a headless service of many
			// endpoints): truncated, so that it asks again over TCP.
			h.Truncated = true
			out = reply(h, &question, dnsmessage.RCodeSuccess, nil)
		}
		return out
	}
	resp, err := d.forward(q, proto)
	if err != nil {
		d.log.Debug("DNS query failed upstream", "name", question.Name.String(), "err", err)
		return reply(h, &question, dnsmessage.RCodeServerFailure, nil)
	}
	return resp
}

// udpSize is the largest UDP response the client of a query takes: what its EDNS
// record says, else DNS's 512 bytes. p is past the query's question.
func udpSize(p *dnsmessage.Parser) int {
	if p.SkipAllQuestions() != nil || p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return 512
	}
	for {
		rh, err := p.AdditionalHeader()
		if err != nil {
			return 512
		}
		if rh.Type == dnsmessage.TypeOPT {
			return max(512, int(rh.Class)) // an OPT record's class is its UDP size
		}
		if p.SkipAdditional() != nil {
			return 512
		}
	}
}

// reply builds a response to a query of header h and question q: the addresses of
// q's type among addrs, with code rcode.
func reply(h dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, addrs []netip.Addr) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode,
		Authoritative: q != nil && rcode == dnsmessage.RCodeSuccess, RecursionDesired: h.RecursionDesired,
		RecursionAvailable: true, RCode: rcode, Truncated: h.Truncated})
	b.EnableCompression()
	if q == nil {
		_ = b.StartQuestions()
		out, _ := b.Finish()
		return out
	}
	_ = b.StartQuestions()
	_ = b.Question(*q)
	_ = b.StartAnswers()
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			_ = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, _ := b.Finish()
	return out
}

// forward asks the upstream resolvers for q, over proto, in turn, and returns the
// first response.
func (d *DNS) forward(q []byte, proto string) ([]byte, error) {
	if len(d.Upstreams) == 0 {
		return nil, errors.New("no upstream resolvers")
	}
	var errs []error
	for _, up := range d.Upstreams {
		resp, err := exchange(q, proto, up, d.Timeout)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// exchange sends q to server over proto and reads its response.
func exchange(q []byte, proto, server string, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout(proto, server, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if proto == "tcp" {
		if err := writeTCPMessage(c, q); err != nil {
			return nil, err
		}
		return readTCPMessage(c)
	}
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// SystemResolvers returns the nameservers of a resolv.conf file (host:53).
func SystemResolvers(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil {
				out = append(out, net.JoinHostPort(a.String(), "53"))
			}
		}
	}
	return out, nil
}
