package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/navarch/navarch/internal/peers"
)

// ruleChoiceParity has services in namespaces default and other, and
// DestinationRules that a client in namespace client (labels app: web) may take,
// each layout one service's: two rules of one host in one namespace (a), a rule of
// the client's namespace for a wildcard host against the service's namespace's for
// its exact host (b), a rule of a third namespace exported everywhere (c), a rule of
// the client's namespace selecting other workloads against the service's
// namespace's (d), a rule of the client's namespace selecting the client beside
// one selecting nothing (e), and a rule the service's namespace keeps to itself (f).
var ruleChoiceParity = func() string {
	var b strings.Builder
	for _, svc := range []string{"a.default", "b.other", "c.default", "d.default", "e.default", "f.default"} {
		name, ns, _ := strings.Cut(svc, ".")
		fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  hosts: [%[1]s.%[2]s.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.51, labels: {v: "1"}}, {address: 127.0.0.52, labels: {v: "2"}}]
---
`, name, ns)
	}
	rule := func(name, ns, host, rest string) string {
		return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: %s, namespace: %s}\nspec:\n  host: \"%s\"\n%s---\n", name, ns, host, rest)
	}
	pool := func(n int) string {
		return fmt.Sprintf("  trafficPolicy: {connectionPool: {tcp: {maxConnections: %d}}}\n", n)
	}
	return b.String() +
		rule("a-one", "default", "a", "  subsets: [{name: v1, labels: {v: \"1\"}}]\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n") +
		rule("a-two", "default", "a", "  subsets: [{name: v2, labels: {v: \"2\"}}, {name: v1, labels: {v: \"2\"}}]\n"+pool(12)) +
		rule("b-wild", "client", "*.other.svc.cluster.local", pool(21)) +
		rule("b", "other", "b", pool(22)) +
		rule("c", "third", "c.default.svc.cluster.local", "  exportTo: [\"*\"]\n"+pool(31)) +
		rule("d-others", "client", "d.default.svc.cluster.local", "  workloadSelector: {matchLabels: {app: other}}\n"+pool(41)) +
		rule("d", "default", "d", pool(42)) +
		rule("e-all", "client", "e.default.svc.cluster.local", "  subsets: [{name: v2, labels: {v: \"2\"}}]\n"+pool(51)) +
		rule("e-web", "client", "e.default.svc.cluster.local", "  workloadSelector: {matchLabels: {app: web}}\n  subsets: [{name: v1, labels: {v: \"1\"}}]\n"+pool(52)) +
		rule("f", "default", "f", "  exportTo: [\".\"]\n"+pool(61))
}()

// TestSameDestinationRuleChoiceAsIstiod compares, field by field, the clusters a
// sidecar in namespace client gets for ruleChoiceParity from istiod and from
// navarch: which DestinationRule applies to each service, and what two rules of one
// host and namespace make together.
func TestSameDestinationRuleChoiceAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, ruleChoiceParity)
	id := "sidecar~127.0.0.60~web-0.client~client.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "client", "LABELS": map[string]any{"app": "web"}}
	want := clusterFields(t, envoyConfig(t, istiod, id, md).clusters)
	var got map[string]map[string]string
	eventually(t, 30*time.Second, "navarch's clusters", func() error {
		// The last rule's subset: all the configuration is in.
		if got = clusterFields(t, envoyConfig(t, navarch, id, md).clusters); len(got["outbound|8080|v1|e.default.svc.cluster.local"]) == 0 {
			return fmt.Errorf("no cluster of subset v1 of e yet: %d clusters", len(got))
		}
		return nil
	})
	compareFields(t, want, got)
	// What the layouts come to in istiod, as this test expects it: a's rules merged
	// (a-two's subset v2 beside a-one's v1), e's rule selecting the client alone (a
	// rule with a selector is kept to its namespace, one without exported, so the
	// two do not merge).
	for c, exists := range map[string]bool{
		"outbound|8080|v2|a.default.svc.cluster.local": true,
		"outbound|8080|v1|e.default.svc.cluster.local": true,
		"outbound|8080|v2|e.default.svc.cluster.local": false,
	} {
		if (len(want[c]) > 0) != exists {
			t.Errorf("istiod gave cluster %s: %t, this test expects %t", c, len(want[c]) > 0, exists)
		}
	}
}
