package xds

import (
	"strconv"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Type URLs of the resources navarch serves.
const (
	ListenerType = resourcev3.ListenerType
	RouteType    = resourcev3.RouteType
	ClusterType  = resourcev3.ClusterType
	EndpointType = resourcev3.EndpointType
	SecretType   = resourcev3.SecretType
)

// pushOrder is the order in which a push sends types, so that a proxy never receives a
// reference before the resource it refers to: secrets first, clusters before
// listeners (their routes name clusters), endpoints after the clusters that ask for
// them; the name table (for istio-agent's DNS proxy) and WorkloadGroups (for
// navarch's agent) last.
var pushOrder = []string{SecretType, ClusterType, EndpointType, ListenerType, RouteType, NameTableType, WorkloadGroupType}

// shortType names a type URL in logs, metrics and debug output, as Istio does.
func shortType(typeURL string) string {
	switch typeURL {
	case ListenerType:
		return "lds"
	case RouteType:
		return "rds"
	case ClusterType:
		return "cds"
	case EndpointType:
		return "eds"
	case SecretType:
		return "sds"
	case NameTableType:
		return "nds"
	case WorkloadGroupType:
		return "wg"
	}
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}

// clusterName is Istio's outbound cluster name: outbound|<port>|<subset>|<host>.
// Routes, clusters and endpoint assignments of a service port all use it.
func clusterName(host string, port uint32, subset string) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + host
}

// meshSNI is the server name a mesh client sends when it connects with mTLS to a
// service port and subset, Istio's outbound_.<port>_.<subset>_.<host>: a
// multi-network gateway (AUTO_PASSTHROUGH) forwards the connection by it.
func meshSNI(host string, port uint32, subset string) string {
	return "outbound_." + strconv.FormatUint(uint64(port), 10) + "_." + subset + "_." + host
}

// listenerName is the API listener a proxyless gRPC client asks for when it dials
// xds:///host:port.
func listenerName(host string, port uint32) string {
	return host + ":" + strconv.FormatUint(uint64(port), 10)
}

// splitHostPort splits a listener name into host and port; ok is false when it does
// not end in a port.
func splitHostPort(name string) (host string, port uint32, ok bool) {
	i := strings.LastIndexByte(name, ':')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 32)
	if err != nil || n == 0 || n > 65535 {
		return "", 0, false
	}
	return name[:i], uint32(n), true
}

// fqdnOfShortName is the host a proxyless gRPC client in namespace ns means by a
// short name in its dial target, as Kubernetes DNS (and, for the client's own
// namespace, istiod) reads it: "reviews" is reviews.<ns>.svc.<domain>;
// "reviews.shop" and "reviews.shop.svc" are reviews.shop.svc.<domain>. "" for a name
// that is no such short name.
func fqdnOfShortName(host, ns, domain string) string {
	svcDomain := ".svc." + domain
	if strings.HasSuffix(host, svcDomain) {
		return ""
	}
	switch strings.Count(host, ".") {
	case 0:
		return host + "." + ns + svcDomain
	case 1:
		return host + svcDomain
	case 2:
		if base, ok := strings.CutSuffix(host, ".svc"); ok {
			return base + svcDomain
		}
	}
	return ""
}

// aliasListener is the listener of a service port asked for by a short name of the
// service's host (xds:///reviews:9080): the service's own listener under the name the
// client asked for. Its routes are the service's, whose virtual host answers to the
// short names (domainsFor). nil if the name is no short name of a service port the
// build has.
func aliasListener(b *Build, p *Proxy, name string) *Resource {
	host, port, ok := splitHostPort(name)
	if !ok {
		return nil
	}
	fqdn := fqdnOfShortName(host, p.Namespace, b.snap.Domain)
	if fqdn == "" {
		return nil
	}
	var own *Resource
	if set := b.Types[ListenerType]; set != nil {
		own = set.ByName[listenerName(fqdn, port)]
	}
	if own == nil {
		return nil
	}
	var l listenerv3.Listener
	if err := own.Body.UnmarshalTo(&l); err != nil {
		return nil
	}
	l.Name = name
	r, err := newResource(ListenerType, name, &l)
	if err != nil {
		return nil
	}
	return r
}
