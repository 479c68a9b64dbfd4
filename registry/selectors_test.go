package registry

import (
	"testing"

	"github.com/navarch/navarch/store"
)

// TestSelectorKeysOfEveryKind: each kind that selects workloads or proxies by label
// contributes its keys; labels that only pick endpoints (subsets) or that nothing
// names do not; Istio's own labels always count.
func TestSelectorKeysOfEveryKind(t *testing.T) {
	snap := snapshot(t, store.ConfigSpace, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: ns}
spec: {hosts: [se.example.com], ports: [{number: 80, name: http}], workloadSelector: {labels: {k-se: x}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: we, namespace: ns}
spec: {address: 10.0.0.1, labels: {k-se: x, k-entry: z}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr, namespace: ns}
spec:
  host: se.example.com
  workloadSelector: {matchLabels: {k-dr: x}}
  subsets: [{name: a, labels: {k-subset: a}, trafficPolicy: {loadBalancer: {localityLbSetting: {failoverPriority: ["k-failover=x"]}}}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: sc, namespace: ns}
spec: {workloadSelector: {labels: {k-sidecar: x}}, egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec: {selector: {k-gateway: x}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: ns}
spec:
  hosts: [se.example.com]
  http: [{match: [{sourceLabels: {k-http: x}}], route: [{destination: {host: se.example.com}}]}]
  tcp: [{match: [{sourceLabels: {k-tcp: x}}], route: [{destination: {host: se.example.com}}]}]
  tls: [{match: [{sniHosts: [se.example.com], sourceLabels: {k-tls: x}}], route: [{destination: {host: se.example.com}}]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: pa, namespace: ns}
spec: {selector: {matchLabels: {k-pa: x}}, mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap, namespace: ns}
spec: {selector: {matchLabels: {k-ap: x}}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ra, namespace: ns}
spec: {selector: {matchLabels: {k-ra: x}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: tm, namespace: ns}
spec: {selector: {matchLabels: {k-telemetry: x}}}
`)
	for _, k := range []string{"k-se", "k-dr", "k-sidecar", "k-gateway", "k-http", "k-tcp", "k-tls", "k-pa", "k-ap", "k-ra", "k-telemetry", "k-failover", "security.istio.io/tlsMode"} {
		if !snap.SelectsBy(k) {
			t.Errorf("SelectsBy(%q) is false", k)
		}
	}
	for _, k := range []string{"k-subset", "k-entry", "app", "pod-template-hash"} {
		if snap.SelectsBy(k) {
			t.Errorf("SelectsBy(%q) is true", k)
		}
	}
	if !snap.WorkloadEntriesLabelledBy("k-entry") || snap.WorkloadEntriesLabelledBy("k-dr") {
		t.Error("WorkloadEntriesLabelledBy does not follow the WorkloadEntries' label keys")
	}
	other := snapshot(t, store.ConfigSpace, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr, namespace: ns}
spec: {host: se.example.com, workloadSelector: {matchLabels: {k-dr: x}}}
`)
	if other.SelectorKeysVersion() == snap.SelectorKeysVersion() {
		t.Error("SelectorKeysVersion did not change with the keys")
	}
	if again := snapshot(t, store.ConfigSpace, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: another, namespace: ns}
spec: {host: other.example.com, workloadSelector: {matchLabels: {k-dr: w}}}
`); again.SelectorKeysVersion() != other.SelectorKeysVersion() {
		t.Error("SelectorKeysVersion changed though the keys did not")
	}
}
