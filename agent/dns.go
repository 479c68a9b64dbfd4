package agent

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/navarch/navarch/internal/ports"
	"github.com/navarch/navarch/xds"
)

// dnsTTL is the time to live of the answers the DNS proxy gives from its table:
// istio-agent's.
const dnsTTL = 30

// defaultDomain is the mesh's DNS suffix unless DNS.Domain says otherwise (the
// nodes' --domain default, istio-agent's DOMAIN_SUFFIX).
const defaultDomain = "cluster.local"

// DNS is the agent's DNS proxy, as istio-agent's (ISTIO_META_DNS_CAPTURE): it
// answers A and AAAA queries for the mesh's host names from the name table the node
// sends the registration stream (Registration.DNS), and passes every other query to
// the machine's resolvers, so that a VM resolves reviews.default.svc.cluster.local
// with no Kubernetes DNS and everything else as before. Point the VM's resolver (or
// an iptables redirect of port 53) at Addr.
//
// It answers as istio-agent's does, query for query (the e2e test
// TestIstioAgentGetsItsCertificateAndConfigFromNavarch holds it to that, beside
// pilot-agent): lower-case names in answers, NOERROR with no records for a type a
// name has none of, a name with the first search domain appended (where a resolver
// looks first) as a CNAME of the name, other query types of a mesh name passed
// upstream, address records in a random order, and an answer too long for the
// client's UDP cut to what fits, truncated.
type DNS struct {
	// Addr is where it listens, UDP and TCP (127.0.0.1:15053, as istio-agent).
	// On port 53, where the machine's resolver points at it, it passes queries
	// upstream until its first name table, rather than failing them.
	Addr string
	// Upstreams are the resolvers (host:port) asked for names not in the table, in
	// turn: the machine's (/etc/resolv.conf) unless given.
	Upstreams []string
	// Search is the resolver's search list (resolv.conf's search line): a mesh
	// name with the first domain appended is answered as a CNAME of the name.
	Search []string
	// Timeout bounds one upstream exchange.
	Timeout time.Duration
	// Domain is the mesh's DNS suffix, the nodes' --domain (cluster.local when
	// empty): the names of Kubernetes services under svc.<Domain> are also
	// answered in their short forms, as a pod's search path has them.
	Domain string

	table atomic.Pointer[dnsTable]
	log   *slog.Logger
	udp   net.PacketConn
	tcp   net.Listener
	wg    sync.WaitGroup
}

// dnsTable is a name table as the proxy answers from it. Names are lower case and
// absolute; a wildcard host is a name "*.example.com.".
type dnsTable struct {
	addrs  map[string][]netip.Addr // every name of the mesh, with its short forms
	cnames map[string]string       // a name + the first search domain: the name
}

// setTable makes nt, as the node sent it for a workload in namespace ns, the table
// the proxy answers from.
func (d *DNS) setTable(nt map[string]xds.NameInfo, ns string) {
	t := &dnsTable{addrs: map[string][]netip.Addr{}, cnames: map[string]string{}}
	search := ""
	if len(d.Search) > 0 {
		search = strings.ToLower(strings.TrimSuffix(d.Search[0], ".")) + "."
	}
	for host, ni := range nt {
		var addrs []netip.Addr
		for _, ip := range ni.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				addrs = append(addrs, a.Unmap())
			}
		}
		if len(addrs) == 0 {
			continue
		}
		names := dnsNames(strings.ToLower(host), ni, ns, cmp.Or(strings.ToLower(strings.Trim(d.Domain, ".")), defaultDomain))
		for _, name := range names {
			t.addrs[name] = addrs
		}
		if search == "" {
			continue
		}
		// A resolver tries a name in its search domains before the name itself
		// (every name, with a pod's ndots:5): the first one it tries is answered
		// at once, a CNAME of the name with its addresses, and the search ends
		// there rather than asking upstream for each domain.
		for _, name := range names {
			if expanded := name + search; !strings.HasSuffix(name, search) && !slices.Contains(names, expanded) {
				t.cnames[expanded] = name
			}
		}
	}
	d.table.Store(t)
}

// dnsNames are the names the proxy answers for a host of the table, for a workload
// in namespace ns: the host, and for a Kubernetes service (under svc.<domain>) its
// names in a pod's search path (name.namespace, name.namespace.svc, and name in its
// own namespace), as istio-agent's for a workload of domain
// <namespace>.svc.<domain>.
func dnsNames(host string, ni xds.NameInfo, ns, domain string) []string {
	names := []string{host + "."}
	if ni.Registry != "Kubernetes" || !strings.HasSuffix(host, ".svc."+domain) {
		return names
	}
	short := strings.ToLower(ni.Shortname + "." + ni.Namespace)
	names = append(names, short+".", short+".svc.")
	if ni.Namespace == ns {
		names = append(names, strings.ToLower(ni.Shortname)+".")
	}
	return names
}

// dnsRecord is one record of an answer from the table: an address, or (cname set)
// an alias.
type dnsRecord struct {
	name  string
	addr  netip.Addr
	cname string
}

// lookup answers a query of type qtype for name (absolute, lower case) from the
// table: its records, and whether the table has the name (a name of its own, or
// under a wildcard host, the longest first). A name the table has but not of qtype
// has no records; a query of a type other than A and AAAA is not the table's to
// answer.
func (t *dnsTable) lookup(qtype dnsmessage.Type, name string) ([]dnsRecord, bool) {
	question, host := name, name
	_, found := t.addrs[name]
	if _, ok := t.cnames[name]; ok {
		found = true
	}
	wildcard := false
	for rest := name; !found; {
		_, after, ok := strings.Cut(rest, ".")
		if !ok || after == "" {
			return nil, false
		}
		host = "*." + after
		_, found = t.addrs[host]
		if _, ok := t.cnames[host]; ok {
			found = true
		}
		wildcard, rest = found, after
	}
	if qtype != dnsmessage.TypeA && qtype != dnsmessage.TypeAAAA {
		return nil, false
	}
	var out []dnsRecord
	owner := question // a wildcard's addresses answer for the name asked
	if target, ok := t.cnames[host]; ok {
		// A chained answer, the alias then the addresses of its target, for
		// clients that do not ask again for the target.
		out = append(out, dnsRecord{name: question, cname: target})
		host, owner = target, target
	} else if !wildcard {
		owner = host
	}
	var addrs []netip.Addr
	for _, a := range t.addrs[host] {
		if a.Is4() == (qtype == dnsmessage.TypeA) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, true // no alias either, as istio-agent
	}
	// In a random order, as Kubernetes DNS answers, so that clients that take
	// the first address spread over a headless service's endpoints.
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	for _, a := range addrs {
		out = append(out, dnsRecord{name: owner, addr: a})
	}
	return out, true
}

// Start listens on Addr, UDP and TCP, and answers queries until Close. Until the
// first name table arrives every query fails (SERVFAIL, which clients retry), as
// istio-agent's do: passed upstream, a mesh name would get an NXDOMAIN that
// clients keep for a while. On port 53, where the machine's own resolver points at
// the proxy, queries are passed upstream instead: the agent itself may have to
// resolve a node's name to get its first table.
func (d *DNS) Start(log *slog.Logger) error {
	d.log = log
	if d.Timeout <= 0 {
		d.Timeout = 2 * time.Second
	}
	udp, tcp, err := ports.ListenBoth(d.Addr)
	if err != nil {
		return fmt.Errorf("agent: DNS proxy: %w", err)
	}
	d.udp, d.tcp = udp, tcp
	// The machine's resolver may point at the proxy itself (port 53, the
	// machine's resolv.conf): asking itself would loop.
	own := udp.LocalAddr().String()
	d.Upstreams = slices.DeleteFunc(slices.Clone(d.Upstreams), func(u string) bool { return u == own })
	if len(d.Upstreams) == 0 {
		d.log.Warn("DNS proxy without upstream resolvers: names the mesh does not have fail (give --dns-upstream or --dns-resolv-conf)")
	}
	d.log.Info("DNS proxy listening", "addr", udp.LocalAddr().String(), "upstreams", d.Upstreams, "search", d.Search)
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
	if errors.Is(err, dnsmessage.ErrSectionDone) {
		return reply(h, nil, dnsmessage.RCodeServerFailure, nil, 0)
	} else if err != nil {
		return reply(h, nil, dnsmessage.RCodeFormatError, nil, 0)
	}
	t := d.table.Load()
	if t == nil && !d.beforeTable() {
		return reply(h, &question, dnsmessage.RCodeServerFailure, nil, 0)
	}
	if t != nil {
		if records, ok := t.lookup(question.Type, strings.ToLower(question.Name.String())); ok {
			// Found: the records of the type asked for, possibly none (NOERROR,
			// not NXDOMAIN: the name exists; clients asking A and AAAA at once
			// must not take the empty one for its absence).
			limit := 65535
			if proto == "udp" {
				limit = udpSize(&p)
			}
			return reply(h, &question, dnsmessage.RCodeSuccess, records, limit)
		}
	}
	resp, err := d.forward(q, proto)
	if err != nil {
		d.log.Debug("DNS query failed upstream", "name", question.Name.String(), "err", err)
		return reply(h, &question, dnsmessage.RCodeServerFailure, nil, 0)
	}
	return resp
}

// beforeTable reports whether queries go upstream before the first name table:
// when the proxy listens on port 53.
func (d *DNS) beforeTable() bool {
	_, port, _ := net.SplitHostPort(d.Addr)
	return port == "53"
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

// reply builds a response of code rcode to a query of header h and question q (a
// reply as istio-agent's: the query's opcode, recursion desired and checking
// disabled bits, authoritative when it answers from the table). It holds records,
// as many as fit in limit bytes, truncated (TC) if not all do.
func reply(h dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, records []dnsRecord, limit int) []byte {
	out := buildReply(h, q, rcode, records, false)
	if len(out) <= limit || len(records) == 0 {
		return out
	}
	// The most records that fit: records are all of a size or two, so the
	// search is over their number.
	lo, hi := 0, len(records) // records[:lo] fit, records[:hi] do not
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; len(buildReply(h, q, rcode, records[:mid], true)) <= limit {
			lo = mid
		} else {
			hi = mid
		}
	}
	return buildReply(h, q, rcode, records[:lo], true)
}

func buildReply(h dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, records []dnsRecord, truncated bool) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode,
		Authoritative: q != nil && rcode == dnsmessage.RCodeSuccess, RecursionDesired: h.RecursionDesired,
		CheckingDisabled: h.CheckingDisabled, RCode: rcode, Truncated: truncated})
	b.EnableCompression()
	_ = b.StartQuestions()
	if q != nil {
		_ = b.Question(*q)
	}
	_ = b.StartAnswers()
	for _, r := range records {
		name, err := dnsmessage.NewName(r.name)
		if err != nil {
			continue
		}
		rh := dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
		switch {
		case r.cname != "":
			if target, err := dnsmessage.NewName(r.cname); err == nil {
				_ = b.CNAMEResource(rh, dnsmessage.CNAMEResource{CNAME: target})
			}
		case r.addr.Is4():
			_ = b.AResource(rh, dnsmessage.AResource{A: r.addr.As4()})
		default:
			_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: r.addr.As16()})
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
	buf := udpBuffers.Get().(*[]byte)
	defer udpBuffers.Put(buf)
	n, err := c.Read(*buf)
	if err != nil {
		return nil, err
	}
	return bytes.Clone((*buf)[:n]), nil
}

// udpBuffers hold UDP responses from upstream as they are read: as large as a
// datagram can be, and used for a moment only.
var udpBuffers = sync.Pool{New: func() any { b := make([]byte, 65535); return &b }}

// ResolvConf is what the DNS proxy takes of a resolv.conf file: the nameservers
// (host:53) and the search list (the last search or domain line's, as resolvers
// read it).
func ResolvConf(path string) (servers, search []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(f[1]); err == nil {
				servers = append(servers, net.JoinHostPort(a.String(), "53"))
			}
		case "search", "domain":
			search = f[1:]
		}
	}
	return servers, search, nil
}
