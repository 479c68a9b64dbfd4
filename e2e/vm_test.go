package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/navarch/navarch/agent"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/e2e/grpcapp"
	"github.com/navarch/navarch/node/devcluster"
)

const vmHost = "ratings.vms.svc.cluster.local"

// vmGroupYAML is the WorkloadGroup of one version of ratings' VMs (%[1]s), whose
// workloads serve gRPC on port %[2]d and are ready while its health service says so
// (a gRPC health check by exec, navarch at %[3]s: Istio's WorkloadGroup has no
// gRPC probe). The check starts navarch, which on a loaded host (or built with the
// race detector) may take longer than the default timeout of 1 s.
const vmGroupYAML = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings-%[1]s, namespace: vms}
spec:
  metadata: {labels: {app: ratings}}
  template: {serviceAccount: ratings, labels: {version: %[1]s}, ports: {grpc: %[2]d}}
  probe: {exec: {command: [%[3]s, agent, check, "grpc:127.0.0.1:%[2]d"]}, periodSeconds: 1, timeoutSeconds: 5, failureThreshold: 2}
`

const vmMeshYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: vms}
spec:
  hosts: [ratings.vms.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: vms}
spec:
  host: ratings.vms.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: vms}
spec:
  hosts: [ratings.vms.svc.cluster.local]
  http:
  - route:
    - {destination: {host: ratings.vms.svc.cluster.local, subset: v1}, weight: 50}
    - {destination: {host: ratings.vms.svc.cluster.local, subset: v2}, weight: 50}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: reviews, namespace: vms}
spec:
  template: {serviceAccount: reviews}
`

// vmMesh is the state of TestVMAutoRegistration: a cluster, the VMs' gRPC servers
// (all on loopback, told apart by port) and their agents.
type vmMesh struct {
	t        *testing.T
	c        *devcluster.Cluster
	dir      string
	servers  string // the nodes' TLS addresses, for the agents
	rootFile string
	backends map[string]*grpcapp.Backend // by version
	agents   map[string]*agentProc       // by version
	// dnsAddr is where v1's agent's DNS proxy listens; noUpstream, the resolver it
	// passes other names to, where nothing listens.
	dnsAddr, noUpstream string
	// statusAddr is where v2's agent serves its status.
	statusAddr string
}

// TestVMAutoRegistration: VMs whose agents hold a join token of their WorkloadGroup
// register themselves (Istio's auto-registration) and take traffic by the
// VirtualService; a VM failing its readiness probe is taken out of load balancing and
// put back when it passes; the node a VM's agent is connected to is killed and the VM
// stays registered throughout, held by another node; a VM whose agent dies leaves the
// registry after the grace period; registering in another identity's group, or a
// group that does not exist, is refused.
func TestVMAutoRegistration(t *testing.T) {
	t.Parallel()
	m := &vmMesh{t: t, dir: t.TempDir(), backends: map[string]*grpcapp.Backend{}, agents: map[string]*agentProc{}}
	m.c = startCluster(t, 3, "--auto-registration-grace", "2s")
	var servers []string
	for _, n := range m.c.Nodes() {
		servers = append(servers, n.XDSTLS)
	}
	m.servers = strings.Join(servers, ",")
	m.rootFile = writeFile(t, m.dir, "root.pem", mustNodeCLI(t, m.c, "n1", "ca", "show", "-o", "pem"))
	var docs []string
	for _, v := range []string{"v1", "v2"} {
		b, err := grpcapp.StartBackend("ratings-" + v)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Stop)
		m.backends[v] = b
		docs = append(docs, fmt.Sprintf(vmGroupYAML, v, b.Port, navarchBin))
	}
	mustNodeCLI(t, m.c, "n1", "apply", "-f", writeFile(t, m.dir, "mesh.yaml", strings.Join(append(docs, vmMeshYAML), "---\n")))
	// v1's agent runs a DNS proxy; names it does not know go to a port where nothing
	// answers.
	m.dnsAddr, m.noUpstream = freeAddr(t), freeAddr(t)
	// Its resolver configuration has a search domain, which the proxy answers
	// mesh names in (--dns-upstream overrides its nameserver).
	resolvConf := writeFile(t, m.dir, "resolv.conf", "nameserver 127.0.0.1\nsearch corp.example.internal\n")
	m.agents["v1"] = m.configuredAgent("ratings-v1", "--dns-addr", m.dnsAddr, "--dns-upstream", m.noUpstream, "--dns-resolv-conf", resolvConf)
	m.statusAddr = freeAddr(t)
	m.agents["v2"] = m.configuredAgent("ratings-v2", "--status-addr", m.statusAddr)

	t.Run("VMs register themselves and take traffic by the VirtualService", m.split)
	t.Run("a VM's agent resolves the mesh's names", m.dns)
	t.Run("a VM failing its probe gets no traffic until it passes", m.probe)
	t.Run("a WorkloadGroup's changes reach its running VMs", m.groupChange)
	t.Run("a VM whose node is killed stays registered, taken over by another node", m.nodeDies)
	t.Run("a VM whose agent dies leaves the registry after the grace period", m.agentDies)
	t.Run("registering as another identity's group or an unknown group is refused", m.refusals)
}

// configuredAgent runs `navarch agent run` for a VM of group (in namespace vms) as
// `navarch agent configure` sets it up: the nodes, a join token, the roots and the
// group's probe.
func (m *vmMesh) configuredAgent(group string, extra ...string) *agentProc {
	m.t.Helper()
	dir := filepath.Join(m.dir, group)
	mustNodeCLI(m.t, m.c, runningNodes(m.c)[0], "agent", "configure", "--workload-group", "vms/"+group, "--out", dir, "--dir", dir)
	conf := readFile(m.t, filepath.Join(dir, "agent.yaml"))
	for _, want := range append(strings.Split(m.servers, ","), "probe: exec:"+navarchBin+" agent check grpc:127.0.0.1:", "probe-period: 1s", "probe-failures: 2", "probe-from-group: true") {
		if !strings.Contains(conf, want) {
			m.t.Fatalf("agent.yaml of %s does not have %q:\n%s", group, want, conf)
		}
	}
	return startAgent(m.t, append([]string{"agent", "run", "--config", filepath.Join(dir, "agent.yaml"), "--address", "127.0.0.1"}, extra...))
}

// dns: the DNS proxy of v1's agent answers for ratings, a ServiceEntry without
// addresses, with the address allocated to it (which the registry shows), over UDP
// and TCP; a name the mesh does not have goes to the upstream resolver (here none
// answers, so the lookup fails).
func (m *vmMesh) dns(t *testing.T) {
	var reg client.RegistryListing
	if err := json.Unmarshal([]byte(mustNodeCLI(t, m.c, runningNodes(m.c)[0], "registry", "-o", "json")), &reg); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range reg.Services {
		if s.Host == vmHost && len(s.AutoAddresses) > 0 {
			want = s.AutoAddresses[:1]
		}
	}
	if want == nil {
		t.Fatalf("%s has no allocated address: %+v", vmHost, reg.Services)
	}
	for _, network := range []string{"udp", "tcp"} {
		r := resolverAt(m.dnsAddr, network)
		eventually(t, 30*time.Second, "ratings resolving over "+network, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := r.LookupHost(ctx, vmHost+".")
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("%s resolves to %v, want %v", vmHost, got, want)
			}
			return err
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The name in the first search domain, where a resolver looks first: an
	// alias of the mesh name, answered with its addresses.
	if cname, err := resolverAt(m.dnsAddr, "").LookupCNAME(ctx, vmHost+".corp.example.internal."); err != nil || cname != vmHost+"." {
		t.Errorf("%s in the search domain: CNAME %q %v, want %s.", vmHost, cname, err, vmHost)
	}
	if got, err := resolverAt(m.dnsAddr, "").LookupHost(ctx, vmHost+".corp.example.internal."); err != nil || !slices.Equal(got, want) {
		t.Errorf("%s in the search domain resolves to %v %v, want %v", vmHost, got, err, want)
	}
	if got, err := resolverAt(m.dnsAddr, "").LookupHost(ctx, "unknown.example.org."); err == nil {
		t.Errorf("a name the mesh does not have resolved to %v, with no upstream resolver answering", got)
	}
}

// startAgent runs `navarch agent run` for a VM of group (in namespace vms) whose
// server listens on port, with a join token of tokenGroup.
func (m *vmMesh) startAgent(tokenGroup, group string, port uint32) *agentProc {
	m.t.Helper()
	token := strings.TrimSpace(mustNodeCLI(m.t, m.c, runningNodes(m.c)[0], "token", "create", "--workload-group", "vms/"+tokenGroup, "--ttl", "1h"))
	out := filepath.Join(m.dir, group+"-"+fmt.Sprint(port))
	return startAgent(m.t, []string{"agent", "run", "--token-file", writeFile(m.t, m.dir, group+".token", token),
		"--out", out, "--server", m.servers, "--ca-file", m.rootFile, "--group", group, "--address", "127.0.0.1",
		"--probe", fmt.Sprintf("grpc:127.0.0.1:%d", port), "--probe-period", "200ms", "--probe-failures", "2"})
}

// endpoints returns ratings' endpoints as node name lists them, by name.
func (m *vmMesh) endpoints(name string) (map[string]client.EndpointListing, error) {
	res := nodeCLI(m.t, m.c, name, "registry", "-o", "json")
	if res.Code != 0 {
		return nil, fmt.Errorf("navarch registry: exit %d: %s", res.Code, res.Stderr)
	}
	var reg client.RegistryListing
	if err := json.Unmarshal([]byte(res.Stdout), &reg); err != nil {
		return nil, err
	}
	eps := map[string]client.EndpointListing{}
	for _, s := range reg.Services {
		if s.Host == vmHost {
			for _, e := range s.Endpoints {
				eps[e.Name] = e
			}
		}
	}
	return eps, nil
}

// expect waits until node name lists exactly the VMs of versions for ratings, from
// source vm, with the unhealthy ones marked.
func (m *vmMesh) expect(name string, versions []string, unhealthy ...string) {
	m.t.Helper()
	eventually(m.t, 30*time.Second, fmt.Sprintf("%s lists VMs %v (unhealthy %v)", name, versions, unhealthy), func() error {
		eps, err := m.endpoints(name)
		if err != nil {
			return err
		}
		if len(eps) != len(versions) {
			return fmt.Errorf("endpoints %v", eps)
		}
		for _, v := range versions {
			e, ok := eps["ratings-"+v+"-127.0.0.1"]
			if !ok {
				return fmt.Errorf("no entry ratings-%s-127.0.0.1 in %v", v, eps)
			}
			if e.Source != "vm" || e.Labels["version"] != v || e.Labels["app"] != "ratings" || e.Ports["grpc"] != m.backends[v].Port {
				return fmt.Errorf("entry of %s: %+v", v, e)
			}
			if e.Healthy == strings.Contains(strings.Join(unhealthy, ","), v) {
				return fmt.Errorf("%s healthy=%v", v, e.Healthy)
			}
		}
		return nil
	})
}

// calls sends n RPCs through a client of node name and returns where they went.
func (m *vmMesh) calls(name string, n int) grpcapp.Tally {
	m.t.Helper()
	return callsVia(m.t, m.c, name, "xds:///"+vmHost+":9080", n)
}

func (m *vmMesh) split(t *testing.T) {
	for _, n := range m.c.Names() {
		m.expect(n, []string{"v1", "v2"})
	}
	if st := m.status(t, true); !strings.Contains(m.servers, st.RegisteredWith) || st.RegisteredWith == "" || st.Identity != "spiffe://cluster.local/ns/vms/sa/ratings" ||
		st.WorkloadHealthy == nil || !*st.WorkloadHealthy {
		t.Errorf("v2's agent's status %+v, want registered with a node, healthy", st)
	}
	tl := m.calls("n2", 1000)
	v1, v2 := tl.Share("ratings-v1"), tl.Share("ratings-v2")
	t.Logf("1000 RPCs: v1 %.1f%%, v2 %.1f%%, failed %v", 100*v1, 100*v2, tl.Failed)
	if len(tl.Failed) > 0 || math.Abs(v1-0.5) > 0.06 || math.Abs(v2-0.5) > 0.06 {
		t.Fatalf("split v1 %.3f v2 %.3f failed %v, want 50/50 within 6 points and no failures", v1, v2, tl.Failed)
	}
}

// status returns what v2's agent's status server shows, once /healthz/ready says
// ready (or, without wantReady, not).
func (m *vmMesh) status(t *testing.T, wantReady bool) agent.Status {
	t.Helper()
	var st agent.Status
	eventually(t, 30*time.Second, fmt.Sprintf("v2's agent ready %t", wantReady), func() error {
		resp, err := http.Get("http://" + m.statusAddr + "/healthz/ready")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ready := resp.StatusCode == http.StatusOK; ready != wantReady {
			return fmt.Errorf("/healthz/ready: %d %s", resp.StatusCode, body)
		}
		resp, err = http.Get("http://" + m.statusAddr + "/debug/status")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&st)
	})
	return st
}

func (m *vmMesh) probe(t *testing.T) {
	v2 := m.backends["v2"]
	v2.SetHealthy(false)
	m.expect("n1", []string{"v1", "v2"}, "v2")
	if st := m.status(t, true); st.WorkloadHealthy == nil || *st.WorkloadHealthy || !strings.Contains(st.HealthMessage, "NOT_SERVING") {
		t.Errorf("v2's agent's status %+v, want its workload unhealthy, as its probe says", st)
	}
	eventually(t, 30*time.Second, "no RPC reaches the VM failing its probe", func() error {
		before := v2.Calls()
		tl := m.calls("n3", 200)
		if got := v2.Calls() - before; got > 0 || tl.By["ratings-v1"] == 0 {
			return fmt.Errorf("%d of 200 RPCs reached v2: %v %v", got, tl.By, tl.Failed)
		}
		return nil
	})
	v2.SetHealthy(true)
	m.expect("n1", []string{"v1", "v2"})
	eventually(t, 30*time.Second, "the VM gets traffic again once its probe passes", func() error {
		if tl := m.calls("n3", 100); tl.By["ratings-v2"] == 0 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
}

// groupChange: a WorkloadGroup changed while its VMs run reaches them: the probe
// their agents (which follow it, as agent configure sets them up), the template
// their entries. v2's group probing a port where nothing listens takes v2 out of
// load balancing, and a label added to its template is on v2's entry; its first
// spec again brings it back. Deleting the group removes v2's entry until it is
// applied again.
func (m *vmMesh) groupChange(t *testing.T) {
	_, closed, _ := net.SplitHostPort(freeAddr(t)) // nothing listens there
	group := fmt.Sprintf(vmGroupYAML, "v2", m.backends["v2"].Port, navarchBin)
	probeLine := regexp.MustCompile(`(?m)^  probe: .*$`)
	if !probeLine.MatchString(group) {
		t.Fatalf("no probe in the group:\n%s", group)
	}
	changed := probeLine.ReplaceAllString(group, fmt.Sprintf("  probe: {tcpSocket: {port: %s}, periodSeconds: 1, failureThreshold: 1}", closed))
	if changed = strings.Replace(changed, "labels: {version: v2}", "labels: {version: v2, tier: gold}", 1); !strings.Contains(changed, "tier: gold") {
		t.Fatalf("no template labels in the group:\n%s", group)
	}
	tier := func(want string) {
		t.Helper()
		eventually(t, 30*time.Second, fmt.Sprintf("v2's entry with tier %q", want), func() error {
			eps, err := m.endpoints("n3")
			if got := eps["ratings-v2-127.0.0.1"].Labels["tier"]; err != nil || got != want {
				return fmt.Errorf("tier %q, %v", got, err)
			}
			return nil
		})
	}
	mustNodeCLI(t, m.c, "n2", "apply", "-f", writeFile(t, m.dir, "ratings-v2-closed.yaml", changed))
	m.expect("n1", []string{"v1", "v2"}, "v2")
	tier("gold")
	if log := m.agents["v2"].logged(); !strings.Contains(log, fmt.Sprintf("probe=tcp:127.0.0.1:%s", closed)) {
		t.Errorf("v2's agent did not log the group's new probe:\n%s", log)
	}
	mustNodeCLI(t, m.c, "n2", "apply", "-f", writeFile(t, m.dir, "ratings-v2.yaml", group))
	m.expect("n1", []string{"v1", "v2"})
	tier("")

	// Deleted, the group takes v2's entry with it; applied again, it brings it back
	// (v2's agent stays connected throughout).
	mustNodeCLI(t, m.c, "n2", "delete", "workloadgroup", "ratings-v2", "-n", "vms")
	m.expect("n1", []string{"v1"})
	mustNodeCLI(t, m.c, "n2", "apply", "-f", writeFile(t, m.dir, "ratings-v2.yaml", group))
	m.expect("n1", []string{"v1", "v2"})
}

var registeredLine = regexp.MustCompile(`msg=registered .*server=(\S+)`)

// registeredAt returns the TLS addresses of the nodes the agent registered through,
// in order.
func registeredAt(a *agentProc) []string {
	var out []string
	for _, m := range registeredLine.FindAllStringSubmatch(a.logged(), -1) {
		out = append(out, m[1])
	}
	return out
}

func (m *vmMesh) nodeOf(tlsAddr string) string {
	for _, n := range m.c.Nodes() {
		if n.XDSTLS == tlsAddr {
			return n.Name
		}
	}
	m.t.Fatalf("no node serves TLS on %s", tlsAddr)
	return ""
}

func (m *vmMesh) nodeDies(t *testing.T) {
	a := m.agents["v1"]
	at := registeredAt(a)
	if len(at) == 0 {
		t.Fatalf("the v1 agent logged no registration:\n%s", a.logged())
	}
	victim := m.nodeOf(at[len(at)-1])
	if err := m.c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s, which held v1's registration", victim)
	survivor := runningNodes(m.c)[0]
	// Watch the registry for five grace periods: v1 is listed throughout.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		eps, err := m.endpoints(survivor)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := eps["ratings-v1-127.0.0.1"]; !ok {
			t.Fatalf("v1 left the registry after its node died: %v\nagent log:\n%s", eps, a.logged())
		}
		time.Sleep(200 * time.Millisecond)
	}
	at = registeredAt(a)
	if now := m.nodeOf(at[len(at)-1]); now == victim {
		t.Fatalf("the agent's last registration is still through %s: %v", victim, at)
	}
	tl := m.calls(survivor, 200)
	if tl.By["ratings-v1"] == 0 || len(tl.Failed) > 0 {
		t.Fatalf("after the node died: %v %v, want v1 still served", tl.By, tl.Failed)
	}
}

func (m *vmMesh) agentDies(t *testing.T) {
	a := m.agents["v2"]
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	survivor := runningNodes(m.c)[0]
	m.expect(survivor, []string{"v1"})
	// The VirtualService still sends half the RPCs to subset v2, which now has no
	// endpoint: those fail, as they would with istiod; none reaches the VM gone.
	v2 := m.backends["v2"]
	eventually(t, 30*time.Second, "no RPC reaches the VM gone", func() error {
		before := v2.Calls()
		if tl := m.calls(survivor, 100); v2.Calls() > before || tl.By["ratings-v1"] == 0 {
			return fmt.Errorf("%d RPCs reached v2: %v %v", v2.Calls()-before, tl.By, tl.Failed)
		}
		return nil
	})
}

func (m *vmMesh) refusals(t *testing.T) {
	port := m.backends["v1"].Port
	for _, tc := range []struct{ group, want string }{
		{"reviews", `service account \"ratings\", the group's workloads are \"reviews\"`},
		{"nope", "WorkloadGroup vms/nope: no such WorkloadGroup"},
	} {
		a := m.startAgent("ratings-v1", tc.group, port)
		eventually(t, 30*time.Second, "the refusal in the agent's log", func() error {
			if !strings.Contains(a.logged(), tc.want) {
				return fmt.Errorf("no %q in:\n%s", tc.want, a.logged())
			}
			return nil
		})
		if at := registeredAt(a); len(at) > 0 {
			t.Errorf("the agent of group %s says it registered through %v", tc.group, at)
		}
	}
	m.expect(runningNodes(m.c)[0], []string{"v1"})
}

// TestVMOfANodeCutOffFromItsQuorum: the two other nodes of a VM's node stop (SIGSTOP:
// its proxies still reach it, its Raft peers do not answer). It cannot renew the
// lease its registrations hang on, so it ends the VM's registration stream with
// Unavailable rather than hold a registration that may be expiring; once its peers
// are back the VM is registered again and every node lists it.
func TestVMOfANodeCutOffFromItsQuorum(t *testing.T) {
	c := startCluster(t, 3, "--auto-registration-grace", "2s")
	dir := t.TempDir()
	b, err := grpcapp.StartBackend("ratings-v1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "mesh.yaml", fmt.Sprintf(vmGroupYAML, "v1", b.Port, navarchBin)+"---\n"+vmMeshYAML))
	token := strings.TrimSpace(mustNodeCLI(t, c, "n1", "token", "create", "--workload-group", "vms/ratings-v1", "--ttl", "1h"))
	var servers []string
	for _, n := range c.Nodes() { // n1 first: the agent registers through it
		servers = append(servers, n.XDSTLS)
	}
	a := startAgent(t, []string{"agent", "run", "--token-file", writeFile(t, dir, "token", token), "--out", filepath.Join(dir, "certs"),
		"--server", strings.Join(servers, ","), "--ca-file", writeFile(t, dir, "root.pem", mustNodeCLI(t, c, "n1", "ca", "show", "-o", "pem")),
		"--group", "ratings-v1", "--address", "127.0.0.1"})
	eventually(t, 30*time.Second, "the VM registered through n1", func() error {
		if at := registeredAt(a); len(at) != 1 || at[0] != servers[0] {
			return fmt.Errorf("registered through %v\n%s", at, a.logged())
		}
		return nil
	})

	var stopped []int
	resume := func() {
		for _, pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
		stopped = nil
	}
	t.Cleanup(resume) // before the cluster's own cleanup stops the nodes
	for _, name := range []string{"n2", "n3"} {
		nd, _ := c.Node(name)
		if err := syscall.Kill(nd.PID, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped = append(stopped, nd.PID)
	}
	eventually(t, 30*time.Second, "n1 ends the registration it can no longer keep", func() error {
		if !strings.Contains(a.logged(), "cut off from its quorum") {
			return fmt.Errorf("agent log:\n%s", a.logged())
		}
		return nil
	})

	resume()
	eventually(t, 60*time.Second, "the VM registered again once the quorum is back", func() error {
		if at := registeredAt(a); len(at) < 2 {
			return fmt.Errorf("registered through %v\n%s", at, a.logged())
		}
		return nil
	})
	for _, name := range c.Names() {
		eventually(t, 30*time.Second, name+" lists the VM", func() error {
			res := nodeCLI(t, c, name, "registry", "-o", "json", "--source", "vm")
			var reg client.RegistryListing
			if err := json.Unmarshal([]byte(res.Stdout), &reg); err != nil {
				return fmt.Errorf("%v: %s", err, res.Stderr)
			}
			for _, s := range reg.Services {
				for _, e := range s.Endpoints {
					if e.Name == "ratings-v1-127.0.0.1" && e.Healthy {
						return nil
					}
				}
			}
			return fmt.Errorf("no healthy ratings-v1-127.0.0.1 in %+v", reg.Services)
		})
	}
}
