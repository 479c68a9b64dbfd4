package xds

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/navarch/navarch/registry"
)

// NameTableType is the type of Istio's name table (NDS): the host names of the
// services a proxy sees and their addresses, which istio-agent's DNS proxy answers
// from (ISTIO_META_DNS_CAPTURE) instead of asking the machine's resolver. A VM
// outside Kubernetes resolves reviews.default.svc.cluster.local through it.
const NameTableType = "type.googleapis.com/istio.networking.nds.v1.NameTable"

// Registry names in a name table, as Istio's: a Kubernetes service's name table
// entry also names its namespace and short name, from which istio-agent answers
// the names a pod's search path makes (reviews, reviews.default, ...).
const (
	registryKubernetes = "Kubernetes"
	registryExternal   = "External"
)

// NameInfo is one entry of a name table: a host's addresses and where it is from.
type NameInfo struct {
	IPs       []string `json:"ips"`
	Registry  string   `json:"registry"`
	Shortname string   `json:"shortname,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
}

// nameTableDescriptors describes Istio's NameTable message (package
// istio.networking.nds.v1: a map of host name to NameInfo {ips = 1, registry = 2,
// shortname = 3, namespace = 4}), built here so that navarch speaks it without
// linking Istio. The type is registered, so that Any values of it decode (debug
// output, tests).
var nameTableDescriptors = sync.OnceValues(func() (table, info protoreflect.MessageDescriptor) {
	str := func(name string, n int32, label descriptorpb.FieldDescriptorProto_Label) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), JsonName: proto.String(name), Number: proto.Int32(n),
			Label: label.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()}
	}
	msg := func(name, typ string, n int32, label descriptorpb.FieldDescriptorProto_Label) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), JsonName: proto.String(name), Number: proto.Int32(n),
			Label: label.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(typ)}
	}
	optional, repeated := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL, descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	file := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("istio/networking/nds/v1/nds.proto"),
		Package: proto.String("istio.networking.nds.v1"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name:  proto.String("NameTable"),
			Field: []*descriptorpb.FieldDescriptorProto{msg("table", ".istio.networking.nds.v1.NameTable.TableEntry", 1, repeated)},
			NestedType: []*descriptorpb.DescriptorProto{{
				Name: proto.String("NameInfo"),
				Field: []*descriptorpb.FieldDescriptorProto{str("ips", 1, repeated), str("registry", 2, optional),
					str("shortname", 3, optional), str("namespace", 4, optional)},
			}, {
				Name: proto.String("TableEntry"),
				Field: []*descriptorpb.FieldDescriptorProto{str("key", 1, optional),
					msg("value", ".istio.networking.nds.v1.NameTable.NameInfo", 2, optional)},
				Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
			}},
		}},
	}
	fd, err := protodesc.NewFile(file, nil)
	if err != nil {
		panic(fmt.Sprintf("the NameTable descriptor: %v", err)) // a fixed descriptor: a bug if it fails
	}
	table = fd.Messages().ByName("NameTable")
	if _, err := protoregistry.GlobalTypes.FindMessageByName(table.FullName()); err != nil {
		_ = protoregistry.GlobalTypes.RegisterMessage(dynamicpb.NewMessageType(table))
	}
	return table, table.Messages().ByName("NameInfo")
})

// encodeNameTable marshals a NameTable of entries, deterministically (names in
// order, as proto's deterministic marshalling orders map keys), field by field:
// a push builds one per class that asks for it, and the generic (dynamicpb) path
// costs ten times as much for a mesh of 1,000 services.
func encodeNameTable(entries map[string]NameInfo) []byte {
	var out, info, entry []byte
	str := func(b []byte, n protowire.Number, v string) []byte {
		if v == "" {
			return b
		}
		b = protowire.AppendTag(b, n, protowire.BytesType)
		return protowire.AppendString(b, v)
	}
	for _, host := range registry.SortedKeys(entries) {
		ni := entries[host]
		info = info[:0]
		for _, ip := range ni.IPs {
			info = protowire.AppendTag(info, 1, protowire.BytesType)
			info = protowire.AppendString(info, ip)
		}
		info = str(info, 2, ni.Registry)
		info = str(info, 3, ni.Shortname)
		info = str(info, 4, ni.Namespace)
		entry = protowire.AppendTag(entry[:0], 1, protowire.BytesType)
		entry = protowire.AppendString(entry, host)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendBytes(entry, info)
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, entry)
	}
	return out
}

// nameTableResource is the resource of a name table of entries.
func nameTableResource(entries map[string]NameInfo) *Resource {
	nameTableDescriptors() // registers the type, for what decodes the resource (debug output)
	b := encodeNameTable(entries)
	return marshalled(NameTableType, "", contentVersion(b), b)
}

// DecodeNameTable reads a marshalled NameTable.
func DecodeNameTable(b []byte) (map[string]NameInfo, error) {
	td, id := nameTableDescriptors()
	m := dynamicpb.NewMessage(td)
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("decoding a name table: %w", err)
	}
	f := id.Fields()
	out := map[string]NameInfo{}
	m.Get(td.Fields().ByName("table")).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		info := v.Message()
		ni := NameInfo{Registry: info.Get(f.ByName("registry")).String(), Shortname: info.Get(f.ByName("shortname")).String(),
			Namespace: info.Get(f.ByName("namespace")).String()}
		ips := info.Get(f.ByName("ips")).List()
		for i := range ips.Len() {
			ni.IPs = append(ni.IPs, ips.Get(i).String())
		}
		out[k.String()] = ni
		return true
	})
	return out, nil
}

// nameTable is the name table of the proxy's class, as istiod builds it: every
// service the proxy sees that has an address for it, and a headless service
// (resolution NONE, no address) with the addresses of its healthy endpoints in the
// proxy's network, which clients then reach directly, and a name of its own for
// each of its Kubernetes pods that has one (a StatefulSet's). A service with no
// address for the proxy (resolved by DNS, and the proxy has no DNS capture to take
// an allocated one) has no entry: the machine's resolver answers for it.
func nameTable(ctx *Context) map[string]NameInfo {
	out := map[string]NameInfo{}
	for _, svc := range ctx.Services {
		var ips []string
		if len(svc.Addresses) == 0 && svc.Resolution == registry.ResolutionNone && len(svc.Ports) > 0 {
			var pods map[string][]string
			ips, pods = headlessIPs(ctx, svc)
			_, domain, _ := strings.Cut(svc.Hostname, ".")
			for name, podIPs := range pods {
				out[name+"."+domain] = NameInfo{IPs: podIPs, Registry: registryKubernetes, Namespace: svc.Namespace, Shortname: name}
			}
		} else {
			ips = serviceIPs(ctx, svc)
		}
		if _, taken := out[svc.Hostname]; taken || len(ips) == 0 {
			continue
		}
		ni := NameInfo{IPs: ips, Registry: registryExternal}
		if svc.IsKubernetesService() {
			ni.Registry = registryKubernetes
			// istio-agent answers the names a pod's search path makes of these
			// (reviews, reviews.default, reviews.default.svc); not for a
			// multi-cluster services host, which the cluster-local one would shadow.
			if !strings.HasSuffix(svc.Hostname, ".svc.clusterset.local") {
				ni.Namespace, ni.Shortname = svc.Namespace, svc.Origin.Name
			}
		}
		out[svc.Hostname] = ni
	}
	return out
}

// serviceIPs are the addresses of a service a proxy's name table gives it, as
// istiod chooses them: a ServiceEntry's addresses (a single-address CIDR as its
// address; a wider range is no address to answer with), or, for a proxy with DNS
// capture, those allocated to it (ctx.addresses); a Kubernetes service's cluster
// IPs in the proxy's own cluster (else the first), of the IP versions the proxy
// has.
func serviceIPs(ctx *Context, svc *registry.Service) []string {
	p := ctx.Proxy
	addrs := ctx.addresses(svc)
	if len(addrs) == 0 {
		return nil
	}
	cluster, _ := registry.KubernetesCluster(svc.Source)
	kube := svc.IsKubernetesService()
	if kube && p.ClusterID != cluster {
		addrs = addrs[:1]
	}
	var out []string
	for _, a := range addrs {
		if ip, ok := singleIP(a); ok {
			out = append(out, ip)
		}
	}
	if kube {
		return p.ofFamily(out)
	}
	return out
}

// singleIP returns a as an IP address: an address, or a CIDR block of one.
func singleIP(a string) (string, bool) {
	if ip, err := netip.ParseAddr(a); err == nil {
		return ip.String(), true
	}
	if p, err := netip.ParsePrefix(a); err == nil && p.IsSingleIP() {
		return p.Addr().String(), true
	}
	return "", false
}

// hasFamily reports whether the proxy has addresses of IP version v ("4" or "6"); a
// proxy without any counts as IPv4's.
func (p *Proxy) hasFamily(v string) bool {
	if p.IPFamilies == "" {
		return v == "4"
	}
	return strings.Contains(p.IPFamilies, v)
}

// ofFamily is what istiod keeps of a service's addresses (IPs) for a proxy (its
// FilterAddressesByIPFamily): those of the proxy's IP version, or, for a
// dual-stack proxy, those of the first address's version.
func (p *Proxy) ofFamily(addrs []string) []string {
	if len(addrs) == 0 {
		return nil
	}
	keep := "4"
	switch {
	case p.hasFamily("4") && p.hasFamily("6"):
		keep = ipVersion(addrs[0])
	case p.hasFamily("6"):
		keep = "6"
	}
	var out []string
	for _, a := range addrs {
		if ipVersion(a) == keep {
			out = append(out, a)
		}
	}
	return out
}

// ipVersion is "4" or "6", the version of IP address ip.
func ipVersion(ip string) string {
	if strings.Contains(ip, ":") {
		return "6"
	}
	return "4"
}

// headlessIPs are the addresses a headless service's name resolves to: those of
// its healthy endpoints on its first port in the proxy's network, as Kubernetes'
// own DNS answers for a headless service (clients go to the endpoints directly,
// not through a network gateway); and, for a Kubernetes service, by the name of
// each of those pods that has one (registry.Workload.DNSName,
// "<hostname>.<subdomain>"), its address. A
// headless Kubernetes service stands for IPv4's unspecified address in istiod,
// which it filters by the proxy's IP versions as it does cluster IPs: an IPv6-only
// proxy gets no entry.
func headlessIPs(ctx *Context, svc *registry.Service) (ips []string, pods map[string][]string) {
	kube := svc.IsKubernetesService()
	if kube && !ctx.Proxy.hasFamily("4") {
		return nil, nil
	}
	for _, w := range ctx.Snapshot.EndpointsOn(svc, svc.Ports[0].Number) {
		if _, ok := singleIP(w.Address); !ok || !w.Healthy || !registry.SameNetwork(ctx.Proxy.Network, w.Network) {
			continue
		}
		if w.DNSName != "" && kube {
			if pods == nil {
				pods = map[string][]string{}
			}
			pods[w.DNSName] = append(pods[w.DNSName], w.Address)
		}
		if !slices.Contains(ips, w.Address) {
			ips = append(ips, w.Address)
		}
	}
	return ips, pods
}
