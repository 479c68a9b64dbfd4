package registry

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/store"
)

// entry is a ServiceEntry of host in namespace ns, created at minute min, resolved
// by resolution, with extra spec (addresses) and labels.
func entry(name, ns, host string, min int, resolution, extra, labels string) string {
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: %s, creationTimestamp: "2026-11-01T10:%02d:00Z", labels: {%s}}
spec:
  hosts: ["%s"]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: %s
  %s
`, name, ns, min, labels, host, resolution, extra)
}

// autoAddresses returns the addresses allocated to each service of snap, by
// namespace/host.
func autoAddresses(snap *Snapshot) map[string][]string {
	out := map[string][]string{}
	for _, svc := range snap.Services() {
		if svc.AutoAddresses != nil {
			out[svc.Namespace+"/"+svc.Hostname] = svc.AutoAddresses
		}
	}
	return out
}

// TestAllocatedAddresses: ServiceEntry hosts without addresses are each given an
// IPv4 address in 240.240.0.0/16 and the IPv6 address of the same slot in
// 2001:2::/48, the same whatever order the store lists them in; not a host with
// addresses, of resolution NONE, a wildcard, one labelled not to, or a Kubernetes
// Service; never an address a user gave a ServiceEntry.
func TestAllocatedAddresses(t *testing.T) {
	docs := []string{
		entry("db", "shop", "db.example.com", 1, "DNS", "", ""),
		entry("cache", "shop", "cache.example.com", 2, "DNS", "", ""),
		entry("static", "shop", "static.example.com", 3, "STATIC", "endpoints: [{address: 10.0.0.1}]", ""),
		entry("given", "shop", "given.example.com", 4, "DNS", "addresses: [10.1.0.1]", ""),
		entry("none", "shop", "none.example.com", 5, "NONE", "", ""),
		entry("wild", "shop", "*.wild.example.com", 6, "STATIC", "endpoints: [{address: 10.0.0.3}]", ""),
		entry("optout", "shop", "optout.example.com", 7, "DNS", "", AutoAllocateLabel+`: "false"`),
		entry("db", "other", "db.example.com", 8, "DNS", "", ""),
	}
	snap := snapshot(t, store.ConfigSpace, strings.Join(docs, "---"))
	got := autoAddresses(snap)
	for _, want := range []string{"shop/db.example.com", "shop/cache.example.com", "shop/static.example.com", "other/db.example.com"} {
		addrs := got[want]
		if len(addrs) != 2 {
			t.Fatalf("%s: allocated %v, want an IPv4 and an IPv6 address", want, addrs)
		}
		v4, v6 := netip.MustParseAddr(addrs[0]), netip.MustParseAddr(addrs[1])
		if !autoV4.Contains(v4) || !autoV6.Contains(v6) || v4.As4()[2] != v6.As16()[14] || v4.As4()[3] != v6.As16()[15] {
			t.Errorf("%s: allocated %v, want 240.240.x.y and 2001:2::xxyy", want, addrs)
		}
		delete(got, want)
	}
	if len(got) != 0 {
		t.Errorf("allocated to hosts that take none: %v", got)
	}

	// The same from the store in reverse order.
	reversed := make([]string, len(docs))
	for i, d := range docs {
		reversed[len(docs)-1-i] = d
	}
	if again := autoAddresses(snapshot(t, store.ConfigSpace, strings.Join(reversed, "---"))); !reflect.DeepEqual(again, autoAddresses(snap)) {
		t.Errorf("in another order: %v, want %v", again, autoAddresses(snap))
	}

	// A Kubernetes cluster's Services come with their own addresses or none; its
	// ServiceEntries are allocated as any, and so are Consul's services.
	kube := NewSnapshot(append(append(entriesOf(t, store.RegistrySpace(KubernetesSource("east")), docs[0]),
		entriesOf(t, store.RegistrySpace(KubernetesConfigSource("east")), docs[1])...),
		entriesOf(t, store.RegistrySpace("consul.dc1"), docs[2])...), 7, "cluster.local")
	if got := autoAddresses(kube); len(got) != 2 || got["shop/cache.example.com"] == nil || got["shop/static.example.com"] == nil {
		t.Errorf("a cluster's Service and ServiceEntry, a Consul service: allocated %v, want the latter two", got)
	}
}

// TestAllocatedAddressesStay: a host keeps its address when younger ServiceEntries
// come, each gets one of its own, and an address a user gives a ServiceEntry in
// the range is not handed out (the host that had it moves).
func TestAllocatedAddressesStay(t *testing.T) {
	first := entry("db", "shop", "db.example.com", 1, "DNS", "", "")
	before := autoAddresses(snapshot(t, store.ConfigSpace, first))["shop/db.example.com"]
	var more []string
	for i := range 50 {
		more = append(more, entry(fmt.Sprintf("svc-%d", i), "shop", fmt.Sprintf("svc-%d.example.com", i), 2+i, "DNS", "", ""))
	}
	after := autoAddresses(snapshot(t, store.ConfigSpace, strings.Join(append(more, first), "---")))
	if !reflect.DeepEqual(after["shop/db.example.com"], before) {
		t.Errorf("db was %v alone, %v with younger ServiceEntries", before, after["shop/db.example.com"])
	}
	seen := map[string]string{}
	for host, addrs := range after {
		if other, dup := seen[addrs[0]]; dup {
			t.Errorf("%s and %s share %s", host, other, addrs[0])
		}
		seen[addrs[0]] = host
	}
	if len(after) != 51 {
		t.Errorf("allocated to %d hosts, want 51", len(after))
	}

	taken := entry("taken", "shop", "taken.example.com", 59, "STATIC", "addresses: ["+before[0]+"]\n  endpoints: [{address: 10.0.0.2}]", "")
	moved := autoAddresses(snapshot(t, store.ConfigSpace, first+"---"+taken))["shop/db.example.com"]
	if len(moved) != 2 || moved[0] == before[0] {
		t.Errorf("db with its address given to another ServiceEntry: %v, want another address", moved)
	}
}

func entriesOf(t *testing.T, space store.Space, docs string) []store.Entry {
	t.Helper()
	rs, _, err := api.Decode("test", []byte(docs), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Entry
	for _, r := range rs {
		out = append(out, store.Entry{Space: space, Resource: r})
	}
	return out
}
