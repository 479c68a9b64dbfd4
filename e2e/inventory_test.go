package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/e2e/grpcapp"
)

// inventoryEntry is a WorkloadEntry of the legacy service's VMs, as an inventory
// file lists them.
func inventoryEntry(name string, port uint32, version string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s, namespace: legacy}
spec: {address: 127.0.0.1, ports: {grpc: %d}, labels: {app: billing, version: %s}}
`, name, port, version)
}

// TestStaticInventory: `navarch registry sync` keeps a source's inventory equal to
// a file of WorkloadEntries (VMs that another system lists): a ServiceEntry selects
// them and traffic reaches them; a VM dropped from the file leaves the registry and
// the traffic; syncing the same file again writes nothing; a file with anything but
// inventory, an invalid entry, or a source navarch's adapters own is refused and
// changes nothing.
func TestStaticInventory(t *testing.T) {
	node := startDevNode(t)
	dir := t.TempDir()
	mustCLI(t, node.HTTP, "apply", "-f", writeFile(t, dir, "billing.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: billing, namespace: legacy}
spec:
  hosts: [billing.legacy.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: billing}}
`))
	vms := startBackends(t, "billing-a", "billing-b")
	both := inventoryEntry("billing-a", vms["billing-a"].Port, "v1") + "---\n" + inventoryEntry("billing-b", vms["billing-b"].Port, "v1")
	sync := func(content string, extra ...string) cliResult {
		return cli(t, node.HTTP, append([]string{"registry", "sync", "--source", "cmdb", "-f", writeFile(t, dir, "inventory.yaml", content)}, extra...)...)
	}
	inventory := func() map[string]client.EndpointListing {
		t.Helper()
		var reg client.RegistryListing
		if err := json.Unmarshal([]byte(mustCLI(t, node.HTTP, "registry", "-o", "json", "--source", "cmdb")), &reg); err != nil {
			t.Fatal(err)
		}
		eps := map[string]client.EndpointListing{}
		for _, s := range reg.Services {
			for _, e := range s.Endpoints {
				eps[e.Name] = e
			}
		}
		return eps
	}
	conn, err := grpcapp.Dial(grpcapp.Bootstrap([]string{node.XDS}, "legacy", nil), "xds:///billing.legacy.svc.cluster.local:9080")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	calls := func(n int) grpcapp.Tally {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return grpcapp.Call(ctx, conn, n)
	}

	if res := sync(both); res.Code != 0 || !strings.Contains(res.Stdout, "2 created, 0 updated, 0 deleted") {
		t.Fatalf("first sync: %+v", res)
	}
	if eps := inventory(); len(eps) != 2 || eps["billing-a"].Source != "cmdb" || eps["billing-b"].Labels["version"] != "v1" {
		t.Fatalf("registry after the first sync: %+v", eps)
	}
	eventually(t, 30*time.Second, "traffic to both inventory VMs", func() error {
		if tl := calls(200); tl.By["billing-a"] == 0 || tl.By["billing-b"] == 0 || len(tl.Failed) > 0 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})

	// The same file again: nothing to write.
	before := mustCLI(t, node.HTTP, "get", "se", "-n", "legacy", "-o", "json")
	if res := sync(both); res.Code != 0 || !strings.Contains(res.Stdout, "0 created, 0 updated, 0 deleted, 2 unchanged") {
		t.Fatalf("the same file again: %+v", res)
	}

	// Refused, and nothing changes.
	for _, bad := range []struct{ name, content, source, want string }{
		{"configuration in an inventory", both + "---\n" + `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: billing, namespace: legacy}
spec: {hosts: [billing], http: [{route: [{destination: {host: billing}}]}]}
`, "cmdb", "only ServiceEntries and WorkloadEntries"},
		{"an invalid entry", inventoryEntry("billing-a", 70000, "v1"), "cmdb", "billing-a"},
		{"the source of auto-registered VMs", both, "vm", "written by navarch's own adapters"},
		{"a Consul datacenter's source", both, "consul.dc1", "written by navarch's own adapters"},
	} {
		res := cli(t, node.HTTP, "registry", "sync", "--source", bad.source, "-f", writeFile(t, dir, "bad.yaml", bad.content))
		if res.Code == 0 || !strings.Contains(res.Stderr, bad.want) {
			t.Errorf("%s: exit %d, stderr %q; want a refusal naming %q", bad.name, res.Code, res.Stderr, bad.want)
		}
	}
	if eps := inventory(); len(eps) != 2 {
		t.Fatalf("registry after refused syncs: %+v", eps)
	}
	if after := mustCLI(t, node.HTTP, "get", "se", "-n", "legacy", "-o", "json"); after != before {
		t.Fatalf("user configuration changed by an inventory sync:\n%s\n%s", before, after)
	}

	// billing-b leaves the inventory, billing-a changes version: first as a dry run,
	// which says so and changes nothing.
	res := sync(inventoryEntry("billing-a", vms["billing-a"].Port, "v2"), "--dry-run")
	for _, want := range []string{"workloadentry.networking.istio.io/billing-a (legacy) configured (dry run)", "workloadentry.networking.istio.io/billing-b (legacy) deleted (dry run)",
		"0 created, 1 updated, 1 deleted, 0 unchanged (dry run)"} {
		if res.Code != 0 || !strings.Contains(res.Stdout, want) {
			t.Fatalf("dry run: %+v, want %q", res, want)
		}
	}
	if eps := inventory(); len(eps) != 2 || eps["billing-a"].Labels["version"] != "v1" {
		t.Fatalf("registry after a dry run: %+v", eps)
	}
	if res := sync(inventoryEntry("billing-a", vms["billing-a"].Port, "v2")); res.Code != 0 || !strings.Contains(res.Stdout, "0 created, 1 updated, 1 deleted, 0 unchanged") {
		t.Fatalf("sync without billing-b: %+v", res)
	}
	if eps := inventory(); len(eps) != 1 || eps["billing-a"].Labels["version"] != "v2" {
		t.Fatalf("registry after billing-b left: %+v", eps)
	}
	eventually(t, 30*time.Second, "no traffic to the VM that left the inventory", func() error {
		before := vms["billing-b"].Calls()
		if tl := calls(100); tl.By["billing-a"] != 100 || vms["billing-b"].Calls() != before {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
}
