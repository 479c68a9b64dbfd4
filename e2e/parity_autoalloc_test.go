package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/internal/peers"
)

// autoAllocParity is ServiceEntries without addresses that are allocated some (TCP
// and HTTP resolved by DNS, TCP with static endpoints) and two that are not
// (resolution NONE; one labelled not to be).
const autoAllocParity = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: queue, namespace: default}
spec:
  hosts: [queue.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 5672, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.81}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: passthrough, namespace: default}
spec:
  hosts: [passthrough.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: optout, namespace: default, labels: {networking.istio.io/enable-autoallocate-ip: "false"}}
spec:
  hosts: [optout.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 6379, name: tcp, protocol: TCP}]
  resolution: DNS
`

// withAllocatedStatus adds to each ServiceEntry of config the addresses navarch
// allocated to its hosts (reg), as the status Istio's allocator writes there.
func withAllocatedStatus(t *testing.T, config string, reg client.RegistryListing) string {
	t.Helper()
	type address struct {
		Value string `json:"value"`
		Host  string `json:"host"`
	}
	given := map[string][]address{} // by origin
	for _, s := range reg.Services {
		for _, a := range s.AutoAddresses {
			given[s.Origin] = append(given[s.Origin], address{a, s.Host})
		}
	}
	docs := regexp.MustCompile(`(?m)^---\s*$`).Split(config, -1)
	for i, doc := range docs {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil || obj["kind"] != "ServiceEntry" {
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		ns, _ := meta["namespace"].(string)
		name, _ := meta["name"].(string)
		origin := api.Key{Kind: api.ServiceEntry, Namespace: cmp.Or(ns, api.DefaultNamespace), Name: name}.String()
		if len(given[origin]) == 0 {
			continue
		}
		obj["status"] = map[string]any{"addresses": given[origin]}
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		docs[i] = "\n" + string(b)
		delete(given, origin)
	}
	if len(given) > 0 {
		t.Fatalf("navarch allocated addresses to ServiceEntries not in the configuration: %v", given)
	}
	return strings.Join(docs, "---")
}

// bothControlPlanesAllocating is bothControlPlanes for configuration with
// ServiceEntries that navarch allocates addresses to: istiod gets them as the
// ServiceEntries' status (withAllocatedStatus).
func bothControlPlanesAllocating(t *testing.T, bin, config string) (istiod, navarch string) {
	t.Helper()
	node := startDevNode(t)
	applyServed(t, node, config)
	var reg client.RegistryListing
	if err := json.Unmarshal([]byte(mustCLI(t, node.HTTP, "registry", "-o", "json")), &reg); err != nil {
		t.Fatal(err)
	}
	return startIstiod(t, bin, "127.0.0.1:0", withAllocatedStatus(t, config, reg)), node.XDS
}

// TestSameAllocatedAddressesAsIstiod gives a navarch node ServiceEntries without
// addresses, and istiod the same with the addresses navarch allocated as their
// status (what Istio's allocator writes there), and compares what sidecars with and
// without DNS capture get: their listeners (a TCP service's own at its allocated
// address with capture, the port's wildcard without), the names the HTTP route's
// virtual hosts answer to, and the name table.
func TestSameAllocatedAddressesAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	node := startDevNode(t)
	applyServed(t, node, autoAllocParity)
	var reg client.RegistryListing
	if err := json.Unmarshal([]byte(mustCLI(t, node.HTTP, "registry", "-o", "json")), &reg); err != nil {
		t.Fatal(err)
	}
	istiod := startIstiod(t, bin, "127.0.0.1:0", withAllocatedStatus(t, autoAllocParity, reg))
	var dbVIP string
	for _, s := range reg.Services {
		if s.Host == "db.example.com" && len(s.AutoAddresses) > 0 {
			dbVIP = s.AutoAddresses[0]
		}
	}
	if dbVIP == "" {
		t.Fatalf("navarch allocated db.example.com no address: %+v", reg.Services)
	}

	describe := func(server, id string, md map[string]any) map[string]map[string]string {
		ls := envoyConfig(t, server, id, md).listeners
		out := chainFields(t, ls)
		for name, settings := range listenerSettings(t, ls) {
			out["listener "+name] = map[string]string{"settings": settings}
		}
		for _, vh := range envoyRoutes(t, server, id, md, "80").VirtualHosts {
			domains := slices.Clone(vh.Domains)
			slices.Sort(domains)
			out["route 80 "+vh.Name] = map[string]string{"domains": strings.Join(domains, " ")}
		}
		for host, ni := range nameTable(t, server, id, md) {
			out["name "+host] = map[string]string{"ips": strings.Join(ni.IPs, " "), "registry": ni.Registry}
		}
		return out
	}
	for _, c := range []struct {
		name string
		md   map[string]any
	}{
		{"a sidecar with DNS capture", map[string]any{"DNS_CAPTURE": "true"}},
		{"a dual-stack sidecar with DNS capture", map[string]any{"DNS_CAPTURE": "true", "INSTANCE_IPS": "127.0.0.80,fd00::80"}},
		{"a sidecar without", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			md := map[string]any{"NAMESPACE": "default"}
			maps.Copy(md, c.md)
			id := "sidecar~127.0.0.80~app.default~default.svc.cluster.local"
			want := describe(istiod, id, md)
			var got map[string]map[string]string
			eventually(t, 30*time.Second, "navarch's listeners", func() error {
				if got = describe(node.XDS, id, md); len(got) < len(want) {
					return fmt.Errorf("%d listeners, chains, routes and names, istiod has %d", len(got), len(want))
				}
				return nil
			})
			compareFields(t, want, got)
			_, vip := want["listener "+dbVIP+"_5432"]
			if capture := c.md != nil; vip != capture {
				t.Errorf("istiod's listeners: one at db's allocated address %t, want %t: %v", vip, capture, slices.Sorted(maps.Keys(want)))
			}
		})
	}
}
