package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/navarch/navarch/e2e/grpcapp"
)

const reviewsTarget = "xds:///reviews.default.svc.cluster.local:9080"

// workloadsYAML registers two real gRPC servers as WorkloadEntries behind a
// ServiceEntry that selects them, with DestinationRule subsets by version.
func workloadsYAML(v1, v2 *grpcapp.Backend) string {
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v1
spec:
  address: 127.0.0.1
  ports: {grpc: %d}
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v2
spec:
  address: 127.0.0.1
  ports: {grpc: %d}
  labels: {app: reviews, version: v2}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - {number: 9080, name: grpc, protocol: GRPC}
  resolution: STATIC
  workloadSelector:
    labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
`, v1.Port, v2.Port)
}

// startReviews starts the two reviews backends, v1 and v2, stopped when the test
// ends.
func startReviews(t *testing.T) (v1, v2 *grpcapp.Backend) {
	t.Helper()
	start := func(name string) *grpcapp.Backend {
		b, err := grpcapp.StartBackend(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Stop)
		return b
	}
	return start("v1"), start("v2")
}

func splitVS(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: %d
    - destination: {host: reviews, subset: v2}
      weight: %d
`, v1, v2)
}

// TestSingleNodeRoutesRealTraffic is the single-node tour: apply Istio YAML with the
// CLI, and check where a grpc-go xDS client's RPCs go.
func TestSingleNodeRoutesRealTraffic(t *testing.T) {
	node := startDevNode(t)
	api := node.HTTP
	v1, v2 := startReviews(t)

	dir := t.TempDir()
	writeFile(t, dir, "workloads.yaml", workloadsYAML(v1, v2))
	writeFile(t, dir, "virtualservice.yaml", splitVS(80, 20))
	out := mustCLI(t, api, "apply", "-f", dir)
	for _, want := range []string{"serviceentry.networking.istio.io/reviews created", "virtualservice.networking.istio.io/reviews created"} {
		if !strings.Contains(out, want) {
			t.Fatalf("apply printed %q, want a line %q", out, want)
		}
	}
	if out := mustCLI(t, api, "apply", "-f", dir); !strings.Contains(out, "virtualservice.networking.istio.io/reviews unchanged") {
		t.Fatalf("re-apply printed %q, want unchanged", out)
	}
	// What a proxy of any class would get, without one connected.
	for _, tt := range []struct{ args, want, not string }{
		{"-n default", `"reviews.default.svc.cluster.local:9080"`, `"virtualOutbound"`},
		{"-n default --generator envoy --labels app=web", `"virtualOutbound"`, `"apiListener"`},
		{"-n default --generator envoy --type router --labels istio=ingressgateway", `"outbound|9080||reviews.default.svc.cluster.local"`, `"virtualOutbound"`},
		// With DNS capture, the name table, where reviews has its allocated address.
		{"-n default --generator envoy --metadata DNS_CAPTURE=true", `"240.240.`, `"apiListener"`},
	} {
		out := mustCLI(t, api, append([]string{"proxy-config"}, strings.Fields(tt.args)...)...)
		if !strings.Contains(out, tt.want) || strings.Contains(out, tt.not) {
			t.Errorf("proxy-config %s: want %s and not %s in\n%.400s", tt.args, tt.want, tt.not, out)
		}
	}

	conn, err := grpcapp.Dial(grpcapp.Bootstrap([]string{node.XDS}, "default", nil), reviewsTarget)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("80/20 split", func(t *testing.T) {
		tally := grpcapp.Call(ctx, conn, 2000)
		if len(tally.Failed) > 0 {
			t.Fatalf("RPCs failed: %v", tally.Failed)
		}
		if got := tally.Share("v1"); math.Abs(got-0.80) > 0.04 {
			t.Fatalf("v1 answered %.3f of 2000 RPCs, want 0.80±0.04 (%v)", got, tally.By)
		}
	})

	t.Run("0/100 moves all traffic to v2", func(t *testing.T) {
		// --wait returns once the connected client has taken the change.
		out := mustCLI(t, api, "apply", "--wait", "-f", writeFile(t, dir, "virtualservice.yaml", splitVS(0, 100)))
		m := regexp.MustCompile(`revision (\d+) taken by 1 of 1 proxies \(1 nodes\)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("apply --wait printed %q", out)
		}
		// proxy-status shows the client at that revision, every type acknowledged,
		// and the xDS client it runs.
		if ps := mustCLI(t, api, "proxy-status"); !regexp.MustCompile(`\s` + m[1] + `\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED\s+0\s+gRPC Go ` + regexp.QuoteMeta(grpc.Version) + `\n`).MatchString(ps) {
			t.Fatalf("proxy-status printed\n%s\nwant the client at revision %s, synced, on grpc-go %s", ps, m[1], grpc.Version)
		}
		// version counts it too, beside the node's build.
		if v := mustCLI(t, api, "version"); !regexp.MustCompile(`^client version: (\S+)\ncontrol plane version: (\S+) \(navarch\)\ndata plane version: gRPC Go ` +
			regexp.QuoteMeta(grpc.Version) + ` \(1 proxy\)\n$`).MatchString(v) {
			t.Fatalf("version printed\n%s", v)
		}
		// proxy-config's views: the client's route comes from the VirtualService, to
		// the subsets' clusters.
		if out := mustCLI(t, api, "proxy-config", "routes"); !regexp.MustCompile(`(?m)^outbound\|9080\|\|reviews\.default\.svc\.cluster\.local\s+reviews\.default\.svc\.cluster\.local:9080\s+reviews \+\d+ more\s+/\*\s+reviews\.default$`).MatchString(out) {
			t.Fatalf("proxy-config routes printed\n%s", out)
		}
		if out := mustCLI(t, api, "proxy-config", "clusters", "--fqdn", "reviews", "--subset", "v2"); !regexp.MustCompile(`(?m)\Areviews\.default\.svc\.cluster\.local\s+9080\s+v2\s+outbound\s+EDS\s+-$`).MatchString(strings.SplitN(out, "\n", 2)[1]) {
			t.Fatalf("proxy-config clusters --subset v2 printed\n%s", out)
		}
		if out := mustCLI(t, api, "wait", "vs", "reviews"); !strings.Contains(out, "taken by 1 of 1 proxies") {
			t.Fatalf("wait printed %q", out)
		}
		eventually(t, 30*time.Second, "all RPCs on v2", func() error {
			if tl := grpcapp.Call(ctx, conn, 50); tl.By["v2"] != 50 {
				return fmt.Errorf("%v %v", tl.By, tl.Failed)
			}
			return nil
		})
		if tl := grpcapp.Call(ctx, conn, 500); tl.By["v2"] != 500 {
			t.Fatalf("after 0/100: %v %v, want all 500 on v2", tl.By, tl.Failed)
		}
	})

	t.Run("header match sends marked RPCs to v2 only", func(t *testing.T) {
		mustCLI(t, api, "apply", "-f", writeFile(t, dir, "virtualservice.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        x-canary: {exact: "true"}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
`))
		eventually(t, 30*time.Second, "unmarked RPCs on v1", func() error {
			if tl := grpcapp.Call(ctx, conn, 50); tl.By["v1"] != 50 {
				return fmt.Errorf("%v %v", tl.By, tl.Failed)
			}
			return nil
		})
		if tl := grpcapp.Call(ctx, conn, 300, "x-canary", "true"); tl.By["v2"] != 300 {
			t.Fatalf("marked RPCs: %v %v, want all 300 on v2", tl.By, tl.Failed)
		}
		if tl := grpcapp.Call(ctx, conn, 300); tl.By["v1"] != 300 {
			t.Fatalf("unmarked RPCs: %v %v, want all 300 on v1", tl.By, tl.Failed)
		}
	})

	t.Run("abort fault fails its share with its status", func(t *testing.T) {
		mustCLI(t, api, "apply", "-f", writeFile(t, dir, "virtualservice.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - fault:
      abort:
        httpStatus: 500
        percentage: {value: 30}
    route:
    - destination: {host: reviews, subset: v1}
`))
		eventually(t, 30*time.Second, "aborts injected", func() error {
			if tl := grpcapp.Call(ctx, conn, 50); tl.Failed[codes.Unknown] == 0 {
				return fmt.Errorf("%v %v", tl.By, tl.Failed)
			}
			return nil
		})
		tl := grpcapp.Call(ctx, conn, 2000)
		failed := float64(tl.Failed[codes.Unknown]) / float64(tl.Total)
		if math.Abs(failed-0.30) > 0.04 || len(tl.Failed) != 1 {
			t.Fatalf("failures %v of %d (%.3f Unknown), want 0.30±0.04 failing with Unknown (HTTP 500) and no other code", tl.Failed, tl.Total, failed)
		}
		if tl.By["v2"] != 0 {
			t.Fatalf("answers %v, want only v1", tl.By)
		}
	})

	t.Run("delay fault delays RPCs", func(t *testing.T) {
		const delay = 250 * time.Millisecond
		mustCLI(t, api, "apply", "-f", writeFile(t, dir, "virtualservice.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        x-slow: {exact: "1"}
    fault:
      delay:
        fixedDelay: 250ms
        percentage: {value: 100}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
`))
		eventually(t, 30*time.Second, "delayed RPCs on v2", func() error {
			start := time.Now()
			tl := grpcapp.Call(ctx, conn, 1, "x-slow", "1")
			if tl.By["v2"] != 1 || time.Since(start) < delay {
				return fmt.Errorf("%v %v after %s", tl.By, tl.Failed, time.Since(start))
			}
			return nil
		})
		for i := 0; i < 5; i++ {
			start := time.Now()
			tl := grpcapp.Call(ctx, conn, 1, "x-slow", "1")
			if took := time.Since(start); tl.By["v2"] != 1 || took < delay {
				t.Fatalf("delayed RPC %d: %v %v took %s, want an answer from v2 after at least %s", i, tl.By, tl.Failed, took, delay)
			}
		}
	})

	t.Run("invalid YAML is refused and changes nothing", func(t *testing.T) {
		before := mustCLI(t, api, "get", "vs", "reviews", "-o", "yaml")
		bad := writeFile(t, dir, "bad.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: -10
    - destination: {host: reviews, subset: v2}
      weight: 30
`)
		res := cli(t, api, "apply", "-f", bad)
		if res.Code == 0 {
			t.Fatalf("apply of a negative weight exited 0: %s", res.Stdout)
		}
		for _, want := range []string{"VirtualService default/reviews", "spec.http[0].route[0].weight", "bad.yaml"} {
			if !strings.Contains(res.Stderr, want) {
				t.Fatalf("error %q does not name %q", res.Stderr, want)
			}
		}
		if n := strings.Count(strings.TrimSpace(res.Stderr), "\n"); n > 3 {
			t.Fatalf("the error should be short, got %d lines: %s", n+1, res.Stderr)
		}
		res = cli(t, api, "apply", "-f", writeFile(t, dir, "unknown.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  htp: []\n"))
		if res.Code == 0 || !strings.Contains(res.Stderr, `unknown field "htp"`) {
			t.Fatalf("unknown field: exit %d, stderr %q", res.Code, res.Stderr)
		}
		if after := mustCLI(t, api, "get", "vs", "reviews", "-o", "yaml"); after != before {
			t.Fatalf("a refused apply changed the stored VirtualService:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("metrics: Istio's names for pushes, and the etcd member's own", func(t *testing.T) {
		code, body := get(api, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		// What Istio's control plane dashboard and its alerts read: pushes (and why
		// and how long each took, how big), proxies, services, the build, the CA's
		// expiry.
		for _, want := range []string{"\npilot_xds_pushes{", "\npilot_xds ", "\npilot_proxy_convergence_time_bucket{", "\netcd_server_has_leader 1\n", "\ngo_goroutines ",
			"\npilot_push_triggers{type=\"config\"} ", "\npilot_push_triggers{type=\"service\"} ", "\npilot_xds_push_time_bucket{type=\"lds\",",
			"\npilot_xds_config_size_bytes_bucket{type=\"type.googleapis.com/envoy.config.listener.v3.Listener\",",
			"\npilot_services ", "\npilot_virt_services 1\n", "\npilot_debounce_time_bucket{", "\npilot_pushcontext_init_seconds_bucket{", "\npilot_proxy_queue_time_bucket{", "\npilot_total_xds_internal_errors 0\n", "\nistio_build{component=\"pilot\",tag=\"",
			"\ncitadel_server_cert_chain_expiry_seconds "} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics has no %q", strings.TrimSpace(want))
			}
		}
		_, after, _ := strings.Cut(body, "\ncitadel_server_root_cert_expiry_timestamp ")
		line, _, _ := strings.Cut(after, "\n")
		if at, err := strconv.ParseFloat(line, 64); err != nil || at < float64(time.Now().AddDate(1, 0, 0).Unix()) {
			t.Errorf("citadel_server_root_cert_expiry_timestamp %q, want the self-signed root's expiry, years ahead", line)
		}
	})

	t.Run("dry run says what apply would do and changes nothing", func(t *testing.T) {
		before := mustCLI(t, api, "get", "vs", "reviews", "-o", "yaml")
		out := mustCLI(t, api, "apply", "--dry-run", "-f", writeFile(t, dir, "dry.yaml", splitVS(37, 63)))
		if !strings.Contains(out, "virtualservice.networking.istio.io/reviews configured (dry run)") {
			t.Fatalf("apply --dry-run printed %q", out)
		}
		if after := mustCLI(t, api, "get", "vs", "reviews", "-o", "yaml"); after != before {
			t.Fatalf("a dry run changed the VirtualService:\n%s\nto\n%s", before, after)
		}
	})

	t.Run("get of several kinds", func(t *testing.T) {
		out := mustCLI(t, api, "get", "vs,dr")
		if !strings.Contains(out, "VirtualService") || !strings.Contains(out, "DestinationRule") {
			t.Fatalf("get vs,dr printed %q", out)
		}
	})

	t.Run("the mesh config: Istio's ConfigMap in, bad ones refused", func(t *testing.T) {
		cm := writeFile(t, dir, "istio-configmap.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    connectTimeout: 5s
    extensionProviders:
    - name: opa
      envoyExtAuthzGrpc: {service: opa.authz.svc.cluster.local, port: 9191}
`)
		if out := mustCLI(t, api, "apply", "-f", cm); !strings.Contains(out, "meshconfig.navarch.io/istio created") {
			t.Fatalf("apply of the mesh ConfigMap printed %q", out)
		}
		if out := mustCLI(t, api, "get", "meshconfig"); !strings.Contains(out, "providers=opa") {
			t.Fatalf("get meshconfig printed %q", out)
		}
		before := mustCLI(t, api, "get", "mesh", "istio", "-o", "yaml")
		for _, bad := range []struct{ mesh, want string }{
			{"connectTimeout: 2h", "data.mesh.connectTimeout: must be between 1ms and 1h0m0s"},
			{"extensionProviders: [{name: opa, envoyExtAuthzGrpc: {service: opa.authz.svc.cluster.local}}]", "data.mesh.extensionProviders[0].envoyExtAuthzGrpc.port"},
			{"trustDomain: other.example", `trustDomain: "other.example" is not the mesh's trust domain "cluster.local"`},
		} {
			res := cli(t, api, "apply", "-f", writeFile(t, dir, "bad-mesh.yaml",
				"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: '"+bad.mesh+"'\n"))
			if res.Code == 0 || !strings.Contains(res.Stderr, bad.want) || !strings.Contains(res.Stderr, "MeshConfig istio-system/istio") {
				t.Errorf("apply of %q: exit %d, stderr %q; want an error naming %q", bad.mesh, res.Code, res.Stderr, bad.want)
			}
		}
		if after := mustCLI(t, api, "get", "mesh", "istio", "-o", "yaml"); after != before {
			t.Fatalf("a refused mesh config changed the stored one:\n%s\nto\n%s", before, after)
		}
		mustCLI(t, api, "delete", "-f", cm)
	})

	t.Run("an EnvoyFilter patches Envoy proxies, not proxyless ones; a bad one is refused", func(t *testing.T) {
		ef := writeFile(t, dir, "envoyfilter.yaml", `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: limits, namespace: istio-system}
spec:
  configPatches:
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND, cluster: {service: reviews.default.svc.cluster.local}}
    patch: {operation: MERGE, value: {per_connection_buffer_limit_bytes: 32768}}
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua, default_source_code: {inline_string: "function envoy_on_request(h) end"}}
`)
		if out := mustCLI(t, api, "apply", "-f", ef); !strings.Contains(out, "envoyfilter.networking.istio.io/limits created") {
			t.Fatalf("apply printed %q", out)
		}
		eventually(t, 30*time.Second, "the sidecar's clusters patched", func() error {
			out := mustCLI(t, api, "proxy-config", "-n", "default", "--generator", "envoy", "--labels", "app=web")
			if !strings.Contains(out, "perConnectionBufferLimitBytes") || !strings.Contains(out, "envoy.filters.http.lua") {
				return fmt.Errorf("no patch in %.300s", out)
			}
			return nil
		})
		if out := mustCLI(t, api, "proxy-config", "-n", "default"); strings.Contains(out, "perConnectionBufferLimitBytes") {
			t.Errorf("proxyless gRPC got the EnvoyFilter's patch:\n%.400s", out)
		}
		if tl := grpcapp.Call(ctx, conn, 100); len(tl.Failed) > 0 {
			t.Fatalf("RPCs failed with an EnvoyFilter applied: %v", tl.Failed)
		}
		before := mustCLI(t, api, "get", "envoyfilter", "limits", "-n", "istio-system", "-o", "yaml")
		res := cli(t, api, "apply", "-f", writeFile(t, dir, "bad-envoyfilter.yaml", `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: limits, namespace: istio-system}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: ADD, value: {name: lua, typed_config: {"@type": type.googleapis.com/envoy.config.filter.http.lua.v2.Lua}}}
`))
		if res.Code == 0 || !strings.Contains(res.Stderr, "EnvoyFilter istio-system/limits: spec.configPatches[0].patch.value") ||
			!strings.Contains(res.Stderr, "v2 types are gone") {
			t.Errorf("apply of a bad EnvoyFilter: exit %d, stderr %q", res.Code, res.Stderr)
		}
		if after := mustCLI(t, api, "get", "envoyfilter", "limits", "-n", "istio-system", "-o", "yaml"); after != before {
			t.Fatalf("a refused EnvoyFilter changed the stored one:\n%s\nto\n%s", before, after)
		}
		mustCLI(t, api, "delete", "-f", ef)
	})

	t.Run("delete by file and by name", func(t *testing.T) {
		out := mustCLI(t, api, "delete", "--wait", "-f", writeFile(t, dir, "virtualservice.yaml", splitVS(50, 50)))
		if !strings.Contains(out, "virtualservice.networking.istio.io/reviews deleted") || !strings.Contains(out, "taken by 1 of 1 proxies") {
			t.Fatalf("delete --wait printed %q", out)
		}
		if res := cli(t, api, "get", "vs", "reviews"); res.Code == 0 {
			t.Fatalf("get after delete exited 0: %s", res.Stdout)
		}
		mustCLI(t, api, "delete", "destinationrule", "reviews")
		if out := mustCLI(t, api, "get", "dr"); !strings.Contains(out, "No resources found") {
			t.Fatalf("get dr after delete printed %q", out)
		}
	})
}

// TestDNSServiceEntryReachesItsEndpoint: a proxyless gRPC client reaches a DNS
// ServiceEntry's endpoint by its host name, on the port the endpoint maps the
// service port to (grpc-go resolves the LOGICAL_DNS cluster itself).
func TestDNSServiceEntryReachesItsEndpoint(t *testing.T) {
	node := startDevNode(t)
	_, v2 := startReviews(t)
	mustCLI(t, node.HTTP, "apply", "-f", writeFile(t, t.TempDir(), "named.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: named}
spec:
  hosts: [named.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: DNS
  endpoints: [{address: localhost, ports: {grpc: %d}}]
`, v2.Port)))
	conn, err := grpcapp.Dial(grpcapp.Bootstrap([]string{node.XDS}, "default", nil), "xds:///named.default.svc.cluster.local:9080")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 30*time.Second, "RPCs answered by the endpoint localhost names", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if tl := grpcapp.Call(ctx, conn, 20); tl.By["v2"] != 20 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
}
