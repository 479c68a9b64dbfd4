package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/navarch/navarch/internal/dnstest"
	"github.com/navarch/navarch/xds"
)

// resolverAt is a resolver that asks the DNS server at addr only, over the network
// each lookup asks for.
func resolverAt(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, network, addr)
	}}
}

// TestDNSProxy: before its first name table the agent's DNS proxy fails every
// query; then it answers the names of its table (a
// ServiceEntry's, a Kubernetes service's with the short names of a pod's search
// path, the names under a wildcard host) over UDP and TCP, A and AAAA, and passes
// any other name to its upstream resolver.
func TestDNSProxy(t *testing.T) {
	up := dnstest.Start(t, "127.0.0.1:0")
	upstream, queries := up.Addr, up.Queries
	d := &DNS{Addr: "127.0.0.1:0", Upstreams: []string{upstream}}
	if err := d.Start(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Before the first table, every query fails, none goes upstream.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if got, err := resolverAt(d.LocalAddr()).LookupHost(ctx, "elsewhere.example.org."); err == nil {
		t.Errorf("before the first name table: resolved %v", got)
	}
	cancel()
	d.setTable(map[string]xds.NameInfo{
		"db.example.com":                    {IPs: []string{"240.240.0.7", "2001:2::7"}, Registry: "External"},
		"reviews.default.svc.cluster.local": {IPs: []string{"10.96.0.10"}, Registry: "Kubernetes", Shortname: "reviews", Namespace: "default"},
		"ratings.shop.svc.cluster.local":    {IPs: []string{"10.96.0.11"}, Registry: "Kubernetes", Shortname: "ratings", Namespace: "shop"},
		"*.wild.example.com":                {IPs: []string{"240.240.0.9"}, Registry: "External"},
	}, "default")

	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, d.LocalAddr())
		}}
		for _, c := range []struct {
			name string
			want []string
		}{
			{"db.example.com.", []string{"2001:2::7", "240.240.0.7"}},
			{"DB.Example.COM.", []string{"2001:2::7", "240.240.0.7"}},
			{"reviews.default.svc.cluster.local.", []string{"10.96.0.10"}},
			{"reviews.", []string{"10.96.0.10"}},
			{"reviews.default.", []string{"10.96.0.10"}},
			{"reviews.default.svc.", []string{"10.96.0.10"}},
			{"ratings.shop.", []string{"10.96.0.11"}},
			{"a.b.wild.example.com.", []string{"240.240.0.9"}},
			{"elsewhere.example.org.", []string{"192.0.2.53"}},
			// Another namespace's service: this workload's search path does not
			// make the short name, which goes upstream.
			{"ratings.", []string{"192.0.2.53"}},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			got, err := r.LookupHost(ctx, c.name)
			cancel()
			slices.Sort(got)
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("%s %s: %v %v, want %v", network, c.name, got, err, c.want)
			}
		}
	}
	// A name of many addresses, too many for UDP's 512 bytes: the UDP answer is
	// truncated, and the resolver asks again over TCP for all of them.
	big := xds.NameInfo{Registry: "External"}
	for i := range 100 {
		big.IPs = append(big.IPs, fmt.Sprintf("10.0.%d.%d", i/200, 1+i%200))
	}
	d.setTable(map[string]xds.NameInfo{"big.example.com": big}, "default")
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("big.example.com."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	var h dnsmessage.Header
	var p dnsmessage.Parser
	if h, _ = p.Start(d.answer(q, "udp")); !h.Truncated {
		t.Error("an answer of 100 addresses over UDP is not truncated")
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := resolverAt(d.LocalAddr()).LookupHost(ctx, "big.example.com."); err != nil || len(got) != 100 {
		t.Errorf("big.example.com: %d addresses %v, want 100", len(got), err)
	}

	// Only the names the table does not have went upstream.
	for {
		select {
		case q := <-queries:
			if q != "elsewhere.example.org." && q != "ratings." {
				t.Errorf("the upstream resolver was asked for %s", q)
			}
		default:
			return
		}
	}
}

// query sends d a query for name of type qt, as received over proto, and returns
// the response's header and its answers, each as "name type data" in the order
// given.
func query(t *testing.T, d *DNS, name string, qt dnsmessage.Type, proto string) (dnsmessage.Header, []string) {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 42, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: qt, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	var msg dnsmessage.Message
	if err := msg.Unpack(d.answer(q, proto)); err != nil {
		t.Fatalf("%s %v: %v", name, qt, err)
	}
	if msg.ID != 42 || len(msg.Questions) != 1 || msg.Questions[0].Name.String() != name {
		t.Errorf("%s %v: response to another query: %+v", name, qt, msg)
	}
	var out []string
	for _, a := range msg.Answers {
		var data string
		switch r := a.Body.(type) {
		case *dnsmessage.AResource:
			data = netip.AddrFrom4(r.A).String()
		case *dnsmessage.AAAAResource:
			data = netip.AddrFrom16(r.AAAA).String()
		case *dnsmessage.CNAMEResource:
			data = r.CNAME.String()
		}
		if msg.Authoritative && a.Header.TTL != dnsTTL {
			t.Errorf("%s: TTL %d", name, a.Header.TTL)
		}
		out = append(out, fmt.Sprintf("%s %v %s", a.Header.Name, a.Header.Type, data))
	}
	return msg.Header, out
}

// TestDNSProxyAnswersAsIstioAgent: the proxy's answers record by record, as
// istio-agent gives them: names in lower case; a name in the first search domain
// a CNAME of the mesh name, chained with its addresses; NOERROR and no records for
// a type the name has none of; other types of a mesh name upstream; an answer too
// long for UDP cut to the records that fit.
func TestDNSProxyAnswersAsIstioAgent(t *testing.T) {
	up := dnstest.Start(t, "127.0.0.1:0")
	upstream, queries := up.Addr, up.Queries
	d := &DNS{Addr: "127.0.0.1:0", Upstreams: []string{upstream}, Timeout: 2 * time.Second, log: slog.New(slog.DiscardHandler),
		Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}}
	d.setTable(map[string]xds.NameInfo{
		"db.example.com":                 {IPs: []string{"240.240.0.7", "2001:2::7"}, Registry: "External"},
		"ratings.shop.svc.cluster.local": {IPs: []string{"10.96.0.11"}, Registry: "Kubernetes", Shortname: "ratings", Namespace: "shop"},
		"*.wild.example.com":             {IPs: []string{"240.240.0.9"}, Registry: "External"},
	}, "shop")
	for _, c := range []struct {
		name string
		qt   dnsmessage.Type
		want []string
	}{
		{"DB.Example.COM.", dnsmessage.TypeA, []string{"db.example.com. TypeA 240.240.0.7"}},
		{"db.example.com.", dnsmessage.TypeAAAA, []string{"db.example.com. TypeAAAA 2001:2::7"}},
		{"db.example.com.shop.svc.cluster.local.", dnsmessage.TypeA, []string{
			"db.example.com.shop.svc.cluster.local. TypeCNAME db.example.com.", "db.example.com. TypeA 240.240.0.7"}},
		// Only the first search domain's: a resolver that got that far asks the
		// others upstream.
		{"ratings.shop.svc.cluster.local.", dnsmessage.TypeA, []string{"ratings.shop.svc.cluster.local. TypeA 10.96.0.11"}},
		{"ratings.", dnsmessage.TypeA, []string{"ratings. TypeA 10.96.0.11"}},
		{"ratings.shop.shop.svc.cluster.local.", dnsmessage.TypeA, []string{
			"ratings.shop.shop.svc.cluster.local. TypeCNAME ratings.shop.", "ratings.shop. TypeA 10.96.0.11"}},
		{"ratings.shop.", dnsmessage.TypeAAAA, nil},
		// Nor an alias of a name without addresses of the type.
		{"ratings.shop.shop.svc.cluster.local.", dnsmessage.TypeAAAA, nil},
		{"a.wild.example.com.", dnsmessage.TypeA, []string{"a.wild.example.com. TypeA 240.240.0.9"}},
		{"a.wild.example.com.shop.svc.cluster.local.", dnsmessage.TypeA, []string{
			"a.wild.example.com.shop.svc.cluster.local. TypeCNAME *.wild.example.com.", "*.wild.example.com. TypeA 240.240.0.9"}},
	} {
		h, got := query(t, d, c.name, c.qt, "udp")
		if h.RCode != dnsmessage.RCodeSuccess || !h.Authoritative || h.RecursionAvailable || !h.RecursionDesired || h.Truncated {
			t.Errorf("%s %v: header %+v", c.name, c.qt, h)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s %v:\n got %q\nwant %q", c.name, c.qt, got, c.want)
		}
	}
	select {
	case q := <-queries:
		t.Errorf("the upstream resolver was asked for %s", q)
	default:
	}
	// Other types of a mesh name are the upstream's to answer, as names outside
	// the mesh are (the fake one answers them without records, not
	// authoritatively).
	for _, name := range []string{"db.example.com.", "elsewhere.example.org.", "db.example.com.svc.cluster.local."} {
		qt := dnsmessage.TypeMX
		if name != "db.example.com." {
			qt = dnsmessage.TypeA
		}
		if h, _ := query(t, d, name, qt, "udp"); h.Authoritative || h.RCode != dnsmessage.RCodeSuccess {
			t.Errorf("%s %v answered from the table: %+v", name, qt, h)
		}
		if q := <-queries; q != name {
			t.Errorf("asked upstream for %s, want %s", q, name)
		}
	}

	// An answer too long for UDP holds the records that fit, truncated; over TCP
	// all of them, in a random order.
	big := xds.NameInfo{Registry: "External"}
	for i := range 100 {
		big.IPs = append(big.IPs, fmt.Sprintf("10.0.0.%d", 1+i))
	}
	d.setTable(map[string]xds.NameInfo{"big.example.com": big}, "shop")
	h, got := query(t, d, "big.example.com.", dnsmessage.TypeA, "udp")
	// 12 bytes of header, 21 of question, 16 a compressed A record.
	if want := (512 - 12 - 21) / 16; !h.Truncated || len(got) != want {
		t.Errorf("over UDP: truncated %v, %d records, want %d", h.Truncated, len(got), want)
	}
	h, first := query(t, d, "big.example.com.", dnsmessage.TypeA, "tcp")
	if h.Truncated || len(first) != 100 {
		t.Errorf("over TCP: truncated %v, %d records", h.Truncated, len(first))
	}
	for range 10 {
		if _, got := query(t, d, "big.example.com.", dnsmessage.TypeA, "tcp"); !slices.Equal(got, first) {
			return
		}
	}
	t.Errorf("11 answers of 100 addresses in the same order")
}

// TestDNSProxyOnPort53PassesQueriesUpBeforeItsTable: a proxy on port 53, where the
// machine's resolver points, resolves through its upstreams until its first name
// table, rather than fail every name; on another port it fails them.
func TestDNSProxyOnPort53PassesQueriesUpBeforeItsTable(t *testing.T) {
	up := dnstest.Start(t, "127.0.0.1:0")
	upstream, queries := up.Addr, up.Queries
	for _, c := range []struct {
		addr string
		want dnsmessage.RCode
	}{{"127.0.0.1:53", dnsmessage.RCodeSuccess}, {"127.0.0.1:15053", dnsmessage.RCodeServerFailure}} {
		d := &DNS{Addr: c.addr, Upstreams: []string{upstream}, Timeout: 2 * time.Second, log: slog.New(slog.DiscardHandler)}
		h, got := query(t, d, "elsewhere.example.org.", dnsmessage.TypeA, "udp")
		if h.RCode != c.want {
			t.Errorf("on %s before the first table: %v %q, want %v", c.addr, h.RCode, got, c.want)
		}
	}
	if q := <-queries; q != "elsewhere.example.org." {
		t.Errorf("asked upstream for %s", q)
	}
}

// TestResolvConf: the nameservers and the last search (or domain) line.
func TestResolvConf(t *testing.T) {
	path := t.TempDir() + "/resolv.conf"
	conf := "# comment\nnameserver 10.0.0.2\ndomain corp.example\nsearch a.example b.example\nnameserver fe80::1\nnameserver bogus\noptions ndots:5\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	servers, search, err := ResolvConf(path)
	if err != nil || !slices.Equal(servers, []string{"10.0.0.2:53", "[fe80::1]:53"}) || !slices.Equal(search, []string{"a.example", "b.example"}) {
		t.Errorf("ResolvConf: %q %q %v", servers, search, err)
	}
}

// BenchmarkDNSProxyAnswer: one A query answered from a table of 1,000 services
// (ServiceEntries and Kubernetes services, with a search list), as a name in the
// table, as the alias in the first search domain, and as a name passed upstream
// (the upstream exchange on loopback included).
func BenchmarkDNSProxyAnswer(b *testing.B) {
	up := dnstest.Start(b, "127.0.0.1:0")
	d := &DNS{Addr: "127.0.0.1:0", Upstreams: []string{up.Addr}, Timeout: 2 * time.Second, log: slog.New(slog.DiscardHandler),
		Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}}
	nt := map[string]xds.NameInfo{}
	for i := range 500 {
		nt[fmt.Sprintf("svc-%d.example.com", i)] = xds.NameInfo{IPs: []string{fmt.Sprintf("240.240.%d.%d", i/250, 1+i%250)}, Registry: "External"}
		nt[fmt.Sprintf("k8s-%d.shop.svc.cluster.local", i)] = xds.NameInfo{IPs: []string{fmt.Sprintf("10.96.%d.%d", i/250, 1+i%250)},
			Registry: "Kubernetes", Shortname: fmt.Sprintf("k8s-%d", i), Namespace: "shop"}
	}
	d.setTable(nt, "shop")
	for _, name := range []string{"svc-7.example.com.", "svc-7.example.com.shop.svc.cluster.local.", "elsewhere.example.org."} {
		b.Run(strings.TrimSuffix(name, "."), func(b *testing.B) {
			bd := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, RecursionDesired: true})
			_ = bd.StartQuestions()
			_ = bd.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
			q, _ := bd.Finish()
			b.ReportAllocs()
			for b.Loop() {
				if d.answer(q, "udp") == nil {
					b.Fatal("no answer")
				}
				select {
				case <-up.Queries:
				default:
				}
			}
		})
	}
}

// Under another mesh domain (the nodes' --domain), a Kubernetes service's short
// names come from svc.<domain>, and names under cluster.local get none.
func TestDNSNamesUnderTheMeshDomain(t *testing.T) {
	svc := xds.NameInfo{Registry: "Kubernetes", Shortname: "reviews", Namespace: "default"}
	for _, c := range []struct {
		host, domain string
		want         []string
	}{
		{"reviews.default.svc.cluster.local", "cluster.local", []string{"reviews.default.svc.cluster.local.", "reviews.default.", "reviews.default.svc.", "reviews."}},
		{"reviews.default.svc.corp.internal", "corp.internal", []string{"reviews.default.svc.corp.internal.", "reviews.default.", "reviews.default.svc.", "reviews."}},
		{"reviews.default.svc.cluster.local", "corp.internal", []string{"reviews.default.svc.cluster.local."}},
	} {
		if got := dnsNames(c.host, svc, "default", c.domain); !slices.Equal(got, c.want) {
			t.Errorf("%s under %s: %v, want %v", c.host, c.domain, got, c.want)
		}
	}
	d := &DNS{Domain: "Corp.Internal."}
	d.setTable(map[string]xds.NameInfo{"reviews.default.svc.corp.internal": {IPs: []string{"10.96.0.10"}, Registry: "Kubernetes", Shortname: "reviews", Namespace: "default"}}, "default")
	if got := d.table.Load().addrs["reviews."]; len(got) != 1 {
		t.Errorf("the short name under the DNS proxy's domain: %v", got)
	}
}
