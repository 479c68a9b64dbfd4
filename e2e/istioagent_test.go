package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"google.golang.org/grpc"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/e2e/grpcapp"
	"github.com/navarch/navarch/internal/dnstest"
	"github.com/navarch/navarch/internal/peers"
	"github.com/navarch/navarch/node/devcluster"
)

// istioAgent is a pilot-agent process run as Istio runs it beside a proxyless gRPC
// application (DISABLE_ENVOY): from a working directory laid out like a pod's
// root, with the join token where it reads its Kubernetes token
// (./var/run/secrets/tokens/istio-token) and the mesh root where it finds the CA's
// (./var/run/secrets/istio/root-cert.pem).
type istioAgent struct {
	cmd       *exec.Cmd
	log       *bytes.Buffer
	certs     string // OUTPUT_CERTS: cert-chain.pem, key.pem, root-cert.pem
	bootstrap string // GRPC_XDS_BOOTSTRAP, written by the agent
}

func startIstioAgent(t *testing.T, bin, dir, token, rootPEM, node, ns, sa string, env ...string) *istioAgent {
	return startIstioAgentWith(t, bin, dir, token, rootPEM, node, ns, sa, istioAgentOptions{}, env...)
}

// istioAgentOptions are what startIstioAgentWith adds to startIstioAgent's agent.
type istioAgentOptions struct {
	// proxyConfig: more fields of PROXY_CONFIG (YAML flow fields,
	// "readinessProbe: {...}").
	proxyConfig string
	// resolvConf, a file that the agent reads as /etc/resolv.conf, the only
	// resolver configuration its DNS proxy reads: it runs in a mount namespace of
	// its own, where the file is bound over /etc/resolv.conf.
	resolvConf string
}

// startIstioAgentWith is startIstioAgent with options.
func startIstioAgentWith(t *testing.T, bin, dir, token, rootPEM, node, ns, sa string, o istioAgentOptions, env ...string) *istioAgent {
	t.Helper()
	files := map[string]string{"var/run/secrets/istio/root-cert.pem": rootPEM}
	if token != "" {
		files["var/run/secrets/tokens/istio-token"] = token
	}
	for name, content := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, name, content)
	}
	a := &istioAgent{log: &bytes.Buffer{}, certs: filepath.Join(dir, "certs"),
		bootstrap: filepath.Join(dir, "etc", "istio", "proxy", "grpc-bootstrap.json")}
	if err := os.MkdirAll(a.certs, 0o755); err != nil {
		t.Fatal(err)
	}
	// pilot-agent's status server listens on every interface and cannot be turned
	// off; the test holds its port on loopback, so the agent's listen fails (the
	// agent logs it and carries on) and nothing listens beyond loopback.
	status, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { status.Close() })
	statusPort := status.Addr().(*net.TCPAddr).Port
	a.cmd = exec.Command(bin, "proxy", "sidecar")
	if o.resolvConf != "" {
		// unshare and sh exec in turn: the process is pilot-agent's.
		a.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount --bind "$0" /etc/resolv.conf && exec "$@"`, o.resolvConf, bin, "proxy", "sidecar")
	}
	a.cmd.Dir = dir
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.Env = append(os.Environ(),
		"DISABLE_ENVOY=true",
		"CLOUD_PLATFORM=none", // no probing of cloud metadata servers
		"CA_ADDR="+node,
		// The configuration path is absolute so that the xDS socket named in the
		// bootstrap (unix:///<path>/XDS) is where the agent listens.
		fmt.Sprintf("PROXY_CONFIG={discoveryAddress: %q, configPath: %q, statusPort: %d%s}", node, filepath.Join(dir, "etc", "istio", "proxy"), statusPort, o.proxyConfig),
		"OUTPUT_CERTS="+a.certs,
		"GRPC_XDS_BOOTSTRAP="+a.bootstrap,
		"POD_NAMESPACE="+ns, "POD_NAME="+sa+"-istio-agent", "SERVICE_ACCOUNT="+sa,
		"TRUST_DOMAIN=cluster.local", "ISTIO_META_CLUSTER_ID=Kubernetes",
		"INSTANCE_IP=127.0.0.1",
	)
	a.cmd.Env = append(a.cmd.Env, env...)
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("pilot-agent log:\n%s", a.log.String())
		}
	})
	return a
}

// dial connects a grpc-go xDS client bootstrapped by the agent (its xDS proxy) to
// target.
func (a *istioAgent) dial(t *testing.T, target string) *grpc.ClientConn {
	t.Helper()
	boot, err := os.ReadFile(a.bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpcapp.DialSecure(boot, target)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestIstioAgentGetsItsCertificateAndConfigFromNavarch runs Istio's own pilot-agent,
// unmodified, against a navarch node, as it runs beside a proxyless gRPC workload:
// it authenticates to the node's CSR API (Istio's IstioCertificateService) with a
// join token, writes the certificate navarch signs for its identity, and proxies a
// grpc-go client's xDS to the node over mutual TLS with that certificate. The
// client, bootstrapped by the agent, calls a STRICT mTLS server, which sees the
// agent's identity.
func TestIstioAgentGetsItsCertificateAndConfigFromNavarch(t *testing.T) {
	bin := peers.Binary(t, "pilot-agent", "NAVARCH_PILOT_AGENT_BIN")
	c := startCluster(t, 1, "--auto-registration-grace", "2s")
	dir := t.TempDir()
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "groups.yaml", shopGroups))
	rootPEM := mustNodeCLI(t, c, "n1", "ca", "show", "-o", "pem")
	rootFile := writeFile(t, dir, "root.pem", rootPEM)
	n1, _ := c.Node("n1")

	server, err := grpcapp.StartXDSBackend("secure", grpcapp.BootstrapWith(grpcapp.BootstrapOptions{
		Servers: []string{n1.XDSTLS}, XDSOverTLS: true, Namespace: "shop", Name: "ratings-1",
		Labels: map[string]string{"app": "ratings"}, CertDir: certsFor(t, c, dir, "ratings", rootFile)}))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Stop()
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "mesh.yaml", grpcapp.StrictRatingsMesh("shop", server.Port)))

	token := strings.TrimSpace(mustNodeCLI(t, c, "n1", "token", "create", "--workload-group", "shop/frontend", "--ttl", "1h"))
	agent := startIstioAgent(t, bin, filepath.Join(dir, "agent"), token, rootPEM, n1.XDSTLS, "shop", "frontend")

	frontend := spiffe("shop", "frontend")
	var first *x509.Certificate
	eventually(t, 60*time.Second, "the agent's certificate", func() (err error) {
		first, err = agentCertificate(agent.certs, rootPEM, frontend)
		return err
	})
	conn := agent.dial(t, "xds:///ratings.shop.svc.cluster.local:9090")
	defer conn.Close()
	eventually(t, 60*time.Second, "mTLS RPCs through the agent's xDS", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if tl := grpcapp.Call(ctx, conn, 5); tl.By["secure"] != 5 || tl.CallerAs[frontend] != 5 {
			return fmt.Errorf("%v %v, server saw %v", tl.By, tl.Failed, tl.CallerAs)
		}
		return nil
	})

	// A VM's agent asks to be registered in its WorkloadGroup (Istio's
	// auto-registration): it is, while its xDS stream lasts, which pilot-agent opens
	// when the workload connects to its xDS proxy.
	t.Run("auto-registration in its WorkloadGroup", func(t *testing.T) {
		// Its readiness probe checks a port nothing listens on.
		_, closed, _ := net.SplitHostPort(freeAddr(t))
		probe := fmt.Sprintf(", readinessProbe: {tcpSocket: {host: 127.0.0.1, port: %s}, periodSeconds: 1}", closed)
		vm := startIstioAgentWith(t, bin, filepath.Join(dir, "autoreg"), token, rootPEM, n1.XDSTLS, "shop", "frontend", istioAgentOptions{proxyConfig: probe},
			"ISTIO_META_AUTO_REGISTER_GROUP=frontend", "ISTIO_META_NETWORK=vm-net")
		eventually(t, 60*time.Second, "the agent's certificate", func() error {
			_, err := agentCertificate(vm.certs, rootPEM, frontend)
			return err
		})
		conn := vm.dial(t, "xds:///ratings.shop.svc.cluster.local:9090")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		grpcapp.Call(ctx, conn, 1)
		const name = "frontend-127.0.0.1-vm-net"
		eventually(t, 30*time.Second, "the agent's WorkloadEntry, unhealthy by its probe", func() error {
			e, err := registeredEntry(t, c, name)
			if err == nil && (e.ServiceAccount != "frontend" || e.Address != "127.0.0.1" || e.Network != "vm-net" || e.Healthy) {
				err = fmt.Errorf("entry %+v", e)
			}
			return err
		})
		conn.Close()
		eventually(t, 30*time.Second, "the entry gone once the agent's stream ended", func() error {
			if _, err := registeredEntry(t, c, name); err == nil {
				return fmt.Errorf("%s is still registered", name)
			}
			return nil
		})
	})

	// A VM's agent with DNS capture (ISTIO_META_DNS_CAPTURE) answers name queries
	// from the name table navarch sends it: the mesh's host names resolve on a
	// machine whose own resolver knows none of them, and follow the configuration.
	// Only names in the table are asked for: the agent would forward any other to
	// the machine's resolver.
	t.Run("DNS proxying from the name table", func(t *testing.T) {
		dnsAddr := freeAddr(t)
		vm := startIstioAgent(t, bin, filepath.Join(dir, "dns"), token, rootPEM, n1.XDSTLS, "shop", "frontend",
			"ISTIO_META_DNS_CAPTURE=true", "DNS_PROXY_ADDR="+dnsAddr)
		eventually(t, 60*time.Second, "the agent's certificate", func() error {
			_, err := agentCertificate(vm.certs, rootPEM, frontend)
			return err
		})
		// reviews has an address; db, resolved by DNS, none: it is allocated one.
		entry := func(address string) string {
			return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  addresses: [%s]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.31}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
`, address)
		}
		// Applied and pushed (--wait) before the agent asks for its name table, which
		// it does once the workload's xDS client asks it for listeners.
		mustNodeCLI(t, c, "n1", "apply", "--wait", "-f", writeFile(t, dir, "reviews.yaml", entry("240.240.0.10")))
		conn := vm.dial(t, "xds:///ratings.shop.svc.cluster.local:9090")
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		grpcapp.Call(ctx, conn, 1)

		resolver := resolverAt(dnsAddr, "")
		resolves := func(host, want string) func() error {
			return func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				got, err := resolver.LookupHost(ctx, host)
				if err != nil {
					return err
				}
				if !slices.Equal(got, []string{want}) {
					return fmt.Errorf("%s resolves to %v", host, got)
				}
				return nil
			}
		}
		eventually(t, 60*time.Second, "reviews resolving to its address", resolves("reviews.shop.svc.cluster.local.", "240.240.0.10"))
		var reg client.RegistryListing
		if err := json.Unmarshal([]byte(mustNodeCLI(t, c, "n1", "registry", "-o", "json")), &reg); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(reg.Services, func(s client.ServiceListing) bool { return s.Host == "db.example.com" })
		if i < 0 || len(reg.Services[i].AutoAddresses) == 0 {
			t.Fatalf("db.example.com is not in the registry with an allocated address: %+v", reg.Services)
		}
		if err := resolves("db.example.com.", reg.Services[i].AutoAddresses[0])(); err != nil {
			t.Errorf("db, by its allocated address: %v", err)
		}
		mustNodeCLI(t, c, "n1", "apply", "--wait", "-f", writeFile(t, dir, "reviews.yaml", entry("240.240.0.11")))
		eventually(t, 30*time.Second, "reviews resolving to its new address", resolves("reviews.shop.svc.cluster.local.", "240.240.0.11"))
	})

	// navarch's agent answers DNS queries as pilot-agent's DNS proxy does, query
	// for query: both are fed their name table by the node and read the same
	// resolver configuration, a search list and a nameserver on 127.0.0.1:53 that
	// stands in for the machine's resolver (pilot-agent reads only
	// /etc/resolv.conf, so it runs where the test's file is bound over that).
	t.Run("navarch's agent answers DNS queries as pilot-agent's", func(t *testing.T) {
		if out, err := exec.Command("unshare", "--mount", "true").CombinedOutput(); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("a mount namespace for pilot-agent: unshare: %v %s", err, out)
			}
			t.Skipf("no mount namespace for pilot-agent here (unshare: %v %s)", err, out)
		}
		up := dnstest.Start(t, "127.0.0.1:53")
		conf := writeFile(t, dir, "resolv.conf", "nameserver 127.0.0.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n")
		mustNodeCLI(t, c, "n1", "apply", "--wait", "-f", writeFile(t, dir, "wild.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: shop}
spec:
  hosts: ["*.wild.example.com"]
  addresses: [240.240.1.1]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
`))
		istioAddr, navarchAddr := freeAddr(t), freeAddr(t)
		ia := startIstioAgentWith(t, bin, filepath.Join(dir, "dnsparity"), token, rootPEM, n1.XDSTLS, "shop", "frontend",
			istioAgentOptions{resolvConf: conf}, "ISTIO_META_DNS_CAPTURE=true", "DNS_PROXY_ADDR="+istioAddr)
		eventually(t, 60*time.Second, "the agent's certificate", func() error {
			_, err := agentCertificate(ia.certs, rootPEM, frontend)
			return err
		})
		conn := ia.dial(t, "xds:///ratings.shop.svc.cluster.local:9090")
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		grpcapp.Call(ctx, conn, 1)
		startAgent(t, []string{"agent", "run", "--token-file", writeFile(t, dir, "frontend.token", token),
			"--out", filepath.Join(dir, "navarch-agent"), "--server", n1.XDSTLS, "--ca-file", rootFile,
			"--group", "frontend", "--address", "127.0.0.1", "--dns-addr", navarchAddr, "--dns-resolv-conf", conf})
		for _, addr := range []string{istioAddr, navarchAddr} {
			eventually(t, 60*time.Second, "the name table at "+addr, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				got, err := resolverAt(addr, "").LookupHost(ctx, "x.wild.example.com.")
				if err == nil && !slices.Equal(got, []string{"240.240.1.1"}) {
					err = fmt.Errorf("x.wild.example.com resolves to %v", got)
				}
				return err
			})
		}
		drain := func() (names []string) {
			for {
				select {
				case n := <-up.Queries:
					names = append(names, n)
				default:
					return names
				}
			}
		}
		drain()
		type q struct {
			name string
			qt   dnsmessage.Type
		}
		var queries []q
		for _, name := range []string{"reviews.shop.svc.cluster.local.", "REVIEWS.Shop.svc.cluster.local.", "db.example.com.",
			"db.example.com.shop.svc.cluster.local.", "db.example.com.svc.cluster.local.",
			"reviews.shop.svc.cluster.local.shop.svc.cluster.local.", "x.wild.example.com.", "a.b.wild.example.com.shop.svc.cluster.local.",
			"unknown.example.org.", "unknown.example.org.shop.svc.cluster.local."} {
			queries = append(queries, q{name, dnsmessage.TypeA}, q{name, dnsmessage.TypeAAAA})
		}
		queries = append(queries, q{"db.example.com.", dnsmessage.TypeMX}, q{"reviews.shop.svc.cluster.local.", dnsmessage.TypeTXT})
		for _, network := range []string{"udp", "tcp"} {
			for _, q := range queries {
				istio, err := dnsExchange(istioAddr, network, q.name, q.qt)
				if err != nil {
					t.Fatalf("pilot-agent, %s %v over %s: %v", q.name, q.qt, network, err)
				}
				istioUp := drain()
				navarch, err := dnsExchange(navarchAddr, network, q.name, q.qt)
				if err != nil {
					t.Fatalf("navarch's agent, %s %v over %s: %v", q.name, q.qt, network, err)
				}
				if navarchUp := drain(); istio != navarch || !slices.Equal(istioUp, navarchUp) {
					t.Errorf("%s %v over %s:\npilot-agent:     %s (asked upstream: %q)\nnavarch's agent: %s (asked upstream: %q)",
						q.name, q.qt, network, istio, istioUp, navarch, navarchUp)
				}
			}
		}
	})

	// A VM's agent renews with the certificate it holds (PROV_CERT), with no token:
	// navarch takes the caller's identity from its client certificate.
	t.Run("renewal with the certificate it holds", func(t *testing.T) {
		prov := filepath.Join(dir, "provisioned")
		if err := os.CopyFS(prov, os.DirFS(agent.certs)); err != nil {
			t.Fatal(err)
		}
		vm := startIstioAgent(t, bin, filepath.Join(dir, "vm"), "", rootPEM, n1.XDSTLS, "shop", "frontend", "PROV_CERT="+prov)
		eventually(t, 60*time.Second, "the renewed certificate", func() error {
			renewed, err := agentCertificate(vm.certs, rootPEM, frontend)
			if err != nil {
				return err
			}
			if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
				return fmt.Errorf("the agent wrote the certificate it was given, not a new one")
			}
			return nil
		})
	})
}

// registeredEntry returns the WorkloadEntry of source vm named name, as node n1
// lists it, or an error saying what it lists.
func registeredEntry(t *testing.T, c *devcluster.Cluster, name string) (client.EndpointListing, error) {
	var reg client.RegistryListing
	res := nodeCLI(t, c, "n1", "registry", "-o", "json")
	if res.Code != 0 {
		return client.EndpointListing{}, fmt.Errorf("navarch registry: exit %d: %s", res.Code, res.Stderr)
	}
	if err := json.Unmarshal([]byte(res.Stdout), &reg); err != nil {
		return client.EndpointListing{}, err
	}
	var all []client.EndpointListing
	for _, s := range reg.Services {
		all = append(all, s.Endpoints...)
	}
	for _, e := range append(all, reg.Unselected...) {
		if e.Name == name && e.Source == "vm" {
			return e, nil
		}
	}
	return client.EndpointListing{}, fmt.Errorf("no entry %s of source vm in %+v", name, append(all, reg.Unselected...))
}

// agentCertificate reads the leaf certificate an agent wrote to dir and checks
// that it is for identity and chains to the mesh root.
func agentCertificate(dir, rootPEM, identity string) (*x509.Certificate, error) {
	chain, err := os.ReadFile(filepath.Join(dir, "cert-chain.pem"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "root-cert.pem")); err != nil {
		return nil, err
	}
	leaf, err := readPEMCert(chain)
	if err != nil {
		return nil, fmt.Errorf("cert-chain.pem: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != identity {
		return nil, fmt.Errorf("certificate for %v, want %s", leaf.URIs, identity)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(rootPEM))
	inter.AppendCertsFromPEM(chain)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("the certificate does not chain to the mesh root: %v", err)
	}
	return leaf, nil
}

// dnsExchange asks the DNS server at addr, over network, for name of type qt, and
// returns its response as text: the header's code and flags, then the answers,
// aliases in their order and other records sorted (a proxy shuffles addresses).
func dnsExchange(addr, network, name string, qt dnsmessage.Type) (string, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 4242, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: qt, Class: dnsmessage.ClassINET})
	query, _ := b.Finish()
	resp, err := dnstest.Exchange(network, addr, query)
	if err != nil {
		return "", err
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		return "", err
	}
	if m.ID != 4242 || len(m.Questions) != 1 || m.Questions[0].Name.String() != name {
		return "", fmt.Errorf("a response to another query: %+v", m)
	}
	var aliases, records []string
	for _, a := range m.Answers {
		r := fmt.Sprintf("%s %d %v", a.Header.Name, a.Header.TTL, a.Body)
		if a.Header.Type == dnsmessage.TypeCNAME {
			aliases = append(aliases, r)
		} else {
			records = append(records, r)
		}
	}
	slices.Sort(records)
	return fmt.Sprintf("%v aa=%v tc=%v rd=%v ra=%v %q", m.RCode, m.Authoritative, m.Truncated, m.RecursionDesired, m.RecursionAvailable,
		append(aliases, records...)), nil
}
