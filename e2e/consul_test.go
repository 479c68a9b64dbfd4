package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	capi "github.com/hashicorp/consul/api"

	"github.com/navarch/navarch/adapters/consul/consultest"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/e2e/grpcapp"
	"github.com/navarch/navarch/node/devcluster"
)

const ratingsHost = "ratings.service.consul"

// consulMesh is the state of TestConsulCatalogInTheMesh: a Consul server, a navarch
// cluster following it, the gRPC backends registered in Consul and a client.
type consulMesh struct {
	t        *testing.T
	agent    *consultest.Agent
	consul   *capi.Client
	c        *devcluster.Cluster
	backends map[string]*grpcapp.Backend // by Consul service ID
	target   string
	client   *trafficClient
}

// TestConsulCatalogInTheMesh: services registered in a real Consul server, with no
// change on the Consul side, are routed by Istio's DestinationRule and VirtualService
// for a grpc-go xDS client; Consul's health checks, deregistrations and new instances
// move traffic; the node that syncs Consul dies and another takes over; Consul stops
// (the registry is kept, marked stale) and comes back (resynced).
func TestConsulCatalogInTheMesh(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t, consultest.Options{Persistent: true})
	m := &consulMesh{t: t, agent: agent, consul: agent.Client(t), backends: map[string]*grpcapp.Backend{}}
	m.c = startCluster(t, 3, "--consul-address", agent.HTTPAddr)
	m.register("ratings-v1", "v1")
	m.register("ratings-v2", "v2")
	m.target = fmt.Sprintf("xds:///%s:%d", ratingsHost, m.backends["ratings-v1"].Port)
	dir := t.TempDir()
	writeFile(t, dir, "ratings.yaml", ratingsRouting(ratingsHost, 50, 50))
	mustNodeCLI(t, m.c, "n1", "apply", "-f", dir)

	t.Run("a 50/50 VirtualService splits traffic between Consul instances", m.split)
	t.Run("every node allocates ratings the same address, which proxies with DNS capture know it by", m.allocated)
	t.Run("an instance whose check turns critical gets no traffic", m.critical)
	t.Run("a deregistered instance leaves the registry", m.deregister)
	t.Run("a new instance joins and gets traffic", m.newInstance)
	t.Run("another node takes over when the syncing node is killed", m.takeover)
	t.Run("a stopped Consul leaves the registry kept and stale, a restarted one resyncs", m.outage)
}

// ratingsRouting is a DestinationRule with subsets by version and a VirtualService
// splitting between them, for host.
func ratingsRouting(host string, v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: %[1]s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [%[1]s]
  http:
  - route:
    - {destination: {host: %[1]s, subset: v1}, weight: %[2]d}
    - {destination: {host: %[1]s, subset: v2}, weight: %[3]d}
`, host, v1, v2)
}

// register starts a gRPC backend named name and registers it with the Consul agent
// as an instance of ratings with id, tagged with its version, speaking gRPC, with a
// TTL check that passes.
func (m *consulMesh) register(id, version string) *grpcapp.Backend {
	m.t.Helper()
	b, err := grpcapp.StartBackend(id)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(b.Stop)
	m.backends[id] = b
	err = m.consul.Agent().ServiceRegister(&capi.AgentServiceRegistration{
		ID: id, Name: "ratings", Address: "127.0.0.1", Port: int(b.Port),
		Tags: []string{version}, Meta: map[string]string{"protocol": "grpc"},
		Check: &capi.AgentServiceCheck{CheckID: id + "-ttl", TTL: "30m", Status: capi.HealthPassing},
	})
	if err != nil {
		m.t.Fatalf("registering %s in Consul: %v", id, err)
	}
	return b
}

// registry returns the registry as node name shows it (navarch registry -o json).
func (m *consulMesh) registry(name string) (client.RegistryListing, error) {
	var reg client.RegistryListing
	res := nodeCLI(m.t, m.c, name, "registry", "-o", "json")
	if res.Code != 0 {
		return reg, fmt.Errorf("navarch registry: exit %d: %s", res.Code, res.Stderr)
	}
	return reg, json.Unmarshal([]byte(res.Stdout), &reg)
}

// ratingsEndpoints returns ratings' endpoints by Consul service ID, as node name
// shows them, and the Consul source's status.
func (m *consulMesh) ratingsEndpoints(name string) (map[string]client.EndpointListing, client.SourceListing, error) {
	reg, err := m.registry(name)
	if err != nil {
		return nil, client.SourceListing{}, err
	}
	eps := map[string]client.EndpointListing{}
	for _, s := range reg.Services {
		if s.Host != ratingsHost {
			continue
		}
		for _, e := range s.Endpoints {
			id := ""
			for _, b := range m.backends {
				if e.Ports[fmt.Sprintf("grpc-%d", b.Port)] == b.Port {
					id = b.Name
				}
			}
			eps[id] = e
		}
	}
	var src client.SourceListing
	for _, s := range reg.Sources {
		if s.Source == "consul.dc1" {
			src = s
		}
	}
	return eps, src, nil
}

// expectEndpoints waits until node name lists exactly the instances ids for ratings,
// with the unhealthy ones marked.
func (m *consulMesh) expectEndpoints(name string, ids []string, unhealthy ...string) {
	m.t.Helper()
	eventually(m.t, 30*time.Second, fmt.Sprintf("%s lists %v (unhealthy %v)", name, ids, unhealthy), func() error {
		eps, _, err := m.ratingsEndpoints(name)
		if err != nil {
			return err
		}
		if len(eps) != len(ids) {
			return fmt.Errorf("endpoints %v", eps)
		}
		for _, id := range ids {
			e, ok := eps[id]
			if !ok {
				return fmt.Errorf("no endpoint for %s in %v", id, eps)
			}
			bad := false
			for _, u := range unhealthy {
				bad = bad || u == id
			}
			if e.Healthy == bad {
				return fmt.Errorf("%s healthy=%v", id, e.Healthy)
			}
		}
		return nil
	})
}

// calls sends n RPCs through a client of a running node and returns where they went.
func (m *consulMesh) calls(n int) grpcapp.Tally {
	m.t.Helper()
	return callsVia(m.t, m.c, runningNodes(m.c)[0], m.target, n)
}

func (m *consulMesh) split(t *testing.T) {
	m.expectEndpoints("n1", []string{"ratings-v1", "ratings-v2"})
	m.client = startTraffic(t, grpcBootstrapFrom(t, m.c, "n2"), m.target)
	eventually(t, 30*time.Second, "traffic reaches both versions", func() error {
		if m.backends["ratings-v1"].Calls() == 0 || m.backends["ratings-v2"].Calls() == 0 {
			return fmt.Errorf("v1 %d calls, v2 %d", m.backends["ratings-v1"].Calls(), m.backends["ratings-v2"].Calls())
		}
		return nil
	})
	tl := m.calls(1000)
	v1, v2 := tl.Share("ratings-v1"), tl.Share("ratings-v2")
	t.Logf("1000 RPCs: v1 %.1f%%, v2 %.1f%%, failed %v", 100*v1, 100*v2, tl.Failed)
	if len(tl.Failed) > 0 || math.Abs(v1-0.5) > 0.06 || math.Abs(v2-0.5) > 0.06 {
		t.Fatalf("split v1 %.3f v2 %.3f failed %v, want 50/50 within 6 points and no failures", v1, v2, tl.Failed)
	}
	// describe tells the same: a subset of one instance each, half the traffic each.
	var d client.ServiceDescription
	if err := json.Unmarshal([]byte(mustNodeCLI(t, m.c, runningNodes(m.c)[0], "describe", "service", ratingsHost, "-o", "json")), &d); err != nil {
		t.Fatal(err)
	}
	if r := d.DestinationRule; d.Service.Source != "consul.dc1" || r == nil || len(r.Subsets) != 2 || r.Subsets[0].Endpoints != 1 || r.Subsets[1].Endpoints != 1 ||
		d.VirtualService == nil || len(d.VirtualService.HTTP) != 1 || len(d.VirtualService.HTTP[0].Destinations) != 2 ||
		d.VirtualService.HTTP[0].Destinations[0].Percent != 50 {
		t.Fatalf("describe service ratings.service.consul: %+v %+v %+v", d.Service, d.DestinationRule, d.VirtualService)
	}
}

// allocated: Consul gives ratings no virtual address; each node allocates it the
// same one, from its own view, and a proxy with DNS capture finds it in its name
// table.
func (m *consulMesh) allocated(t *testing.T) {
	var addrs []string
	for _, name := range []string{"n1", "n2", "n3"} {
		reg, err := m.registry(name)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(reg.Services, func(s client.ServiceListing) bool { return s.Host == ratingsHost })
		if i < 0 || len(reg.Services[i].AutoAddresses) == 0 {
			t.Fatalf("%s lists %s with no allocated address", name, ratingsHost)
		}
		if got := reg.Services[i].AutoAddresses; addrs == nil {
			addrs = got
		} else if !slices.Equal(got, addrs) {
			t.Fatalf("%s allocated %v to %s, n1 %v", name, got, ratingsHost, addrs)
		}
	}
	out := mustNodeCLI(t, m.c, "n2", "proxy-config", "--generator", "envoy", "--metadata", "DNS_CAPTURE=true")
	if !strings.Contains(out, `"`+ratingsHost+`"`) || !strings.Contains(out, `"`+addrs[0]+`"`) {
		t.Errorf("the name table of a proxy with DNS capture has no %s at %s:\n%.2000s", ratingsHost, addrs[0], out)
	}
}

func (m *consulMesh) critical(t *testing.T) {
	if err := m.consul.Agent().UpdateTTL("ratings-v2-ttl", "failing", capi.HealthCritical); err != nil {
		t.Fatal(err)
	}
	m.expectEndpoints("n1", []string{"ratings-v1", "ratings-v2"}, "ratings-v2")
	v2 := m.backends["ratings-v2"]
	eventually(t, 30*time.Second, "no RPC reaches the critical instance", func() error {
		before := v2.Calls()
		tl := m.calls(200)
		if got := v2.Calls() - before; got > 0 {
			return fmt.Errorf("%d of 200 RPCs reached ratings-v2 (%v)", got, tl.By)
		}
		if tl.By["ratings-v1"] == 0 {
			return fmt.Errorf("no RPC reached ratings-v1: %v %v", tl.By, tl.Failed)
		}
		return nil
	})
	if err := m.consul.Agent().UpdateTTL("ratings-v2-ttl", "ok", capi.HealthPassing); err != nil {
		t.Fatal(err)
	}
	m.expectEndpoints("n1", []string{"ratings-v1", "ratings-v2"})
	eventually(t, 30*time.Second, "the instance gets traffic again once its check passes", func() error {
		if tl := m.calls(100); tl.By["ratings-v2"] == 0 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
}

func (m *consulMesh) deregister(t *testing.T) {
	if err := m.consul.Agent().ServiceDeregister("ratings-v2"); err != nil {
		t.Fatal(err)
	}
	for _, n := range m.c.Names() {
		m.expectEndpoints(n, []string{"ratings-v1"})
	}
}

func (m *consulMesh) newInstance(t *testing.T) {
	v2b := m.register("ratings-v2b", "v2")
	m.expectEndpoints("n1", []string{"ratings-v1", "ratings-v2b"})
	eventually(t, 30*time.Second, "the new instance gets the v2 half of the traffic", func() error {
		tl := m.calls(200)
		if tl.By["ratings-v2b"] == 0 || len(tl.Failed) > 0 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
	if v2b.Calls() == 0 {
		t.Fatal("ratings-v2b answered no RPC")
	}
}

// syncingNode returns the node the Consul source's status names, as node from
// shows it.
func (m *consulMesh) syncingNode(from string) (string, error) {
	_, src, err := m.ratingsEndpoints(from)
	if err != nil {
		return "", err
	}
	return syncer(src)
}

func (m *consulMesh) takeover(t *testing.T) {
	killed, survivor := killSyncer(t, m.c, m.syncingNode)
	m.register("ratings-v1b", "v1")
	m.expectEndpoints(survivor, []string{"ratings-v1", "ratings-v1b", "ratings-v2b"})
	awaitTakeover(t, killed, survivor, m.syncingNode)
	if failed, total := m.client.resetFailures(); len(failed) > 0 {
		t.Logf("the running client saw %v of %d RPCs fail while its node may have died", failed, total)
	}
}

func (m *consulMesh) outage(t *testing.T) {
	node := runningNodes(m.c)[0]
	m.agent.Stop(t)
	eventually(t, 30*time.Second, "navarch registry warns that Consul is stale", func() error {
		out := nodeCLI(t, m.c, node, "registry")
		if !strings.Contains(out.Stdout, "warning: source consul.dc1 is stale") || !strings.Contains(out.Stdout, "consul.dc1 (stale)") {
			return fmt.Errorf("navarch registry printed:\n%s%s", out.Stdout, out.Stderr)
		}
		return nil
	})
	// ... and so do navarch status and the metric an alert watches.
	if res := nodeCLI(t, m.c, node, "status"); res.Code != 1 || !strings.Contains(res.Stdout, "- registry source consul.dc1 is stale") {
		t.Errorf("navarch status with Consul down: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	nd, _ := m.c.Node(node)
	if _, metrics := get(nd.HTTP, "/metrics"); !strings.Contains(metrics, `navarch_registry_source_stale{source="consul.dc1"} 1`) {
		t.Errorf("/metrics with Consul down lacks navarch_registry_source_stale 1:\n%s", grepLines(metrics, "navarch_registry_source"))
	}
	m.expectEndpoints(node, []string{"ratings-v1", "ratings-v1b", "ratings-v2b"})
	if tl := m.calls(100); len(tl.Failed) > 0 || tl.By["ratings-v1"]+tl.By["ratings-v1b"] == 0 || tl.By["ratings-v2b"] == 0 {
		t.Fatalf("with Consul down, traffic should keep flowing to the last known instances: %v %v", tl.By, tl.Failed)
	}
	m.agent.Restart(t)
	// A restarted agent starts the TTL checks it had not persisted a state for as
	// critical; the applications' heartbeats make them pass again.
	for _, id := range []string{"ratings-v1", "ratings-v1b", "ratings-v2b"} {
		if err := m.consul.Agent().UpdateTTL(id+"-ttl", "ok", capi.HealthPassing); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 60*time.Second, "the source is fresh again", func() error {
		_, err := m.syncingNode(node)
		return err
	})
	if _, metrics := get(nd.HTTP, "/metrics"); !strings.Contains(metrics, `navarch_registry_source_stale{source="consul.dc1"} 0`) {
		t.Errorf("/metrics after the resync lacks navarch_registry_source_stale 0:\n%s", grepLines(metrics, "navarch_registry_source"))
	}
	if err := m.consul.Agent().ServiceDeregister("ratings-v1b"); err != nil {
		t.Fatal(err)
	}
	m.expectEndpoints(node, []string{"ratings-v1", "ratings-v2b"})
}
