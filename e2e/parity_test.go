package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/navarch/navarch/e2e/grpcapp"
	"github.com/navarch/navarch/internal/peers"
)

// startIstiod runs istiod-xds (e2e/peers/istio/istiod): Istio's own discovery
// server, in process as Istio's tests run it, serving the xDS istiod generates for
// config on a loopback port, which it returns. extra are more of its flags.
func startIstiod(t *testing.T, bin, addr, config string, extra ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--addr", addr, "--config", writeFile(t, t.TempDir(), "config.yaml", config)}, extra...)...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			lines := strings.Split(logs.String(), "\n")
			t.Logf("istiod-xds log (last 30 lines):\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				listening <- a
			}
		}
	}()
	select {
	case a := <-listening:
		return a
	case <-time.After(60 * time.Second):
		t.Fatal("istiod-xds did not start listening")
		return ""
	}
}

// staticService is service <name>.default.svc.cluster.local:9080 (GRPC) with the
// endpoints given (YAML flow mappings, see loopback), ending with a separator.
func staticService(name string, endpoints ...string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%[1]s.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [%s]
---
`, name, strings.Join(endpoints, ", "))
}

// loopback is an endpoint on 127.0.0.1:port, with more fields if given.
func loopback(port uint32, more ...string) string {
	return fmt.Sprintf("{address: 127.0.0.1, ports: {grpc: %d}%s}", port, strings.Join(append([]string{""}, more...), ", "))
}

// virtualService is the VirtualService of host <name> in default with these http
// routes (a YAML list indented by two).
func virtualService(name, http string) string {
	return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: " + name +
		", namespace: default}\nspec:\n  hosts: [" + name + "]\n  http:\n" + http
}

// parityScenario is configuration applied on top of the two reviews workloads, and
// the RPCs sent: n of them, with metadata md.
type parityScenario struct {
	name     string
	config   string
	labels   map[string]string // the client's
	locality string            // the client's
	ip       string            // the client's, in its node id: 127.0.0.2 by default
	target   string            // default: reviews
	rpcs     []parityRPCs
	// probe is the metadata of the RPC that must be answered before the batches
	// start (the client has its configuration): none by default.
	probe []string
	// tolerance, when set, is how far apart two shares may be (the flaky backend's
	// answers follow a cycle, not a coin: the binomial tolerance does not apply).
	tolerance float64
}

type parityRPCs struct {
	n     int
	md    []string
	pause time.Duration // before the batch
}

// TestSameTrafficAsIstiod applies the same Istio YAML to a navarch node and to
// istiod (Istio's own discovery server, istiod-xds) and sends the same RPCs with the
// same grpc-go xDS client through each: where the RPCs go and how they fail must
// agree, within sampling error where the split is random (compareTallies).
func TestSameTrafficAsIstiod(t *testing.T) {
	t.Parallel()
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	v1, v2 := startReviews(t)
	// ratings has one flaky backend, which answers one call in four: how many of
	// the RPCs to it succeed says how many times the client tried each.
	flaky, err := grpcapp.StartFlakyBackend("flaky", 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(flaky.Stop)
	base := workloadsYAML(v1, v2) + "---\n" + staticService("ratings", loopback(flaky.Port)) // without namespaces: "default" at both
	ratings := func(http string) string { return virtualService("ratings", http) }
	const ratingsTarget = "xds:///ratings.default.svc.cluster.local:9080"
	// zonedIn has v1 in locality a and v2 in locality b, and a DestinationRule
	// with locality load balancing (setting: more fields of its localityLbSetting)
	// and, if asked, outlier detection. zoned has v1 in the client's zone and v2 in
	// another region, and no more settings.
	zonedIn := func(a, b, setting string, outlierDetection bool) string {
		od := ""
		if outlierDetection {
			od = "\n    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}"
		}
		return staticService("zoned", loopback(v1.Port, "locality: "+a), loopback(v2.Port, "locality: "+b)) + fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: zoned}
spec:
  host: zoned
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: true%s}}%s
`, setting, od)
	}
	zoned := func(outlierDetection bool) string {
		return zonedIn("us-east/zone1", "us-west/zone2", "", outlierDetection)
	}
	// zonedByTheMesh is zoned with outlier detection and no localityLbSetting of its
	// own, under a mesh config of the given YAML (none if empty).
	zonedByTheMesh := func(mesh string) string {
		out := strings.Replace(zoned(true), "loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: true}}", "loadBalancer: {simple: ROUND_ROBIN}", 1)
		if mesh != "" {
			out += "---\n" + meshConfigMap(mesh)
		}
		return out
	}
	const zonedTarget = "xds:///zoned.default.svc.cluster.local:9080"
	// tiered has v1 labelled tier: a in the client's locality (us-east/zone1) and v2
	// labelled tier: b in another region, with failover by labels (failoverPriority,
	// a YAML list).
	tieredIn := func(a, b, priority string) string {
		return staticService("tiered", loopback(v1.Port, "labels: {tier: a}", "locality: "+a), loopback(v2.Port, "labels: {tier: b}", "locality: "+b)) + fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tiered}
spec:
  host: tiered
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: true, failoverPriority: %s}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
`, priority)
	}
	tiered := func(priority string) string { return tieredIn("us-east/zone1", "us-west/zone2", priority) }
	const tieredTarget = "xds:///tiered.default.svc.cluster.local:9080"
	// nearby has v1 in locality a and v2 in locality b, the traffic distribution
	// given (Istio's annotation), and more configuration if given.
	nearby := func(distribution, a, b, more string) string {
		return strings.Replace(staticService("nearby", loopback(v1.Port, "locality: "+a), loopback(v2.Port, "locality: "+b)),
			"metadata: {name: nearby}", "metadata: {name: nearby, annotations: {networking.istio.io/traffic-distribution: "+distribution+"}}", 1) + more
	}
	const nearbyTarget = "xds:///nearby.default.svc.cluster.local:9080"
	vs := func(http string) string { return virtualService("reviews", http) }
	// routingVS is a VirtualService of reviews in namespace routing, exported to
	// exportTo, sending everything to subset.
	routingVS := func(exportTo, subset string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: routing}
spec:
  hosts: [reviews.default.svc.cluster.local]
  exportTo: %s
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local, subset: %s}}]}]
`, exportTo, subset)
	}
	// details has both reviews workloads as endpoints; dr is the rest of a
	// DestinationRule (metadata and spec).
	const detailsTarget = "xds:///details.default.svc.cluster.local:9080"
	details := func(dr string) string {
		return staticService("details", loopback(v1.Port), loopback(v2.Port)) + "apiVersion: networking.istio.io/v1\nkind: DestinationRule" + dr
	}
	// perUser: RPCs of five users, each of whom a hash by x-user sends to one backend.
	var perUser []parityRPCs
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		perUser = append(perUser, parityRPCs{n: 30, md: []string{"x-user", u}})
	}
	scenarios := []parityScenario{
		{name: "no VirtualService", rpcs: []parityRPCs{{n: 1000}}},
		{name: "an 80/20 split", config: vs(`
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weight: 20
`), rpcs: []parityRPCs{{n: 2000}}},
		{name: "a header match", config: vs(`
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
`), rpcs: []parityRPCs{{n: 100, md: []string{"x-canary", "yes"}}, {n: 100, md: []string{"x-canary", "no"}}, {n: 100}}},
		{name: "a method prefix and a regex", config: vs(`
  - match: [{uri: {prefix: /grpc.testing.TestService/Empty}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {regex: "/grpc\\.testing\\.TestService/Unary.*"}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
`), rpcs: []parityRPCs{{n: 200}}},
		{name: "an abort fault", config: vs(`
  - fault: {abort: {httpStatus: 503, percentage: {value: 40}}}
    route: [{destination: {host: reviews, subset: v1}}]
`), rpcs: []parityRPCs{{n: 2000}}},
		{name: "a gRPC status abort on marked requests", config: vs(`
  - match: [{headers: {x-fail: {exact: "1"}}}]
    fault: {abort: {grpcStatus: PERMISSION_DENIED, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: 50
`), rpcs: []parityRPCs{{n: 100, md: []string{"x-fail", "1"}}, {n: 2000}}},
		{name: "header prefix, regex and absence", config: vs(`
  - match: [{headers: {x-user: {prefix: "admin-"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{headers: {x-user: {regex: "guest-[0-9]+"}}}]
    fault: {abort: {grpcStatus: UNAUTHENTICATED, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{withoutHeaders: {x-user: {}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 30
    - destination: {host: reviews, subset: v2}
      weight: 70
`), rpcs: []parityRPCs{{n: 50, md: []string{"x-user", "admin-1"}}, {n: 50, md: []string{"x-user", "guest-42"}},
			{n: 50}, {n: 2000, md: []string{"x-user", "someone"}}}},
		{name: "the client's labels and port", labels: map[string]string{"app": "frontend"}, config: vs(`
  - match: [{sourceLabels: {app: backend}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{sourceLabels: {app: frontend}, port: 9080}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
`), rpcs: []parityRPCs{{n: 100}}},
		// grpc-go does not count the injected delay against the route's timeout
		// (max_stream_duration): with both servers the slow RPCs succeed.
		{name: "a timeout shorter than an injected delay", config: vs(`
  - match: [{headers: {x-slow: {exact: "1"}}}]
    timeout: 100ms
    fault: {delay: {fixedDelay: 200ms, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - timeout: 2s
    fault: {delay: {fixedDelay: 20ms, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
`), rpcs: []parityRPCs{{n: 10, md: []string{"x-slow", "1"}}, {n: 20}}},
		// One call in four answered: 3 tries per RPC answer about half the RPCs, 4
		// all of them, 1 a quarter.
		{name: "Istio's default retries", target: ratingsTarget, rpcs: []parityRPCs{{n: 60}}, tolerance: 0.1},
		{name: "no retries", target: ratingsTarget, config: ratings(`
  - retries: {attempts: 0}
    route: [{destination: {host: ratings}}]
`), rpcs: []parityRPCs{{n: 100}}, tolerance: 0.1},
		{name: "three retries on unavailable", target: ratingsTarget, config: ratings(`
  - retries: {attempts: 3, retryOn: unavailable}
    route: [{destination: {host: ratings}}]
`), rpcs: []parityRPCs{{n: 30}}},
		{name: "retries on other codes only", target: ratingsTarget, config: ratings(`
  - retries: {attempts: 3, retryOn: "cancelled,resource-exhausted"}
    route: [{destination: {host: ratings}}]
`), rpcs: []parityRPCs{{n: 100}}, tolerance: 0.1},
		// The mesh config (Istio's ConfigMap): its defaultHttpRetryPolicy where no
		// VirtualService sets retries, and only there.
		{name: "the mesh config's default retries", target: ratingsTarget, config: meshConfigMap("defaultHttpRetryPolicy: {attempts: 3, retryOn: unavailable}"),
			rpcs: []parityRPCs{{n: 30}}},
		{name: "a VirtualService's retries before the mesh config's", target: ratingsTarget,
			config: meshConfigMap("defaultHttpRetryPolicy: {attempts: 3, retryOn: unavailable}") + "---\n" + ratings(`
  - retries: {attempts: 0}
    route: [{destination: {host: ratings}}]
`), rpcs: []parityRPCs{{n: 100}}, tolerance: 0.1},
		// Ring hash: both servers must configure the same ring, or the same user
		// would land on different backends.
		{name: "consistent hashing by header", target: "xds:///details.default.svc.cluster.local:9080", config: staticService("details", loopback(v1.Port), loopback(v2.Port)) + `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec:
  host: details
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
`, rpcs: []parityRPCs{{n: 30, md: []string{"x-user", "alice"}}, {n: 30, md: []string{"x-user", "bob"}},
			{n: 30, md: []string{"x-user", "carol"}}, {n: 30, md: []string{"x-user", "dave"}}, {n: 30, md: []string{"x-user", "erin"}}}},
		// Locality load balancing needs outlier detection, in Istio: with it, the
		// client's zone gets everything; without it, the split ignores localities.
		{name: "locality load balancing", locality: "us-east/zone1", target: zonedTarget,
			config: zoned(true), rpcs: []parityRPCs{{n: 200}}},
		{name: "localities without outlier detection", locality: "us-east/zone1", target: zonedTarget,
			config: zoned(false), rpcs: []parityRPCs{{n: 1000}}},
		// A DestinationRule without a localityLbSetting takes the mesh config's:
		// Istio's default (enabled), or off, or failover to a named region.
		{name: "the mesh's default locality load balancing", locality: "us-east/zone1", target: zonedTarget,
			config: zonedByTheMesh(""), rpcs: []parityRPCs{{n: 200}}},
		{name: "the mesh config turns locality load balancing off", locality: "us-east/zone1", target: zonedTarget,
			config: zonedByTheMesh("localityLbSetting: {enabled: false}"), rpcs: []parityRPCs{{n: 1000}}},
		// A service's traffic distribution needs no outlier detection; a
		// DestinationRule's localityLbSetting comes first.
		{name: "traffic distribution: the client's zone", locality: "us-east/zone1", target: nearbyTarget,
			config: nearby("PreferClose", "us-east/zone1", "us-east/zone2", ""), rpcs: []parityRPCs{{n: 200}}},
		{name: "traffic distribution: the client's sub-zone", locality: "us-east/zone1/rack2", target: nearbyTarget,
			config: nearby("PreferSameNode", "us-east/zone1/rack1", "us-east/zone1/rack2", ""), rpcs: []parityRPCs{{n: 200}}},
		{name: "traffic distribution under a DestinationRule that turns locality off", locality: "us-east/zone1", target: nearbyTarget,
			config: nearby("PreferClose", "us-east/zone1", "us-east/zone2", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nearby}
spec:
  host: nearby
  trafficPolicy: {loadBalancer: {localityLbSetting: {enabled: false}}}
`), rpcs: []parityRPCs{{n: 1000}}},
		// Outlier detection: the flaky backend (one answer in four) and a healthy
		// one behind one service. grpc-go ejects by success rate or failure
		// percentage only, which Istio's API cannot express: with istiod as with
		// navarch, consecutive errors eject nothing, even after an interval.
		{name: "outlier detection", target: "xds:///mixed.default.svc.cluster.local:9080", config: staticService("mixed", loopback(flaky.Port), loopback(v1.Port)) + `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mixed}
spec:
  host: mixed
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, consecutiveGatewayErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mixed}
spec:
  hosts: [mixed]
  http: [{retries: {attempts: 0}, route: [{destination: {host: mixed}}]}]
`, rpcs: []parityRPCs{{n: 400}, {n: 400, pause: 1500 * time.Millisecond}}, tolerance: 0.1},
		{name: "delegation", config: vs(`
  - match: [{uri: {prefix: /grpc.testing.TestService/}}]
    delegate: {name: reviews-grpc}
  - route: [{destination: {host: reviews, subset: v1}}]
`) + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-grpc, namespace: default}
spec:
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v2}}]
`, rpcs: []parityRPCs{{n: 50}, {n: 50, md: []string{"x-canary", "yes"}}}},
		{name: "relative weights", config: vs(`
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 120
    - destination: {host: reviews, subset: v2}
      weight: 30
`), rpcs: []parityRPCs{{n: 2000}}},
		// grpc-go routes on its request metadata, which holds no :authority: the
		// authority match holds through neither server.
		{name: "source namespace, case-insensitive method and authority matches", config: vs(`
  - match: [{sourceNamespace: other}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {exact: /GRPC.TESTING.TESTSERVICE/UNARYCALL}, ignoreUriCase: true, headers: {x-case: {exact: "1"}}}]
    fault: {abort: {grpcStatus: RESOURCE_EXHAUSTED, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{authority: {prefix: "reviews."}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v2}}]
`), rpcs: []parityRPCs{{n: 50, md: []string{"x-case", "1"}}, {n: 50}}},
		// Short names of the service's host in the dial target, as Kubernetes DNS
		// reads them, with the VirtualService's split applying to each.
		{name: "a short name in the dial target", target: "xds:///reviews:9080", config: vs(`
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weight: 20
`), rpcs: []parityRPCs{{n: 1000}}},
		{name: "name.namespace in the dial target", target: "xds:///reviews.default:9080", config: vs(`
  - route: [{destination: {host: reviews, subset: v2}}]
`), rpcs: []parityRPCs{{n: 50}}},
		{name: "name.namespace.svc in the dial target", target: "xds:///reviews.default.svc:9080", config: vs(`
  - route: [{destination: {host: reviews, subset: v1}}]
`), rpcs: []parityRPCs{{n: 50}}},
		// Service ports: the second of two, a target port, HTTP; a gateway-only
		// VirtualService does not apply to the mesh; an external service; a
		// VirtualService of the client's namespace for another namespace's service.
		{name: "the second port of a service", target: "xds:///multi.default.svc.cluster.local:9443", config: fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: multi}
spec:
  hosts: [multi.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: grpc, protocol: GRPC}, {number: 9443, name: grpc-alt, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: %d, grpc-alt: %d}}]
`, v1.Port, v2.Port), rpcs: []parityRPCs{{n: 20}}},
		{name: "a service port's target port", target: "xds:///tp.default.svc.cluster.local:80", config: fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tp}
spec:
  hosts: [tp.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: grpc, protocol: GRPC, targetPort: %d}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`, v2.Port), rpcs: []parityRPCs{{n: 20}}},
		{name: "an HTTP service port", target: "xds:///web.default.svc.cluster.local:8080", config: fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
`, v1.Port), rpcs: []parityRPCs{{n: 20}}},
		{name: "a VirtualService bound to a gateway only", config: vs(`
  - route: [{destination: {host: reviews, subset: v2}}]
`) + "  gateways: [edge]\n", rpcs: []parityRPCs{{n: 200}}},
		{name: "a VirtualService bound to a gateway and the mesh", config: vs(`
  - route: [{destination: {host: reviews, subset: v2}}]
`) + "  gateways: [edge, mesh]\n", rpcs: []parityRPCs{{n: 50}}},
		// Resolution NONE (a headless Kubernetes Service): proxyless clients
		// balance over the endpoints all the same.
		{name: "a ServiceEntry of resolution NONE", target: "xds:///headless.default.svc.cluster.local:9080", config: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: headless}
spec:
  hosts: [headless.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: NONE
  workloadSelector: {labels: {app: reviews}}
`, rpcs: []parityRPCs{{n: 1000}}},
		{name: "a MESH_EXTERNAL ServiceEntry", target: "xds:///ext.example.com:443", config: fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [ext.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]
`, v2.Port), rpcs: []parityRPCs{{n: 20}}},
		{name: "the client's namespace routes a service of another", target: "xds:///ratings2.team.svc.cluster.local:9080", config: fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings2, namespace: team}
spec:
  hosts: [ratings2.team.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: %d}, labels: {version: v1}}, {address: 127.0.0.1, ports: {grpc: %d}, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings2, namespace: team}
spec:
  host: ratings2.team.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings2, namespace: default}
spec:
  hosts: [ratings2.team.svc.cluster.local]
  http: [{route: [{destination: {host: ratings2.team.svc.cluster.local, subset: v2}}]}]
`, v1.Port, v2.Port), rpcs: []parityRPCs{{n: 50}}},
		// Locality weights, and failover from a region with no endpoints to the one
		// named; load balancers grpc-go has no such policy for (round robin, with
		// both).
		{name: "locality weights (distribute)", locality: "us-east/zone1", target: zonedTarget,
			config: zonedIn("us-east/zone1", "us-west/zone2", `, distribute: [{from: "us-east/*", to: {"us-east/zone1": 70, "us-west/zone2": 30}}]`, true),
			rpcs:   []parityRPCs{{n: 2000}}},
		{name: "a RANDOM load balancer", target: detailsTarget, config: details(`
metadata: {name: details}
spec:
  host: details
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
`), rpcs: []parityRPCs{{n: 1000}}},
		{name: "a PASSTHROUGH load balancer", target: detailsTarget, config: details(`
metadata: {name: details}
spec:
  host: details
  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
`), rpcs: []parityRPCs{{n: 1000}}},
		{name: "locality failover to another region", locality: "us-east/zone1", target: zonedTarget,
			config: zonedIn("us-central/zone3", "us-west/zone2", ", failover: [{from: us-east, to: us-west}]", true), rpcs: []parityRPCs{{n: 200}}},
		// Failover by labels (failoverPriority): the endpoints whose labels match the
		// client's on the listed keys come first, whatever their locality; a
		// "key=value" entry matches that value instead of the client's; the
		// locality's parts count as topology labels (v1's zone has the client's zone's
		// name, in another region).
		{name: "failover by the client's labels", locality: "us-east/zone1", labels: map[string]string{"tier": "b"}, target: tieredTarget,
			config: tiered("[tier]"), rpcs: []parityRPCs{{n: 200}}},
		{name: "failover by a label's given value", locality: "us-east/zone1", labels: map[string]string{"tier": "b"}, target: tieredTarget,
			config: tiered(`["tier=a"]`), rpcs: []parityRPCs{{n: 200}}},
		{name: "failover by labels, then by region", locality: "us-east/zone1", labels: map[string]string{"tier": "b"}, target: tieredTarget,
			config: tiered("[tier], failover: [{from: us-east, to: us-west}]"), rpcs: []parityRPCs{{n: 200}}},
		{name: "failover by zone, as a label", locality: "us-east/zone1", target: tieredTarget,
			config: tieredIn("us-west/zone1", "us-east/zone2", "[topology.kubernetes.io/zone]"), rpcs: []parityRPCs{{n: 200}}},
		// A client without labels of its own takes those of the workload registered
		// at its address.
		{name: "the labels of the workload at the client's address", ip: "127.0.0.3", config: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {role: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1}
spec: {address: 127.0.0.3, labels: {role: web, app: frontend}}
---
` + vs(`
  - match: [{sourceLabels: {app: frontend}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
`), rpcs: []parityRPCs{{n: 50}}},
		// Client TLS other than ISTIO_MUTUAL is not set up for grpc-go by either
		// (the RPCs reach the plaintext backends); a request limit is a circuit
		// breaker, which sequential RPCs never trip. Batches are large enough that
		// both backends are connected for most of them: a round robin counts only
		// ready ones.
		{name: "TLS SIMPLE toward a plaintext service", target: detailsTarget, config: details(`
metadata: {name: details}
spec:
  host: details
  trafficPolicy: {tls: {mode: SIMPLE}}
`), rpcs: []parityRPCs{{n: 400}}},
		{name: "TLS DISABLE", target: detailsTarget, config: details(`
metadata: {name: details}
spec:
  host: details
  trafficPolicy: {tls: {mode: DISABLE}}
`), rpcs: []parityRPCs{{n: 400}}},
		{name: "a request limit (http2MaxRequests)", target: detailsTarget, config: details(`
metadata: {name: details}
spec:
  host: details
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 1}}}
`), rpcs: []parityRPCs{{n: 400}}},
		// Which VirtualService a client in default sees: one exported from another
		// namespace, unless it is not exported there; its own namespace's first.
		{name: "a VirtualService exported from another namespace", config: routingVS(`["*"]`, "v2"), rpcs: []parityRPCs{{n: 100}}},
		{name: "a VirtualService not exported to the client", config: routingVS(`["."]`, "v2"), rpcs: []parityRPCs{{n: 1000}}},
		// The mesh config's default exportTo applies to one that sets none.
		{name: "a VirtualService kept home by the mesh config", config: routingVS(`[]`, "v2") + "---\n" + meshConfigMap(`defaultVirtualServiceExportTo: ["."]`),
			rpcs: []parityRPCs{{n: 1000}}},
		{name: "a VirtualService exported by the mesh config's default", config: routingVS(`[]`, "v2") + "---\n" + meshConfigMap(`defaultVirtualServiceExportTo: ["*"]`),
			rpcs: []parityRPCs{{n: 100}}},
		{name: "the client's namespace's VirtualService first", config: routingVS(`["*"]`, "v2") + "---\n" + vs(`
  - route: [{destination: {host: reviews, subset: v1}}]
`), rpcs: []parityRPCs{{n: 100}}},
		{name: "a VirtualService for every host of a namespace", config: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: everything, namespace: default}
spec:
  hosts: ["*.default.svc.cluster.local"]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]}]
`, rpcs: []parityRPCs{{n: 100}}},
		// A route to a subset no DestinationRule defines: its cluster does not
		// exist. Marked RPCs, on another route, show the client has its routes.
		{name: "a subset no DestinationRule names", probe: []string{"x-probe", "1"}, config: vs(`
  - match: [{headers: {x-probe: {exact: "1"}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v3}}]
`), rpcs: []parityRPCs{{n: 20}, {n: 20, md: []string{"x-probe", "1"}}}},
		// grpc-go leaves out routes that match query parameters.
		{name: "a query parameter match", config: vs(`
  - match: [{queryParams: {user: {exact: alice}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
`), rpcs: []parityRPCs{{n: 100}}},
		// Where a client finds the DestinationRule of a service: the client's
		// namespace, the service's, then the root namespace (istio-system);
		// port-level settings before the top level's.
		{name: "a DestinationRule in the root namespace", target: detailsTarget, config: details(`
metadata: {name: details, namespace: istio-system}
spec:
  host: details.default.svc.cluster.local
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
`), rpcs: perUser},
		{name: "a port's load balancer", target: detailsTarget, config: details(`
metadata: {name: details}
spec:
  host: details
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    portLevelSettings: [{port: {number: 9080}, loadBalancer: {consistentHash: {httpHeaderName: x-user}}}]
`), rpcs: perUser},
		{name: "a subset's own load balancer", config: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-all, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
`, rpcs: []parityRPCs{{n: 1000}}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			config := base
			if sc.config != "" {
				config += "---\n" + sc.config
			}
			istiod := startIstiod(t, bin, "127.0.0.1:0", config)
			node := startDevNode(t)
			applyServed(t, node, config)

			target := sc.target
			if target == "" {
				target = reviewsTarget
			}
			want := runParity(t, "istiod", istiod, target, sc, sc.rpcs)
			got := runParity(t, "navarch", node.XDS, target, sc, sc.rpcs)
			for i := range sc.rpcs {
				compareTallies(t, fmt.Sprintf("batch %d (%d RPCs, metadata %v)", i, sc.rpcs[i].n, sc.rpcs[i].md), want[i], got[i], sc.tolerance)
			}
		})
	}
}

// meshConfigMap is Istio's mesh ConfigMap holding the given mesh config (one line
// of flow-style YAML).
func meshConfigMap(mesh string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: '" + mesh + "'\n"
}

// runParity sends the batches through a grpc-go xDS client of server, once the
// client has its configuration: an RPC with the scenario's probe metadata (none
// by default) has been answered.
func runParity(t *testing.T, who, server, target string, sc parityScenario, batches []parityRPCs) []grpcapp.Tally {
	t.Helper()
	// The client's node id names an address no workload has (unless the scenario
	// says otherwise): istiod gives a proxy the labels of the workload registered at
	// its address even over its bootstrap's (navarch only to a proxy that sends
	// none), and the backends are all on 127.0.0.1.
	ip := sc.ip
	if ip == "" {
		ip = "127.0.0.2"
	}
	conn, err := grpcapp.Dial(grpcapp.BootstrapWith(grpcapp.BootstrapOptions{Servers: []string{server}, Namespace: "default",
		IP: ip, Labels: sc.labels, Locality: sc.locality}), target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 30*time.Second, who+" configures the client", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if tl := grpcapp.Call(ctx, conn, 1, sc.probe...); len(tl.By) == 0 {
			return fmt.Errorf("no answer: %v", tl.Failed)
		}
		return nil
	})
	var out []grpcapp.Tally
	for _, b := range batches {
		time.Sleep(b.pause)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out = append(out, grpcapp.Call(ctx, conn, b.n, b.md...))
		cancel()
	}
	return out
}

// compareTallies fails unless navarch's tally matches istiod's: a share that is 0
// or 100% at istiod must be the same at navarch; any other within fixed, or (a
// random split) within 4.5 standard deviations of the difference of two samples of
// the batch's size, which a correct split misses about once in 150,000 comparisons.
func compareTallies(t *testing.T, what string, istiod, navarch grpcapp.Tally, fixed float64) {
	t.Helper()
	share := func(tl grpcapp.Tally) map[string]float64 {
		m := map[string]float64{}
		for k, v := range tl.By {
			m["answered by "+k] = float64(v) / float64(tl.Total)
		}
		for c, v := range tl.Failed {
			m["failed "+c.String()] = float64(v) / float64(tl.Total)
		}
		return m
	}
	want, got := share(istiod), share(navarch)
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	for k := range keys {
		w, g := want[k], got[k]
		tol := 0.0
		switch {
		case w == 0 || w == 1:
		case fixed > 0:
			tol = fixed
		default:
			tol = 4.5 * math.Sqrt(w*(1-w)*(1/float64(istiod.Total)+1/float64(navarch.Total)))
		}
		if math.Abs(w-g) > tol {
			t.Errorf("%s: %s: istiod %.1f%%, navarch %.1f%% (tolerance %.1f points)\n  istiod:  %v %v\n  navarch: %v %v",
				what, k, 100*w, 100*g, 100*tol, istiod.By, istiod.Failed, navarch.By, navarch.Failed)
		}
	}
}

// xdsServerMesh is service <name>.default.svc.cluster.local:9090 with one
// xDS-managed gRPC server on port (app: <name>, service account <name>), followed
// by policies.
func xdsServerMesh(name string, port uint32, policies string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s}
spec:
  hosts: [%[1]s.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: %[1]s}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %[1]s-1}
spec: {address: 127.0.0.1, ports: {grpc: %[2]d}, labels: {app: %[1]s}, serviceAccount: %[1]s}
---
`, name, port) + policies
}

// serverThroughBoth starts, once against istiod (istiod-xds) and once against a
// navarch node, an xDS-managed gRPC server named name (with the certificates in
// certDir, if any) and the configuration mesh(its port), and waits until the server
// has its listener. It returns the two control planes' xDS addresses.
func serverThroughBoth(t *testing.T, bin, name, certDir string, labels map[string]string, mesh func(port uint32) string) (istiod, navarch string) {
	t.Helper()
	labels = maps.Clone(labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels["app"] = name
	serve := func(addr string) *grpcapp.Backend {
		b, err := grpcapp.StartXDSBackend(name, grpcapp.BootstrapWith(grpcapp.BootstrapOptions{Servers: []string{addr},
			Namespace: "default", Name: name + "-1", Labels: labels, CertDir: certDir}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Stop)
		return b
	}
	waitServing := func(who string, b *grpcapp.Backend) {
		eventually(t, 30*time.Second, who+" serves the "+name+" server", func() error {
			if !b.Serving() {
				return fmt.Errorf("not serving")
			}
			return nil
		})
	}
	istiod = freeAddr(t) // the server's bootstrap names it before istiod-xds starts
	atIstiod := serve(istiod)
	startIstiod(t, bin, istiod, mesh(atIstiod.Port))
	waitServing("istiod", atIstiod)

	node := startDevNode(t)
	atNavarch := serve(node.XDS)
	// The server is serving before the apply (navarch gives a server it has no
	// policies for a listener that lets everything in), so --wait: the RPCs that
	// follow must meet the policies, not the listener from before them.
	mustCLI(t, node.HTTP, "apply", "--wait", "-f", writeFile(t, t.TempDir(), name+".yaml", mesh(atNavarch.Port)))
	waitServing("navarch", atNavarch)
	return istiod, node.XDS
}

// guardedMesh is the guarded service and the AuthorizationPolicies on its server:
// requests need x-team a or b, and those with x-block: 1 are denied.
func guardedMesh(port uint32) string {
	return xdsServerMesh("guarded", port, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-blocked}
spec:
  selector: {matchLabels: {app: guarded}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/grpc.testing.TestService/UnaryCall]}}]
    when: [{key: "request.headers[x-block]", values: ["1"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: teams}
spec:
  selector: {matchLabels: {app: guarded}}
  action: ALLOW
  rules:
  - when: [{key: "request.headers[x-team]", values: [a, b]}]
`)
}

// TestSameAuthorizationAsIstiod: an xDS-managed gRPC server (xds.NewGRPCServer)
// gets its inbound listener, with RBAC from AuthorizationPolicies, from istiod and
// from navarch in turn; the same requests are allowed and denied through both.
func TestSameAuthorizationAsIstiod(t *testing.T) {
	t.Parallel()
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	const target = "xds:///guarded.default.svc.cluster.local:9090"
	batches := []parityRPCs{
		{n: 20, md: []string{"x-team", "a"}},
		{n: 20, md: []string{"x-team", "b", "x-block", "1"}},
		{n: 20, md: []string{"x-team", "c"}},
		{n: 20},
	}
	istiod, navarch := serverThroughBoth(t, bin, "guarded", "", nil, guardedMesh)
	probe := parityScenario{probe: []string{"x-team", "a"}}
	want := runParity(t, "istiod", istiod, target, probe, batches)
	got := runParity(t, "navarch", navarch, target, probe, batches)

	for i := range batches {
		compareTallies(t, fmt.Sprintf("batch %d (metadata %v)", i, batches[i].md), want[i], got[i], 0)
	}
	if want[0].By["guarded"] != 20 || want[2].Failed[codes.PermissionDenied] != 20 {
		t.Errorf("istiod did not enforce the policies as expected: %v", want)
	}

	// Istio's value forms (prefix*, *suffix, * for presence), notValues, methods
	// and path prefixes.
	const wildTarget = "xds:///wild.default.svc.cluster.local:9090"
	wildBatches := []parityRPCs{
		{n: 10, md: []string{"x-user", "admin-1"}},
		{n: 10, md: []string{"x-user", "admin-banned"}},
		{n: 10, md: []string{"x-user", "guest"}},
		{n: 10, md: []string{"x-tenant", "t1"}},
		{n: 10, md: []string{"x-env", "dev"}},
		{n: 10, md: []string{"x-env", "prod"}},
		{n: 10},
	}
	istiod, navarch = serverThroughBoth(t, bin, "wild", "", nil, wildMesh)
	probe = parityScenario{probe: []string{"x-user", "admin-1"}}
	want = runParity(t, "istiod", istiod, wildTarget, probe, wildBatches)
	got = runParity(t, "navarch", navarch, wildTarget, probe, wildBatches)
	for i := range wildBatches {
		compareTallies(t, fmt.Sprintf("wild: batch %d (metadata %v)", i, wildBatches[i].md), want[i], got[i], 0)
	}
	if want[0].By["wild"] != 10 || want[1].Failed[codes.PermissionDenied] != 10 || want[5].Failed[codes.PermissionDenied] != 10 {
		t.Errorf("istiod did not enforce the wild policies as expected: %v", want)
	}
}

// wildMesh is service wild, whose policies use Istio's value forms: a DENY of
// users "*-banned"; an ALLOW of POSTs under /grpc.testing.TestService/ by users
// "admin-*", of requests with any x-tenant, and of those with an x-env other than
// prod.
func wildMesh(port uint32) string {
	return xdsServerMesh("wild", port, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: banned}
spec:
  selector: {matchLabels: {app: wild}}
  action: DENY
  rules: [{when: [{key: "request.headers[x-user]", values: ["*-banned"]}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allowed}
spec:
  selector: {matchLabels: {app: wild}}
  action: ALLOW
  rules:
  - to: [{operation: {methods: [POST], paths: [/grpc.testing.TestService/*]}}]
    when: [{key: "request.headers[x-user]", values: ["admin-*"]}]
  - when: [{key: "request.headers[x-tenant]", values: ["*"]}]
  - to: [{operation: {notMethods: [POST]}}]
  - when: [{key: "request.headers[x-env]", values: ["*"], notValues: [prod]}]
`)
}

// secureCase is a variant of the secure mesh: its PeerAuthentication mode, whether
// the clients' DestinationRule sets ISTIO_MUTUAL, and whether the server carries
// Istio's security.istio.io/tlsMode: istio (as injected workloads do).
type secureCase struct {
	mode            string
	mutual, labeled bool
}

func (c secureCase) String() string {
	return fmt.Sprintf("%s (ISTIO_MUTUAL %v, tlsMode label %v)", c.mode, c.mutual, c.labeled)
}

// labels are the server's labels besides app.
func (c secureCase) labels() map[string]string {
	if c.labeled {
		return map[string]string{"security.istio.io/tlsMode": "istio"}
	}
	return nil
}

// secureMesh is the secure service, whose server denies the intruder's principal,
// as c says.
func secureMesh(c secureCase) func(port uint32) string {
	return func(port uint32) string {
		y := strings.Replace(secureMeshYAML(port), "mode: STRICT", "mode: "+c.mode, 1)
		if !c.mutual {
			y = strings.Replace(y, "\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}", "", 1)
		}
		if c.labeled {
			y = strings.Replace(y, "labels: {app: secure}, serviceAccount", "labels: {app: secure, security.istio.io/tlsMode: istio}, serviceAccount", 1)
		}
		return y
	}
}

func secureMeshYAML(port uint32) string {
	return xdsServerMesh("secure", port, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure}
spec:
  host: secure
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: secure}
spec:
  selector: {matchLabels: {app: secure}}
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-intruder}
spec:
  selector: {matchLabels: {app: secure}}
  action: DENY
  rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/intruder]}}]}]
`)
}

// TestSameMutualTLSAsIstiod: with certificates of one test CA, an xDS-managed
// server under STRICT and clients with ISTIO_MUTUAL take their TLS and RBAC from
// istiod and then from navarch: the same clients get through, the server sees the
// same identities, and the same are refused.
func TestSameMutualTLSAsIstiod(t *testing.T) {
	t.Parallel()
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	const target = "xds:///secure.default.svc.cluster.local:9090"
	ca, err := grpcapp.NewTestCA("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certs := map[string]string{}
	for _, sa := range []string{"secure", "frontend", "intruder"} {
		certs[sa] = filepath.Join(dir, sa)
		if err := ca.WriteWorkload(certs[sa], "default", sa); err != nil {
			t.Fatal(err)
		}
	}
	// through sends RPCs as each client through the control plane at addr, once
	// the probe client gets through.
	through := func(who, addr, probe string) map[string]grpcapp.Tally {
		out := map[string]grpcapp.Tally{}
		for _, client := range []string{"frontend", "intruder", "plaintext"} {
			opts := grpcapp.BootstrapOptions{Servers: []string{addr}, Namespace: "default", Name: client, IP: "127.0.0.2"}
			dial := grpcapp.Dial
			if client != "plaintext" {
				opts.CertDir = certs[client]
				dial = grpcapp.DialSecure
			}
			conn, err := dial(grpcapp.BootstrapWith(opts), target)
			if err != nil {
				t.Fatal(err)
			}
			if client == probe {
				eventually(t, 30*time.Second, who+": "+probe+" gets through", func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if tl := grpcapp.Call(ctx, conn, 1); len(tl.By) == 0 {
						return fmt.Errorf("%v", tl.Failed)
					}
					return nil
				})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			out[client] = grpcapp.Call(ctx, conn, 10)
			cancel()
			conn.Close()
		}
		return out
	}
	// Under STRICT the plaintext client fails. Under PERMISSIVE the server is
	// plaintext (grpc-go cannot serve both on one port), and so are the clients
	// without ISTIO_MUTUAL: all get through, none with an identity. A PERMISSIVE
	// server labelled with Istio's tlsMode takes mTLS only, as under STRICT.
	for _, c := range []secureCase{{"STRICT", true, false}, {"PERMISSIVE", false, false}, {"PERMISSIVE", true, true}} {
		istiod, navarch := serverThroughBoth(t, bin, "secure", certs["secure"], c.labels(), secureMesh(c))
		strict := c.mode == "STRICT" || c.labeled
		mode := c.String()
		probe := "frontend"
		if !strict {
			probe = "plaintext"
		}
		want := through("istiod", istiod, probe)
		got := through("navarch", navarch, probe)

		for _, client := range []string{"frontend", "intruder", "plaintext"} {
			compareTallies(t, mode+": "+client, want[client], got[client], 0)
			if fmt.Sprint(want[client].CallerAs) != fmt.Sprint(got[client].CallerAs) {
				t.Errorf("%s: %s: the server saw the caller as %v through istiod, %v through navarch", mode, client, want[client].CallerAs, got[client].CallerAs)
			}
		}
		if strict && (want["frontend"].CallerAs[spiffe("default", "frontend")] != 10 || want["intruder"].Failed[codes.PermissionDenied] != 10) {
			t.Errorf("%s: istiod did not enforce mTLS and the policy as expected: %v", mode, want)
		}
		if !strict && (want["plaintext"].By["secure"] != 10 || want["frontend"].By["secure"] != 10 || want["frontend"].CallerAs[""] != 10) {
			t.Errorf("%s: through istiod, the plaintext client: %v %v; frontend: %v %v %v", mode,
				want["plaintext"].By, want["plaintext"].Failed, want["frontend"].By, want["frontend"].Failed, want["frontend"].CallerAs)
		}
	}
}
