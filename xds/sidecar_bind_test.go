package xds

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	originalsrcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_src/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestSidecarBindings: an egress listener with captureMode NONE gets a listener
// that binds its port, on its bind address or 127.0.0.1; one with only a bind
// address moves its port's listeners there, still handed connections by the
// virtual outbound listener; other ports stay as they were; an HTTP egress listener
// on a unix domain socket is a listener on the socket, routed by the socket's route
// configuration, as istiod builds it. An ingress listener with captureMode NONE gets a
// listener of its own, bound on its bind address or the wildcard, with the port's
// chains, unless an outbound listener has its address and port (reported); other
// ingress ports stay chains of the virtual inbound listener.
func TestSidecarBindings(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "vm-sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, string(data))
	p := grpcProxy("vms", map[string]string{"app": "vm"})
	p.Generator = ""
	sets, err := sidecarProfile().build(newContext(snap, p, "cluster.local", "istio-system"))
	if err == nil || strings.Contains(err.Error(), "unix domain socket") ||
		!strings.Contains(err.Error(), "listener 0.0.0.0_8080 (captureMode NONE) has the address and port of an outbound listener") {
		t.Errorf("build error %v, want the taken ingress port reported, and only that", err)
	}
	want := map[string]struct {
		address    string
		bindToPort bool
	}{
		"127.0.0.1_9080":                    {"127.0.0.1:9080", true},           // captureMode NONE: 127.0.0.1
		"127.0.0.2_3306":                    {"127.0.0.2:3306", true},           // captureMode NONE and a bind
		"10.0.0.9_6379":                     {"10.0.0.9:6379", false},           // a bind alone: still redirected
		"0.0.0.0_7000":                      {"0.0.0.0:7000", false},            // as without a Sidecar
		"unix:///var/run/app/egress.sock_0": {"/var/run/app/egress.sock", true}, // HTTP on a unix socket
		"127.0.0.1_15080":                   {"127.0.0.1:15080", true},          // the HTTP proxy, captureMode NONE
		"0.0.0.0_8080":                      {"0.0.0.0:8080", false},            // the catch-all listener: as without a Sidecar
		virtualOutbound:                     {"0.0.0.0:15001", true},
		virtualInbound:                      {"0.0.0.0:15006", true},
		"0.0.0.0_9080":                      {"0.0.0.0:9080", true},  // ingress captureMode NONE: the wildcard
		"10.0.0.1_9443":                     {"10.0.0.1:9443", true}, // ingress captureMode NONE and a bind
	}
	got := map[string]bool{}
	for name, r := range sets[ListenerType].ByName {
		got[name] = true
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected listener %s", name)
			continue
		}
		var l listenerv3.Listener
		if err := r.Body.UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		sa := l.Address.GetSocketAddress()
		addr := sa.GetAddress() + ":" + itoa(int(sa.GetPortValue()))
		if pipe := l.Address.GetPipe(); pipe != nil {
			addr = pipe.GetPath()
		}
		if addr != w.address {
			t.Errorf("%s: address %s, want %s", name, addr, w.address)
		}
		if binds := l.BindToPort == nil || l.BindToPort.Value; binds != w.bindToPort {
			t.Errorf("%s: binds its port %v, want %v", name, binds, w.bindToPort)
		}
	}
	for name := range want {
		if !got[name] {
			t.Errorf("no listener %s", name)
		}
	}
	// The redirected ingress port stays a chain of the virtual inbound listener; the
	// bound ones are not there.
	var vin listenerv3.Listener
	if err := sets[ListenerType].ByName[virtualInbound].Body.UnmarshalTo(&vin); err != nil {
		t.Fatal(err)
	}
	ports := map[uint32]bool{}
	for _, fc := range vin.FilterChains {
		ports[fc.GetFilterChainMatch().GetDestinationPort().GetValue()] = true
	}
	if !ports[9100] || ports[9080] || ports[9443] {
		t.Errorf("virtual inbound chains for ports %v; want 9100, not 9080 or 9443", ports)
	}
	// The bound HTTP listener takes its routes from the port's route configuration,
	// which knows the port's services.
	if _, ok := sets[RouteType].ByName["9080"]; !ok {
		t.Error("no route configuration 9080 for 127.0.0.1_9080")
	}
	// The unix socket's connection manager routes by the socket's route
	// configuration, which has a virtual host per service port its hosts import.
	var uds listenerv3.Listener
	resourceOf(t, sets, ListenerType, "unix:///var/run/app/egress.sock_0", &uds)
	var hcm hcmv3.HttpConnectionManager
	if err := uds.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil || hcm.GetRds().GetRouteConfigName() != "unix:///var/run/app/egress.sock" {
		t.Errorf("the unix socket's listener routes by %q (%v), want unix:///var/run/app/egress.sock", hcm.GetRds().GetRouteConfigName(), err)
	}
	var rc routev3.RouteConfiguration
	resourceOf(t, sets, RouteType, "unix:///var/run/app/egress.sock", &rc)
	if len(rc.VirtualHosts) < 2 {
		t.Errorf("the unix socket's route configuration has virtual hosts %v, want the services'", rc.VirtualHosts)
	}
	checkGolden(t, filepath.Join("testdata", "vm-sidecar.sidecar.golden.yaml"), dump(t, sets))
}

// TestInterceptionNone: a proxy whose traffic nothing redirects (INTERCEPTION_MODE
// NONE) has no virtual listeners; every outbound listener binds its port on
// 127.0.0.1 (an unprivileged proxy's below 1024 are reported and left out); it has
// no inbound side but what its Sidecar's ingress listeners bind, as in Istio.
func TestInterceptionNone(t *testing.T) {
	const ingress = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: vm, namespace: shop}
spec:
  workloadSelector: {labels: {app: vm}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
`
	for _, tt := range []struct {
		name         string
		labels       map[string]string
		unprivileged bool
		want         []string // listener: address, bound or not
		err          string
	}{
		{"outbound only", nil, false, []string{"127.0.0.1_3128 127.0.0.1:3128 bound", "127.0.0.1_80 127.0.0.1:80 bound"}, ""},
		{"unprivileged", nil, true, []string{"127.0.0.1_3128 127.0.0.1:3128 bound"}, "outbound port 80: an unprivileged proxy cannot bind a port below 1024"},
		{"with ingress listeners", map[string]string{"app": "vm"}, false,
			[]string{"0.0.0.0_9080 0.0.0.0:9080 bound", "127.0.0.1_3128 127.0.0.1:3128 bound", "127.0.0.1_80 127.0.0.1:80 bound"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := grpcProxy("shop", tt.labels)
			p.Generator, p.InterceptionNone, p.Unprivileged = "", true, tt.unprivileged
			sets, err := sidecarProfile().build(newContext(snapshotOf(t, scopeServices, ingress), p, "cluster.local", "istio-system"))
			if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("build error %v, want %q", err, tt.err)
			}
			var got []string
			for name, r := range sets[ListenerType].ByName {
				var l listenerv3.Listener
				if err := r.Body.UnmarshalTo(&l); err != nil {
					t.Fatal(err)
				}
				sa := l.Address.GetSocketAddress()
				bound := "redirected"
				if l.BindToPort == nil || l.BindToPort.Value {
					bound = "bound"
				}
				got = append(got, name+" "+sa.GetAddress()+":"+itoa(int(sa.GetPortValue()))+" "+bound)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("listeners %v, want %v", got, tt.want)
			}
			inbound := 0
			for name := range sets[ClusterType].ByName {
				if strings.HasPrefix(name, "inbound|") {
					inbound++
				}
			}
			if want := len(tt.labels); inbound != want {
				t.Errorf("%d inbound clusters, want %d", inbound, want)
			}
		})
	}
}

// TestIngressBindsProxyAddress: a Sidecar ingress listener that binds its port
// without a bind address binds the proxy's first global unicast address (of
// INSTANCE_IPS, else its node id's), the wildcard when it has none, as in Istio.
// Proxies at other addresses are then classes of their own; without such a
// listener, the address sets no class apart.
func TestIngressBindsProxyAddress(t *testing.T) {
	const ingress = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: vm, namespace: shop}
spec:
  workloadSelector: {labels: {app: vm}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
    captureMode: NONE
`
	proxyAt := func(ip, ips string) *Proxy {
		t.Helper()
		md := map[string]any{"NAMESPACE": "shop", "LABELS": map[string]any{"app": "vm"}}
		if ips != "" {
			md["INSTANCE_IPS"] = ips
		}
		return parsedProxy(t, "sidecar~"+ip+"~vm-0.shop~shop.svc.cluster.local", md)
	}
	withIngress := snapshotOf(t, scopeServices, ingress)
	for _, tc := range []struct{ ip, ips, want string }{
		{"10.0.0.5", "", "10.0.0.5_9080"},
		{"127.0.0.5", "127.0.0.5,fd00::5", "fd00::5_9080"}, // the first global unicast one
		{"127.0.0.5", "", "0.0.0.0_9080"},
	} {
		p := proxyAt(tc.ip, tc.ips).classProxy(withIngress)
		sets := mustBuild(t, sidecarProfile(), withIngress, p)
		var l listenerv3.Listener
		resourceOf(t, sets, ListenerType, tc.want, &l)
		if l.BindToPort != nil && !l.BindToPort.Value {
			t.Errorf("%s %s: %s does not bind its port", tc.ip, tc.ips, tc.want)
		}
	}
	a, b := proxyAt("10.0.0.5", ""), proxyAt("10.0.0.6", "")
	if a.classProxy(withIngress).classKey() == b.classProxy(withIngress).classKey() {
		t.Error("proxies at two addresses share a class though a Sidecar ingress listener binds their addresses")
	}
	without := snapshotOf(t, scopeServices)
	if a.classProxy(without).classKey() != b.classProxy(without).classKey() {
		t.Error("proxies at two addresses are two classes though nothing binds their addresses")
	}
}

// TestInterceptionTPROXY: a proxy to which iptables hands connections with TPROXY
// (INTERCEPTION_MODE TPROXY) gets transparent virtual listeners, and its inbound one
// connects to the application from the client's address (original_src, marking
// 1337, after original_dst), as in Istio; under REDIRECT neither. The metadata
// parses to the mode, and the two modes are two classes.
func TestInterceptionTPROXY(t *testing.T) {
	snap := snapshotOf(t, scopeServices)
	for _, mode := range []string{"REDIRECT", "TPROXY"} {
		t.Run(mode, func(t *testing.T) {
			p := parsedProxy(t, "sidecar~10.0.0.1~web-0.shop~shop.svc.cluster.local", map[string]any{"NAMESPACE": "shop", "INTERCEPTION_MODE": mode})
			tproxy := mode == "TPROXY"
			if p.InterceptionTPROXY != tproxy {
				t.Fatalf("INTERCEPTION_MODE %s parsed to TPROXY %t", mode, p.InterceptionTPROXY)
			}
			sets, err := sidecarProfile().build(newContext(snap, p, "cluster.local", "istio-system"))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{virtualOutbound, virtualInbound} {
				var l listenerv3.Listener
				r := sets[ListenerType].ByName[name]
				if r == nil {
					t.Fatalf("no listener %s", name)
				}
				if err := r.Body.UnmarshalTo(&l); err != nil {
					t.Fatal(err)
				}
				if got := l.GetTransparent().GetValue(); got != tproxy {
					t.Errorf("%s: transparent %t, want %t", name, got, tproxy)
				}
				if name != virtualInbound {
					continue
				}
				var filters []string
				for _, f := range l.ListenerFilters {
					filters = append(filters, f.Name)
				}
				want := []string{"envoy.filters.listener.original_dst"}
				if tproxy {
					want = append(want, "envoy.filters.listener.original_src")
					var src originalsrcv3.OriginalSrc
					if err := l.ListenerFilters[1].GetTypedConfig().UnmarshalTo(&src); err != nil || src.Mark != 1337 {
						t.Errorf("original_src %v (%v), want mark 1337", &src, err)
					}
				}
				if len(filters) < len(want) || !slices.Equal(filters[:len(want)], want) {
					t.Errorf("%s: listener filters %v, want them to begin %v", name, filters, want)
				}
			}
		})
	}
	redirect, tproxy := grpcProxy("shop", nil), grpcProxy("shop", nil)
	tproxy.InterceptionTPROXY = true
	if redirect.classKey() == tproxy.classKey() {
		t.Error("a TPROXY proxy and a REDIRECT one share a class")
	}
}

// TestInboundByAddress: an Envoy sidecar at the address of a ServiceEntry's own
// endpoint serves that service on its inbound side, on the port the endpoint names,
// as istiod finds a sidecar's services by its IP; a sidecar at another address, or
// of another namespace, does not, and each is a class of its own.
func TestInboundByAddress(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: shop}
spec:
  hosts: [legacy.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, ports: {http: 8080}}, {address: 10.0.0.9}]
`)
	envoy := func(ns, ip string) *Proxy {
		p := grpcProxy(ns, nil)
		p.Generator, p.IP = "", ip
		return p.withAddressWorkload(snap)
	}
	ports := func(p *Proxy) []uint32 {
		t.Helper()
		var out []uint32
		for _, port := range buildInboundPorts(newContext(snap, p, "cluster.local", "istio-system")) {
			out = append(out, port.number)
		}
		return out
	}
	at1, at9, elsewhere, other := envoy("shop", "10.0.0.1"), envoy("shop", "10.0.0.9"), envoy("shop", "10.0.0.5"), envoy("web", "10.0.0.1")
	for _, tc := range []struct {
		what string
		p    *Proxy
		want []uint32
	}{
		{"at the endpoint naming port 8080", at1, []uint32{5432, 8080}},
		{"at the other endpoint", at9, []uint32{80, 5432}},
		{"at no endpoint", elsewhere, nil},
		{"of another namespace", other, nil},
	} {
		if got := ports(tc.p); !slices.Equal(got, tc.want) {
			t.Errorf("%s: inbound ports %v, want %v", tc.what, got, tc.want)
		}
	}
	keys := map[classKey]bool{}
	for _, p := range []*Proxy{at1, at9, elsewhere} {
		keys[p.classProxy(snap).classKey()] = true
	}
	if len(keys) != 3 {
		t.Errorf("%d classes for sidecars at two endpoints of different ports and at none, want 3", len(keys))
	}
	grpc := grpcProxy("shop", nil)
	grpc.IP = "10.0.0.1"
	if grpc.withAddressWorkload(snap).AddressServices != nil {
		t.Error("a proxyless client at the endpoint's address was given its services: they are a class of their own for Envoy sidecars only")
	}
}

// TestIPv6OnlyProxies: an IPv6-only sidecar's wildcard listeners bind ::, its
// inbound side connects from ::6 and its loopback is ::1; a dual-stack one's are
// IPv4's, its inbound passthrough binding ::6 for IPv6 destinations too and its
// outbound wildcard listeners also at ::.
func TestIPv6OnlyProxies(t *testing.T) {
	snap := snapshotOf(t, scopeServices, webWorkload, `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: 'inboundTrafficPolicy: {mode: LOCALHOST}'
`)
	for _, tc := range []struct {
		ip, ips                                        string
		wildcard, wildcardExtra, bind, extra, loopback string
	}{
		{"fd00::1", "", "::", "", "::6", "", "::1"},
		{"10.0.0.1", "10.0.0.1,fd00::1", "0.0.0.0", "::", "127.0.0.6", "::6", "127.0.0.1"},
		{"10.0.0.1", "", "0.0.0.0", "", "127.0.0.6", "", "127.0.0.1"},
	} {
		p := grpcProxy("shop", map[string]string{"app": "web"})
		p.Generator, p.IP = "", tc.ip
		p.IPFamilies, p.UnicastIP = ipFamilies(tc.ip, tc.ips)
		sets := mustBuild(t, sidecarProfile(), snap, p)
		var vo listenerv3.Listener
		resourceOf(t, sets, ListenerType, virtualOutbound, &vo)
		if got := vo.GetAddress().GetSocketAddress().GetAddress(); got != tc.wildcard {
			t.Errorf("%s: virtual outbound listener at %s, want %s", tc.ip, got, tc.wildcard)
		}
		if sets[ListenerType].ByName[tc.wildcard+"_80"] == nil {
			t.Fatalf("%s: no listener %s_80 among %v", tc.ip, tc.wildcard, sets[ListenerType].Names())
		}
		// A dual-stack proxy's outbound wildcard listeners take IPv6 connections
		// too: they also have IPv6's wildcard, as istiod gives them.
		var out80 listenerv3.Listener
		resourceOf(t, sets, ListenerType, tc.wildcard+"_80", &out80)
		var also []string
		for _, a := range out80.AdditionalAddresses {
			also = append(also, a.GetAddress().GetSocketAddress().GetAddress())
		}
		if want := strings.Fields(tc.wildcardExtra); !slices.Equal(also, want) {
			t.Errorf("%s: %s_80 also at %v, want %v", tc.ip, tc.wildcard, also, want)
		}
		var pass clusterv3.Cluster
		resourceOf(t, sets, ClusterType, inboundPassthroughCluster, &pass)
		extra := ""
		if x := pass.GetUpstreamBindConfig().GetExtraSourceAddresses(); len(x) > 0 {
			extra = x[0].GetAddress().GetAddress()
		}
		if got := pass.GetUpstreamBindConfig().GetSourceAddress().GetAddress(); got != tc.bind || extra != tc.extra {
			t.Errorf("%s: inbound passthrough from %s (and %q), want %s (and %q)", tc.ip, got, extra, tc.bind, tc.extra)
		}
		inbound := 0
		for _, name := range sets[ClusterType].Names() {
			if !strings.HasPrefix(name, "inbound|") {
				continue
			}
			inbound++
			var c clusterv3.Cluster
			resourceOf(t, sets, ClusterType, name, &c)
			if got := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress(); got != tc.loopback {
				t.Errorf("%s: %s to %s under LOCALHOST, want %s", tc.ip, name, got, tc.loopback)
			}
		}
		if inbound == 0 {
			t.Errorf("%s: no inbound cluster: the workload serves no service here", tc.ip)
		}
	}
}

// TestExactBalance: a proxy whose metadata asks for exact connection balance gets
// it on its inbound listeners (INBOUND_LISTENER_EXACT_BALANCE) and its outbound
// ones but the virtual outbound listener (OUTBOUND_LISTENER_EXACT_BALANCE), as from
// istiod; a proxy that does not, on none.
func TestExactBalance(t *testing.T) {
	snap := snapshotOf(t, scopeServices, webWorkload)
	for _, tc := range []struct{ in, out bool }{{false, false}, {true, false}, {false, true}} {
		p := grpcProxy("shop", map[string]string{"app": "web"})
		p.Generator, p.InboundExactBalance, p.OutboundExactBalance = "", tc.in, tc.out
		for name, r := range mustBuild(t, sidecarProfile(), snap, p)[ListenerType].ByName {
			var l listenerv3.Listener
			if err := r.Body.UnmarshalTo(&l); err != nil {
				t.Fatal(err)
			}
			want := name != virtualOutbound && ((l.TrafficDirection == corev3.TrafficDirection_INBOUND && tc.in) ||
				(l.TrafficDirection == corev3.TrafficDirection_OUTBOUND && tc.out))
			if got := l.GetConnectionBalanceConfig().GetExactBalance() != nil; got != want {
				t.Errorf("inbound %t, outbound %t: %s balances exactly %t, want %t", tc.in, tc.out, name, got, want)
			}
		}
	}
}

// TestHTTP10AndIdleTimeout: istio-agent's HTTP10 and IDLE_TIMEOUT metadata make a
// sidecar's connection managers take HTTP/1.0 and close idle connections, and its
// TCP proxies time out (but the loop-breaking blackhole chains), as istiod
// configures them.
func TestHTTP10AndIdleTimeout(t *testing.T) {
	p := parsedProxy(t, "sidecar~10.0.0.1~web-0.shop~shop.svc.cluster.local", map[string]any{"NAMESPACE": "shop", "HTTP10": "1", "IDLE_TIMEOUT": "30s"})
	if !p.AcceptHTTP10 || p.IdleTimeout.AsDuration().Seconds() != 30 {
		t.Fatalf("parsed HTTP/1.0 %t, idle timeout %v", p.AcceptHTTP10, p.IdleTimeout)
	}
	sets := mustBuild(t, sidecarProfile(), snapshotOf(t, scopeServices), p)
	var vo listenerv3.Listener
	resourceOf(t, sets, ListenerType, virtualOutbound, &vo)
	for _, fc := range vo.FilterChains {
		var tp tcpv3.TcpProxy
		if err := fc.Filters[len(fc.Filters)-1].GetTypedConfig().UnmarshalTo(&tp); err != nil {
			t.Fatal(err)
		}
		if want := fc.Name != virtualOutbound+"-blackhole"; (tp.GetIdleTimeout().AsDuration().Seconds() == 30) != want {
			t.Errorf("chain %s: idle timeout %v", fc.Name, tp.GetIdleTimeout())
		}
	}
	var l listenerv3.Listener
	resourceOf(t, sets, ListenerType, "0.0.0.0_80", &l)
	found := false
	for _, fc := range append(l.FilterChains, l.DefaultFilterChain) {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
				continue
			}
			found = true
			if !hcm.GetHttpProtocolOptions().GetAcceptHttp_10() || hcm.GetCommonHttpProtocolOptions().GetIdleTimeout().AsDuration().Seconds() != 30 {
				t.Errorf("connection manager: HTTP/1.0 %v, idle timeout %v", hcm.GetHttpProtocolOptions(), hcm.GetCommonHttpProtocolOptions())
			}
		}
	}
	if !found {
		t.Error("no connection manager on 0.0.0.0_80")
	}
}

// parsedProxy is the proxy a node of id and metadata md makes (ParseProxy); an error
// fails the test.
func parsedProxy(t *testing.T, id string, md map[string]any) *Proxy {
	t.Helper()
	m, err := structpb.NewStruct(md)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProxy(&corev3.Node{Id: id, Metadata: m})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
