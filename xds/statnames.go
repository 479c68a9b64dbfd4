package xds

import (
	"strconv"
	"strings"

	"github.com/navarch/navarch/registry"
)

// Envoy keeps a cluster's statistics under its alt_stat_name (else its name), and an
// HTTP connection manager's or TCP proxy's under its stat_prefix. navarch names them
// as istiod does, since dashboards and alerts written for Istio read them: a cluster
// and a connection manager end in statDelimiter, which the tag extractors of
// istio-agent's bootstrap (and navarch bootstrap's, envoyStatsTags) take as the end
// of the cluster_name and http_conn_manager_prefix tags, so that the dots of a host
// name stay in the tag. The mesh config's outboundClusterStatName and
// inboundClusterStatName patterns rename service clusters and their TCP proxies
// (statName).
const statDelimiter = ";"

// rbacTCPStatPrefix is the stat prefix of every RBAC network filter, istiod's.
const rbacTCPStatPrefix = "tcp."

// statName is what a stat name pattern of the mesh config is expanded for: the
// service (nil for none) and its host, the subset, and the service port.
type statName struct {
	svc      *registry.Service
	host     string
	subset   string
	port     uint32
	portName string
	// target is %TARGET_PORT%: "0" for outbound clusters, the workload's port for
	// inbound ones; "" leaves it as written, as istiod does in inbound TCP proxies.
	target string
}

// expand returns pattern with Istio's placeholders replaced: %SERVICE% (a Kubernetes
// service's <name>.<namespace>, otherwise the host), %SERVICE_NAME% (a Kubernetes
// service's name, otherwise the host), %SERVICE_FQDN%, %SERVICE_PORT%,
// %SERVICE_PORT_NAME%, %SUBSET_NAME% and %TARGET_PORT%.
func (n statName) expand(pattern string) string {
	short, name := n.host, n.host
	if n.svc != nil && n.svc.IsKubernetesService() {
		name, _, _ = strings.Cut(n.host, ".")
		short = name + "." + n.svc.Namespace
	}
	r := []string{
		"%SERVICE%", short,
		"%SERVICE_NAME%", name,
		"%SERVICE_FQDN%", n.host,
		"%SUBSET_NAME%", n.subset,
		"%SERVICE_PORT%", strconv.FormatUint(uint64(n.port), 10),
		"%SERVICE_PORT_NAME%", n.portName,
	}
	if n.target != "" {
		r = append(r, "%TARGET_PORT%", n.target)
	}
	return strings.NewReplacer(r...).Replace(pattern)
}

// outboundStatName is the stat name of the outbound cluster name of svc's port and
// subset, and of a TCP proxy to it (without the delimiter): the mesh's
// outboundClusterStatName, else the cluster's name.
func outboundStatName(ctx *Context, svc *registry.Service, port registry.Port, subset, name string) string {
	pattern := ctx.Mesh.GetOutboundClusterStatName()
	if pattern == "" || svc == nil {
		return name
	}
	return statName{svc: svc, host: svc.Hostname, subset: subset, port: port.Number, portName: port.Name, target: "0"}.expand(pattern)
}
