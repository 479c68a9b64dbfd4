package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/navarch/navarch/xds"
)

// fakeUpstream is a resolver on loopback, UDP and TCP, that answers every A query
// with 192.0.2.53 and reports the names it is asked for.
func fakeUpstream(t *testing.T) (addr string, queries chan string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); l.Close() })
	queries = make(chan string, 32)
	respond := func(q []byte) []byte {
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
		case queries <- question.Name.String():
		default:
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RCode: dnsmessage.RCodeSuccess})
		_ = b.StartQuestions()
		_ = b.Question(question)
		_ = b.StartAnswers()
		if question.Type == dnsmessage.TypeA {
			_ = b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: [4]byte{192, 0, 2, 53}})
		}
		out, _ := b.Finish()
		return out
	}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := respond(buf[:n]); out != nil {
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
			go func() {
				defer c.Close()
				for {
					q, err := readTCPMessage(c)
					if err != nil {
						return
					}
					if writeTCPMessage(c, respond(q)) != nil {
						return
					}
				}
			}()
		}
	}()
	return pc.LocalAddr().String(), queries
}

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
	upstream, queries := fakeUpstream(t)
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
