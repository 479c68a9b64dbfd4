package registry

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// AutoAllocateLabel set to "false" on a ServiceEntry keeps it from an allocated
// address, as Istio reads it.
const AutoAllocateLabel = "networking.istio.io/enable-autoallocate-ip"

// The ranges Istio allocates ServiceEntry addresses from (its defaults): Class E
// IPv4 space, which no host is given, and IPv6's benchmarking range.
var (
	autoV4 = netip.MustParsePrefix("240.240.0.0/16")
	autoV6 = netip.MustParsePrefix("2001:2::/48")
)

// autoSlots is how many addresses of autoV4 are handed out: 240.240.0.1 to
// 240.240.255.254.
const autoSlots = 1<<16 - 2

// allocateAddresses gives every ServiceEntry host without addresses an IPv4 and an
// IPv6 address of its own (AutoAddresses), as Istio's IP auto-allocation does, so
// that a proxy with DNS capture reaches a TCP service resolved by DNS through a
// listener of its own instead of the port's wildcard listener, and its name table
// answers for it. Not for resolution NONE (a proxy cannot tell where a connection
// to an allocated address was going), wildcard hosts, Kubernetes Services (see
// allocates), or a ServiceEntry labelled AutoAllocateLabel "false".
//
// Istio's allocator writes what it allocated to the ServiceEntry's status; navarch
// computes it on every node from the snapshot alike, and writes nothing. A host's
// address is its own hash's slot in the range (namespace/host, FNV-1a), or the next
// free one after it, with hosts taking slots oldest first: a new ServiceEntry never
// moves an older one's address, and a host keeps its address while it exists,
// unless an older host whose slot it had to step past is deleted. Addresses users
// give ServiceEntries in the range are never handed out.
func (s *Snapshot) allocateAddresses() {
	used := map[uint32]bool{}
	var want []*Service
	for _, svc := range s.services {
		for _, a := range svc.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil && autoV4.Contains(ip) {
				b := ip.As4()
				used[uint32(b[2])<<8|uint32(b[3])] = true
			}
		}
		if allocates(svc) {
			want = append(want, svc)
		}
	}
	slices.SortStableFunc(want, func(a, b *Service) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Origin.Name, b.Origin.Name))
	})
	type key struct{ ns, host string }
	given := map[key][]string{} // a host defined twice in a namespace shares its address
	for _, svc := range want {
		k := key{svc.Namespace, svc.Hostname}
		if addrs, ok := given[k]; ok {
			svc.AutoAddresses = addrs
			continue
		}
		if len(used) >= autoSlots {
			continue // the range is exhausted
		}
		slot := fnv1a(svc.Namespace, "/", svc.Hostname) % autoSlots
		for used[slot+1] {
			slot = (slot + 1) % autoSlots
		}
		n := slot + 1
		used[n] = true
		v4, v6 := autoV4.Addr().As4(), autoV6.Addr().As16()
		v4[2], v4[3] = byte(n>>8), byte(n)
		v6[14], v6[15] = byte(n>>8), byte(n)
		svc.AutoAddresses = []string{netip.AddrFrom4(v4).String(), netip.AddrFrom16(v6).String()}
		given[k] = svc.AutoAddresses
	}
}

// fnv1a is the 32-bit FNV-1a hash of the concatenation of parts.
func fnv1a(parts ...string) uint32 {
	h := uint32(2166136261)
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h = (h ^ uint32(p[i])) * 16777619
		}
	}
	return h
}

// allocates reports whether svc is given addresses (allocateAddresses): a
// ServiceEntry's host, whether applied, a Kubernetes cluster's Istio configuration,
// a static inventory's, or a Consul service (which Consul gives no virtual address);
// not a Kubernetes Service, which has its cluster IP or is headless (or, of type
// ExternalName, resolved by DNS), as Istio allocates none to one.
func allocates(svc *Service) bool {
	return !svc.IsKubernetesService() && len(svc.Addresses) == 0 && svc.Resolution != ResolutionNone &&
		!strings.HasPrefix(svc.Hostname, "*") && !strings.EqualFold(svc.Labels[AutoAllocateLabel], "false")
}
