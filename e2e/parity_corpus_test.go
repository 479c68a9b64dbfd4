package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/navarch/navarch/internal/corpus"
	"github.com/navarch/navarch/internal/peers"
)

// corpusNamespace finds the namespaces a corpus file's resources name.
var corpusNamespace = regexp.MustCompile(`(?m)^\s+namespace:\s*([a-z0-9-]+)\s*$`)

// chainFieldsNotCompared are the filter chain fields TestSameEnvoyConfigForTheCorpusAsIstiod
// leaves out: stat prefixes and access logs (which TestSameStatNamesAsIstiod and the
// access log tests compare), and two fields istiod sets to Envoy's defaults
// (use_remote_address false, request_id_extension UUID with trace sampling).
var chainFieldsNotCompared = regexp.MustCompile(`(^|\.)(statPrefix|accessLog|useRemoteAddress|requestIdExtension)(\.|\[|$)`)

// chainFields describes every filter chain of ls (the default chain too) field by
// field (protoFields), by its listener and match: its name, match, transport
// socket (TLS, and where the certificates come from) and filters.
func chainFields(t *testing.T, ls map[string]*listenerv3.Listener) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for name, l := range ls {
		for _, fc := range append(slices.Clone(l.FilterChains), l.DefaultFilterChain) {
			if fc == nil {
				continue
			}
			match, err := protojson.Marshal(fc.GetFilterChainMatch())
			if err != nil {
				t.Fatal(err)
			}
			var m any // protojson's spacing is not stable: normalise it
			if err := json.Unmarshal(match, &m); err != nil {
				t.Fatal(err)
			}
			key, _ := json.Marshal(m)
			out[name+" "+string(key)] = protoFields(t, fc, chainFieldsNotCompared, nil)
		}
	}
	return out
}

// TestSameEnvoyConfigForTheCorpusAsIstiod applies each file of Istio's config test
// corpus to istiod and to a navarch node and compares what an Envoy sidecar, an
// ingress gateway and an egress gateway get, in namespace default and in each
// namespace the file names, what an IPv6-only sidecar and ingress gateway and a
// dual-stack sidecar get (INSTANCE_IPS), and what istio-proxy (ISTIO_VERSION) as a
// sidecar and an ingress gateway gets, the sidecar also with the metadata that asks
// for HTTP/1.0, an idle timeout and exact connection balance, and sidecars with DNS
// capture, which know ServiceEntries without addresses by those navarch allocates
// (given to istiod as their status), and whose name tables are compared too:
// every listener's settings (listenerSettings) and filter
// chains (gatewayChains, and field by field: chainFields), every
// cluster field by field (clusterFields), the endpoints of every EDS cluster
// field by field (endpointFields), and every route configuration the listeners
// name, field by field (but for gatewayRouteFieldsNotCompared).
func TestSameEnvoyConfigForTheCorpusAsIstiod(t *testing.T) {
	t.Parallel()
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	files := corpus.Files(t)
	compared := 0
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			config, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			namespaces := []string{"default"}
			for _, m := range corpusNamespace.FindAllStringSubmatch(string(config), -1) {
				if !slices.Contains(namespaces, m[1]) {
					namespaces = append(namespaces, m[1])
				}
			}
			istiod, navarch := bothControlPlanesAllocating(t, bin, string(config))
			for _, ns := range namespaces {
				for _, p := range []struct {
					kind, key, value, ip, ips, version string
					extra                              map[string]any
				}{
					{"sidecar", "app", "web", "127.0.0.60", "", "", nil}, {"router", "istio", "ingressgateway", "127.0.0.60", "", "", nil},
					{"router", "istio", "egressgateway", "127.0.0.60", "", "", nil},
					{"sidecar", "app", "web", "fd00::60", "fd00::60", "", nil}, {"router", "istio", "ingressgateway", "fd00::60", "fd00::60", "", nil},
					{"sidecar", "app", "web", "10.1.0.60", "10.1.0.60,fd00::60", "", nil},
					{"sidecar", "app", "web", "127.0.0.60", "", "1.28.0", nil}, {"router", "istio", "ingressgateway", "127.0.0.60", "", "1.28.0", nil},
					// istio-agent's metadata that changes listeners: HTTP/1.0, an idle
					// timeout, exact connection balance.
					{"sidecar", "app", "web", "127.0.0.60", "", "1.28.0", map[string]any{"HTTP10": "1", "IDLE_TIMEOUT": "30s",
						"INBOUND_LISTENER_EXACT_BALANCE": "true", "OUTBOUND_LISTENER_EXACT_BALANCE": "true"}},
					// DNS capture: ServiceEntries without addresses by those allocated.
					{"sidecar", "app", "web", "127.0.0.60", "", "1.28.0", map[string]any{"DNS_CAPTURE": "true"}},
					{"sidecar", "app", "web", "10.1.0.60", "10.1.0.60,fd00::60", "", map[string]any{"DNS_CAPTURE": "true"}},
				} {
					t.Run(ns+"/"+p.value+"/"+p.ip+"/"+p.version+"/"+fmt.Sprint(len(p.extra)), func(t *testing.T) {
						id := p.kind + "~" + p.ip + "~x-0." + ns + "~" + ns + ".svc.cluster.local"
						md := map[string]any{"NAMESPACE": ns, "LABELS": map[string]any{p.key: p.value}}
						if p.ips != "" {
							md["INSTANCE_IPS"] = p.ips
						}
						if p.version != "" {
							md["ISTIO_VERSION"] = p.version // istio-proxy, istio-agent's Envoy
						}
						maps.Copy(md, p.extra)
						want := envoyConfig(t, istiod, id, md)
						got := envoyConfig(t, navarch, id, md)
						eventually(t, 30*time.Second, "navarch's listeners and clusters", func() error {
							if got = envoyConfig(t, navarch, id, md); len(got.listeners) < len(want.listeners) || len(got.clusters) < len(want.clusters) {
								return fmt.Errorf("%d listeners and %d clusters, istiod has %d and %d", len(got.listeners), len(got.clusters), len(want.listeners), len(want.clusters))
							}
							return nil
						})
						wantChains, routes := gatewayChains(t, want.listeners)
						gotChains, _ := gatewayChains(t, got.listeners)
						compareNamed(t, wantChains, gotChains)
						compareNamed(t, listenerSettings(t, want.listeners), listenerSettings(t, got.listeners))
						compareFields(t, chainFields(t, want.listeners), chainFields(t, got.listeners))
						compareFields(t, clusterFields(t, want.clusters), clusterFields(t, got.clusters))
						var eds []string
						for name, c := range want.clusters {
							if c.GetType() == clusterv3.Cluster_EDS {
								eds = append(eds, name)
							}
						}
						if len(eds) > 0 {
							slices.Sort(eds)
							compareFields(t, endpointFields(t, istiod, id, md, nil, eds), endpointFields(t, navarch, id, md, nil, eds))
						}
						wantRoutes, gotRoutes := map[string]map[string]string{}, map[string]map[string]string{}
						for _, name := range routes {
							wantRoutes[name] = protoFields(t, envoyRoutes(t, istiod, id, md, name), gatewayRouteFieldsNotCompared, grpcTimeoutAsReplacement)
							gotRoutes[name] = protoFields(t, envoyRoutes(t, navarch, id, md, name), gatewayRouteFieldsNotCompared, grpcTimeoutAsReplacement)
						}
						compareFields(t, wantRoutes, gotRoutes)
						if p.kind == "sidecar" && p.extra["DNS_CAPTURE"] != nil {
							wantNames, gotNames := map[string]map[string]string{}, map[string]map[string]string{}
							for host, ni := range nameTable(t, istiod, id, md) {
								wantNames[host] = map[string]string{"ips": strings.Join(ni.IPs, " "), "registry": ni.Registry}
							}
							for host, ni := range nameTable(t, navarch, id, md) {
								gotNames[host] = map[string]string{"ips": strings.Join(ni.IPs, " "), "registry": ni.Registry}
							}
							compareFields(t, wantNames, gotNames)
						}
						if len(want.listeners) > 0 {
							compared++
						}
					})
				}
			}
		})
	}
	if compared < 40 {
		t.Errorf("istiod gave listeners to %d of the proxies compared; this test expects most of them to have some", compared)
	}
}
