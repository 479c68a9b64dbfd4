package consul

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	capi "github.com/hashicorp/consul/api"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// entry is a health entry of one instance as /v1/health/service returns it.
func entry(node, nodeAddr, id, svcAddr string, port int, tags []string, meta map[string]string, status ...string) *capi.ServiceEntry {
	e := &capi.ServiceEntry{
		Node:    &capi.Node{Node: node, Address: nodeAddr, Datacenter: "dc1"},
		Service: &capi.AgentService{ID: id, Service: "ratings", Address: svcAddr, Port: port, Tags: tags, Meta: meta, Weights: capi.AgentWeights{Passing: 1, Warning: 1}},
		Checks:  capi.HealthChecks{{Node: node, CheckID: "serfHealth", Status: capi.HealthPassing}},
	}
	for i, s := range status {
		e.Checks = append(e.Checks, &capi.HealthCheck{Node: node, CheckID: "service:" + id + ":" + string(rune('a'+i)), ServiceID: id, Status: s})
	}
	return e
}

func testTranslator() translator {
	return newTranslator(DefaultConfig(), "dc1", true)
}

// byKind splits resources into ServiceEntries by host and WorkloadEntries by name.
func byKind(t *testing.T, rs []*api.Resource) (map[string]*networking.ServiceEntry, map[string]*api.Resource) {
	t.Helper()
	ses, wes := map[string]*networking.ServiceEntry{}, map[string]*api.Resource{}
	for _, r := range rs {
		if err := api.Validate(r); err != nil {
			t.Fatalf("invalid resource: %v", err)
		}
		if r.Meta.Namespace != "consul" {
			t.Fatalf("%s: namespace %q, want consul", r, r.Meta.Namespace)
		}
		switch se := r.Spec.(type) {
		case *networking.ServiceEntry:
			if r.Meta.Name != se.Hosts[0] {
				t.Fatalf("ServiceEntry %s is not named after its host %s", r.Meta.Name, se.Hosts[0])
			}
			ses[se.Hosts[0]] = se
		case *networking.WorkloadEntry:
			wes[r.Meta.Name] = r
		}
	}
	return ses, wes
}

func TestServiceBecomesServiceEntriesPerHost(t *testing.T) {
	rs, skips := testTranslator().catalog(map[string][]*capi.ServiceEntry{
		"ratings": {
			entry("node-2", "10.0.0.2", "ratings-2", "", 9091, []string{"v2"}, map[string]string{"protocol": "grpc"}, capi.HealthPassing),
			entry("node-1", "10.0.0.1", "ratings-1", "192.168.1.1", 9090, []string{"v1"}, map[string]string{"protocol": "grpc"}, capi.HealthPassing),
		},
	}, protocolDefaults{})
	if len(skips) > 0 {
		t.Fatalf("skipped %v", skips)
	}
	ses, wes := byKind(t, rs)
	if got := slices.Sorted(maps.Keys(ses)); !slices.Equal(got, []string{"ratings.service.consul", "ratings.service.dc1.consul"}) {
		t.Fatalf("hosts %v", got)
	}
	for host, se := range ses {
		if se.Location != networking.ServiceEntry_MESH_INTERNAL || se.Resolution != networking.ServiceEntry_STATIC {
			t.Errorf("%s: location %s resolution %s", host, se.Location, se.Resolution)
		}
		want := map[string]string{LabelService: "ratings", LabelDatacenter: "dc1"}
		if !maps.Equal(se.WorkloadSelector.GetLabels(), want) {
			t.Errorf("%s: selector %v, want %v", host, se.WorkloadSelector.GetLabels(), want)
		}
		var ports []string
		for _, p := range se.Ports {
			ports = append(ports, p.Name+"/"+p.Protocol)
		}
		if !slices.Equal(ports, []string{"grpc-9090/GRPC", "grpc-9091/GRPC"}) {
			t.Errorf("%s: ports %v", host, ports)
		}
	}
	v1 := wes["ratings.dc1.node-1.ratings-1"]
	if v1 == nil {
		t.Fatalf("no WorkloadEntry for ratings-1 in %v", slices.Sorted(maps.Keys(wes)))
	}
	we := v1.Spec.(*networking.WorkloadEntry)
	if we.Address != "192.168.1.1" || we.Locality != "dc1" {
		t.Errorf("ratings-1: address %s locality %s, want the service address and dc1", we.Address, we.Locality)
	}
	if want := map[string]uint32{"grpc-9090": 9090, "grpc-9091": 9090}; !maps.Equal(we.Ports, want) {
		t.Errorf("ratings-1: ports %v, want %v (every service port to its own)", we.Ports, want)
	}
	if we.Labels["version"] != "v1" || we.Labels[LabelService] != "ratings" || we.Labels["protocol"] != "grpc" {
		t.Errorf("ratings-1: labels %v", we.Labels)
	}
	if v1.Meta.Annotations[AnnotationNode] != "node-1" || v1.Meta.Annotations[AnnotationServiceID] != "ratings-1" {
		t.Errorf("ratings-1: annotations %v", v1.Meta.Annotations)
	}
	if we := wes["ratings.dc1.node-2.ratings-2"].Spec.(*networking.WorkloadEntry); we.Address != "10.0.0.2" {
		t.Errorf("ratings-2: address %s, want the node's", we.Address)
	}
}

func TestHealthFromChecks(t *testing.T) {
	tests := []struct {
		name           string
		status         []string
		warningHealthy bool
		healthy        bool
	}{
		{"all passing", []string{capi.HealthPassing}, false, true},
		{"no service checks", nil, false, true},
		{"one critical", []string{capi.HealthPassing, capi.HealthCritical}, false, false},
		{"warning is unhealthy by default", []string{capi.HealthWarning}, false, false},
		{"warning is healthy when configured", []string{capi.HealthWarning}, true, true},
		{"critical stays unhealthy when warnings are healthy", []string{capi.HealthWarning, capi.HealthCritical}, true, false},
		{"maintenance is critical", []string{capi.HealthMaint}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.WarningHealthy = tt.warningHealthy
			rs, _ := newTranslator(cfg, "dc1", true).catalog(map[string][]*capi.ServiceEntry{
				"ratings": {entry("n", "10.0.0.1", "r", "", 80, nil, nil, tt.status...)},
			}, protocolDefaults{})
			_, wes := byKind(t, rs)
			r := wes["ratings.dc1.n.r"]
			unhealthy := r.Meta.Annotations[registry.HealthAnnotation] == "unhealthy"
			if unhealthy == tt.healthy {
				t.Fatalf("checks %v (warning healthy %v): annotations %v, want healthy=%v", tt.status, tt.warningHealthy, r.Meta.Annotations, tt.healthy)
			}
		})
	}
	t.Run("a failing node check makes its instances unhealthy", func(t *testing.T) {
		e := entry("n", "10.0.0.1", "r", "", 80, nil, nil, capi.HealthPassing)
		e.Checks[0].Status = capi.HealthCritical
		rs, _ := testTranslator().catalog(map[string][]*capi.ServiceEntry{"ratings": {e}}, protocolDefaults{})
		_, wes := byKind(t, rs)
		if wes["ratings.dc1.n.r"].Meta.Annotations[registry.HealthAnnotation] != "unhealthy" {
			t.Fatal("instance of a node whose serfHealth is critical is not marked unhealthy")
		}
	})
}

func TestTranslationLeavesOut(t *testing.T) {
	proxy := entry("n", "10.0.0.1", "ratings-sidecar-proxy", "", 21000, nil, nil)
	proxy.Service.Kind = capi.ServiceKindConnectProxy
	tests := []struct {
		name     string
		services map[string][]*capi.ServiceEntry
		want     int
		skipped  int
	}{
		{"Consul's own service", map[string][]*capi.ServiceEntry{"consul": {entry("n", "10.0.0.1", "consul", "", 8300, nil, nil)}}, 0, 0},
		{"Connect proxies", map[string][]*capi.ServiceEntry{"ratings-sidecar-proxy": {proxy}}, 0, 0},
		{"instances without a port", map[string][]*capi.ServiceEntry{"ratings": {entry("n", "10.0.0.1", "r", "", 0, nil, nil)}}, 0, 0},
		{"instances without an address (invalid)", map[string][]*capi.ServiceEntry{"ratings": {entry("n", "", "r", "", 80, nil, nil)}}, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, skips := testTranslator().catalog(tt.services, protocolDefaults{})
			if len(rs) != tt.want || len(skips) != tt.skipped {
				t.Fatalf("%d resources and %d skipped, want %d and %d: %v", len(rs), len(skips), tt.want, tt.skipped, skips)
			}
		})
	}
}

func TestTranslationDetails(t *testing.T) {
	t.Run("only the primary datacenter publishes the short host", func(t *testing.T) {
		rs, _ := newTranslator(DefaultConfig(), "dc2", false).catalog(map[string][]*capi.ServiceEntry{
			"ratings": {entry("n", "10.0.0.1", "r", "", 80, nil, nil)},
		}, protocolDefaults{})
		ses, _ := byKind(t, rs)
		if got := slices.Sorted(maps.Keys(ses)); !slices.Equal(got, []string{"ratings.service.dc2.consul"}) {
			t.Fatalf("hosts %v", got)
		}
	})
	t.Run("protocols follow ServiceMeta, http by default", func(t *testing.T) {
		var es []*capi.ServiceEntry
		for i, p := range []string{"", "http", "HTTP2", "grpc", "tcp", "mongo"} {
			es = append(es, entry("n", "10.0.0.1", string(rune('a'+i)), "", 8000+i, nil, map[string]string{"protocol": p}))
		}
		rs, _ := testTranslator().catalog(map[string][]*capi.ServiceEntry{"ratings": es}, protocolDefaults{})
		ses, _ := byKind(t, rs)
		var got []string
		for _, p := range ses["ratings.service.consul"].Ports {
			got = append(got, p.Name)
		}
		want := []string{"http-8000", "http-8001", "http2-8002", "grpc-8003", "tcp-8004", "http-8005"}
		if !slices.Equal(got, want) {
			t.Fatalf("ports %v, want %v", got, want)
		}
	})
	t.Run("protocols without ServiceMeta follow Consul's config entries", func(t *testing.T) {
		config := map[string][]capi.ConfigEntry{
			capi.ServiceDefaults: {
				&capi.ServiceConfigEntry{Kind: capi.ServiceDefaults, Name: "ratings", Protocol: "grpc"},
				&capi.ServiceConfigEntry{Kind: capi.ServiceDefaults, Name: "cache", Protocol: "redis"}, // none in Istio
			},
			capi.ProxyDefaults: {&capi.ProxyConfigEntry{Kind: capi.ProxyDefaults, Name: capi.ProxyConfigGlobal,
				Config: map[string]any{"protocol": "http2"}}},
		}
		services := map[string][]*capi.ServiceEntry{
			"ratings": {entry("n1", "10.0.0.1", "r1", "", 9090, nil, nil), entry("n2", "10.0.0.2", "r2", "", 9091, nil, map[string]string{"protocol": "tcp"})},
			"cache":   {entry("n1", "10.0.0.1", "c1", "", 6379, nil, nil)},
		}
		services["cache"][0].Service.Service = "cache"
		ports := func(config map[string][]capi.ConfigEntry) map[string][]string {
			rs, skips := testTranslator().catalog(services, defaultsOf(config))
			if len(skips) > 0 {
				t.Fatal(skips)
			}
			ses, _ := byKind(t, rs)
			got := map[string][]string{}
			for host, se := range ses {
				for _, p := range se.Ports {
					got[host] = append(got[host], p.Name)
				}
			}
			return got
		}
		got := ports(config)
		if r, c := got["ratings.service.consul"], got["cache.service.consul"]; !slices.Equal(r, []string{"grpc-9090", "tcp-9091"}) || !slices.Equal(c, []string{"http2-6379"}) {
			t.Errorf("ratings %v (want its service-defaults' grpc, ServiceMeta's tcp), cache %v (want proxy-defaults' http2)", r, c)
		}
		got = ports(map[string][]capi.ConfigEntry{})
		if r, c := got["ratings.service.consul"], got["cache.service.consul"]; !slices.Equal(r, []string{"http-9090", "tcp-9091"}) || !slices.Equal(c, []string{"http-6379"}) {
			t.Errorf("without config entries: ratings %v, cache %v, want http but for ServiceMeta's tcp", r, c)
		}
	})
	t.Run("a remote datacenter's instances at their WAN addresses, as Consul's translate_wan_addrs", func(t *testing.T) {
		wanService := entry("n1", "10.0.0.1", "r1", "10.1.0.1", 9090, nil, nil)
		wanService.Service.TaggedAddresses = map[string]capi.ServiceAddress{"wan": {Address: "198.51.100.1", Port: 19090}}
		wanServiceNoPort := entry("n2", "10.0.0.2", "r2", "", 9090, nil, nil)
		wanServiceNoPort.Service.TaggedAddresses = map[string]capi.ServiceAddress{"wan": {Address: "198.51.100.2"}}
		wanNode := entry("n3", "10.0.0.3", "r3", "", 9090, nil, nil)
		wanNode.Node.TaggedAddresses = map[string]string{"wan": "198.51.100.3"}
		serviceAddr := entry("n4", "10.0.0.4", "r4", "10.1.0.4", 9090, nil, nil)
		serviceAddr.Node.TaggedAddresses = map[string]string{"wan": "198.51.100.4"}
		lanOnly := entry("n5", "10.0.0.5", "r5", "", 9090, nil, nil)
		in := map[string][]*capi.ServiceEntry{"ratings": {wanService, wanServiceNoPort, wanNode, serviceAddr, lanOnly}}
		addrs := func(cfg Config, dc string, primary bool) []string {
			rs, _ := newTranslator(cfg, dc, primary).catalog(in, protocolDefaults{})
			_, wes := byKind(t, rs)
			var out []string
			for _, name := range slices.Sorted(maps.Keys(wes)) {
				we := wes[name].Spec.(*networking.WorkloadEntry)
				out = append(out, fmt.Sprintf("%s:%d", we.Address, we.Ports["http-9090"]))
			}
			return out
		}
		cfg := DefaultConfig()
		lan := []string{"10.1.0.1:9090", "10.0.0.2:9090", "10.0.0.3:9090", "10.1.0.4:9090", "10.0.0.5:9090"}
		if got := addrs(cfg, "dc2", false); !slices.Equal(got, lan) {
			t.Errorf("without translation: %v, want %v", got, lan)
		}
		cfg.TranslateWANAddrs = true
		if got := addrs(cfg, "dc1", true); !slices.Equal(got, lan) {
			t.Errorf("the primary datacenter: %v, want %v", got, lan)
		}
		wan := []string{"198.51.100.1:19090", "198.51.100.2:9090", "198.51.100.3:9090", "10.1.0.4:9090", "10.0.0.5:9090"}
		if got := addrs(cfg, "dc2", false); !slices.Equal(got, wan) {
			t.Errorf("a remote datacenter: %v, want %v", got, wan)
		}
	})
	t.Run("names that are not DNS labels are made valid and stay distinct", func(t *testing.T) {
		a := entry("Node_A", "10.0.0.1", "Web_1", "", 80, nil, nil)
		b := entry("node-a", "10.0.0.2", "web-1", "", 80, nil, nil)
		a.Service.Service, b.Service.Service = "Web_API", "Web_API"
		rs, skips := newTranslator(DefaultConfig(), "DC_1", true).catalog(map[string][]*capi.ServiceEntry{"Web_API": {a, b}}, protocolDefaults{})
		if len(skips) > 0 {
			t.Fatalf("skipped %v", skips)
		}
		_, wes := byKind(t, rs)
		if len(wes) != 2 {
			t.Fatalf("%d WorkloadEntries, want 2: %v", len(wes), slices.Sorted(maps.Keys(wes)))
		}
	})
	t.Run("the passing weight is the workload's weight", func(t *testing.T) {
		e := entry("n", "10.0.0.1", "r", "", 80, nil, nil)
		e.Service.Weights.Passing = 3
		rs, _ := testTranslator().catalog(map[string][]*capi.ServiceEntry{"ratings": {e}}, protocolDefaults{})
		_, wes := byKind(t, rs)
		if w := wes["ratings.dc1.n.r"].Spec.(*networking.WorkloadEntry).Weight; w != 3 {
			t.Fatalf("weight %d, want 3", w)
		}
	})
	t.Run("translation is deterministic", func(t *testing.T) {
		in := map[string][]*capi.ServiceEntry{
			"ratings": {entry("b", "10.0.0.2", "r2", "", 81, []string{"v2", "x=y"}, nil), entry("a", "10.0.0.1", "r1", "", 80, []string{"v1"}, nil)},
			"reviews": {entry("a", "10.0.0.1", "v", "", 90, nil, map[string]string{"team": "x"})},
		}
		first, _ := testTranslator().catalog(in, protocolDefaults{})
		slices.Reverse(in["ratings"])
		second, _ := testTranslator().catalog(in, protocolDefaults{})
		if len(first) != len(second) {
			t.Fatalf("%d then %d resources", len(first), len(second))
		}
		for i := range first {
			if first[i].Key() != second[i].Key() || !api.SpecEqual(first[i], second[i]) {
				t.Fatalf("resource %d differs: %s vs %s", i, first[i], second[i])
			}
		}
	})
}
