package client

import (
	"encoding/json"
	"time"

	"github.com/navarch/navarch/api"
)

// File is one input of an apply or delete: its name (for error messages) and bytes.
type File struct {
	Source string `json:"source"`
	Data   string `json:"data"`
}

// ApplyRequest is the body of POST /api/v1/apply and /api/v1/delete.
type ApplyRequest struct {
	// Namespace is given to documents that name none ("default" when empty).
	Namespace string `json:"namespace,omitempty"`
	Files     []File `json:"files"`
	// DryRun checks the documents and reports what applying them would do, and
	// writes nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// Result is what happened to one resource.
type Result struct {
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace"`
	Name            string `json:"name"`
	Action          string `json:"action"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	Error           string `json:"error,omitempty"`
	// Warnings are what Istio's validation warns of in the resource applied
	// (api.Warnings): "<field>: <reason>", as Istio's webhook words the reason.
	Warnings []string `json:"warnings,omitempty"`
}

// ApplyResponse is the answer to an apply or delete.
type ApplyResponse struct {
	Results []Result      `json:"results"`
	Skipped []api.Skipped `json:"skipped,omitempty"`
	// Revision is the store revision after the write (of the last resource
	// written or deleted).
	Revision int64 `json:"revision,omitempty"`
}

// ListResponse is the answer to GET /api/v1/config/<kind>.
type ListResponse struct {
	Revision int64             `json:"revision"`
	Items    []json.RawMessage `json:"items"`
}

// AnalyzeResponse is the answer to POST /api/v1/analyze: what analysis found in the
// node's configuration and registry, with the request's documents applied on top.
type AnalyzeResponse struct {
	Revision int64             `json:"revision"`
	Messages []AnalysisMessage `json:"messages"`
}

// AnalysisMessage is one finding: Istio's code and level (Error, Warning, Info), the
// resource it is about and what is wrong.
type AnalysisMessage struct {
	Code      string `json:"code"`
	Level     string `json:"level"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Message   string `json:"message"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// RegistryListing is the answer to GET /debug/registry: every service the node knows,
// with its endpoints, and the sources whose data may be out of date.
type RegistryListing struct {
	Revision int64            `json:"revision"`
	Services []ServiceListing `json:"services"`
	// Unselected are the workloads no service selects (a VM registered before its
	// ServiceEntry was applied, a WorkloadEntry whose labels match none): they get
	// no traffic.
	Unselected []EndpointListing `json:"unselected,omitempty"`
	// Sources is the sync status of each registry source (consul, kubernetes, ...).
	Sources []SourceListing `json:"sources,omitempty"`
}

// SourceListing is how a registry source's last sync went.
type SourceListing struct {
	Source string `json:"source"`
	// Stale is true when the source cannot be reached: its last known entries are
	// kept and served.
	Stale    bool   `json:"stale"`
	LastSync string `json:"last_sync,omitempty"`
	Error    string `json:"error,omitempty"`
	Node     string `json:"node,omitempty"`
}

// ServiceListing is one service of a RegistryListing.
type ServiceListing struct {
	Host       string `json:"host"`
	Namespace  string `json:"namespace"`
	Source     string `json:"source"`
	Origin     string `json:"origin"`
	Stale      bool   `json:"stale,omitempty"`
	Resolution string `json:"resolution"`
	// Addresses are the service's own; AutoAddresses those allocated to a
	// ServiceEntry host without any, which proxies with DNS capture know it by.
	Addresses     []string          `json:"addresses,omitempty"`
	AutoAddresses []string          `json:"autoAddresses,omitempty"`
	Ports         []PortListing     `json:"ports"`
	Endpoints     []EndpointListing `json:"endpoints"`
	// TrafficDistribution is the service's preference for nearby endpoints
	// (PreferSameZone, PreferSameNode); NodeLocal, that clients get only those on
	// their node.
	TrafficDistribution string `json:"trafficDistribution,omitempty"`
	NodeLocal           bool   `json:"nodeLocal,omitempty"`
}

// PortListing is one port of a service.
type PortListing struct {
	Name       string `json:"name"`
	Number     uint32 `json:"number"`
	Protocol   string `json:"protocol,omitempty"`
	TargetPort uint32 `json:"targetPort,omitempty"`
}

// EndpointListing is one workload behind a service.
type EndpointListing struct {
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	Address        string            `json:"address"`
	Ports          map[string]uint32 `json:"ports,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Locality       string            `json:"locality,omitempty"`
	Network        string            `json:"network,omitempty"`
	Weight         uint32            `json:"weight,omitempty"`
	ServiceAccount string            `json:"serviceAccount,omitempty"`
	// Node is the node the workload runs on, where known.
	Node    string `json:"node,omitempty"`
	Healthy bool   `json:"healthy"`
	Source  string `json:"source"`
	// Stale is true when the endpoint's source cannot be reached now.
	Stale bool `json:"stale,omitempty"`
}

// MemberInfo is one node of the cluster, as GET /api/v1/members describes it: what
// gossip says of it and what etcd says of its member.
type MemberInfo struct {
	Name string `json:"name"`
	// Gossip is alive, failed, left, or "-" for a node gossip does not know.
	Gossip string `json:"gossip"`
	// GossipAddr is the address gossip knows the node at.
	GossipAddr string `json:"gossip_addr,omitempty"`
	// Etcd is the member's role: leader, follower or learner; "-" when it has no
	// member (not started, or removed).
	Etcd   string `json:"etcd"`
	EtcdID string `json:"etcd_id,omitempty"`
	// EtcdPeer is the peer URL the cluster records for the member.
	EtcdPeer string `json:"etcd_peer,omitempty"`
	XDS      string `json:"xds,omitempty"`
	// XDSTLS serves gRPC over TLS: the CSR API and xDS for proxies that authenticate
	// (navarch agent, istio-agent).
	XDSTLS string `json:"xds_tls,omitempty"`
	HTTP   string `json:"http,omitempty"`
	// DNS answers for XDSName with every live node's xDS IP, when the node serves it.
	DNS      string `json:"dns,omitempty"`
	XDSName  string `json:"xds_name,omitempty"`
	Proxies  int    `json:"proxies"`
	Revision int64  `json:"revision"`
	// Version is the node's build (navarch version), as it gossips it: during a
	// rolling upgrade, which nodes run the new one.
	Version string `json:"version,omitempty"`
	// CertExpires is when the certificate the node presents to the other members'
	// etcd ends (no later than the cluster CA; a restart issues a new one).
	CertExpires time.Time `json:"cert_expires,omitzero"`
	// BackupInterval is the node's --backup-interval in seconds, 0 when it saves
	// no scheduled backups; LastBackup is when it saved its newest.
	BackupInterval int64     `json:"backup_interval_seconds,omitempty"`
	LastBackup     time.Time `json:"last_backup,omitzero"`
	// XDSRevision is the revision of the configuration the node has pushed, what a
	// proxy connecting to it now is sent (the answering node only): it trails
	// Revision by up to the push debounce.
	XDSRevision int64 `json:"xds_revision,omitempty"`
	// Self marks the node that answered.
	Self bool `json:"self,omitempty"`
}

// SyncResponse says what a registry sync changed (or, dry, would change).
type SyncResponse struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Deleted   int `json:"deleted"`
	Unchanged int `json:"unchanged"`
	// Changes lists each write of a dry run (kind, namespace, name, action).
	Changes []Result `json:"changes,omitempty"`
	DryRun  bool     `json:"dry_run,omitempty"`
}

// WatchEvent is one line of a watch stream (GET /api/v1/config/<kind>?watch=true),
// as Kubernetes' watch events: Type is ADDED, MODIFIED or DELETED, with Object the
// resource (for DELETED, its last value, with the deletion's revision as its
// resourceVersion), BOOKMARK, with Object carrying only the revision the watch has
// reached (ResourceVersion), or ERROR, with Error saying why the stream ends.
type WatchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Watch event types.
const (
	WatchAdded    = "ADDED"
	WatchModified = "MODIFIED"
	WatchDeleted  = "DELETED"
	WatchBookmark = "BOOKMARK"
	WatchError    = "ERROR"
)

// ServiceDescription is a service as one proxy sees it (GET /debug/describe,
// `navarch describe service`): the service and its endpoints, the DestinationRule and
// VirtualService the proxy takes for it, what the proxy does on each port, the
// policies its endpoints serve under, and what analysis finds in those resources.
type ServiceDescription struct {
	Revision int64 `json:"revision"`
	// Proxy says who the description is for: "grpc sidecar in default".
	Proxy           string                     `json:"proxy"`
	Service         ServiceListing             `json:"service"`
	DestinationRule *RuleDescription           `json:"destinationRule,omitempty"`
	VirtualService  *VirtualServiceDescription `json:"virtualService,omitempty"`
	Ports           []PortDescription          `json:"ports"`
	// Inbound groups the service's endpoints by the policies they serve under.
	Inbound []InboundDescription `json:"inbound"`
	// Gateways are where gateways expose the service.
	Gateways []GatewayExposure `json:"gateways"`
	Messages []AnalysisMessage `json:"messages,omitempty"`
	// Errors are the build errors of the proxy's resources that concern the service.
	Errors []string `json:"errors,omitempty"`
}

// GatewayExposure is a Gateway's server that sends requests (or connections) to
// a service through a VirtualService bound to it.
type GatewayExposure struct {
	// Gateway is the Gateway ("ns/name"), Port and Protocol its server's.
	Gateway  string `json:"gateway"`
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol"`
	// Hosts are the names clients ask the gateway for there.
	Hosts          []string `json:"hosts"`
	VirtualService string   `json:"virtualService"`
	// Routes are the VirtualService's HTTP routes that reach the service (a
	// delegate's, merged with the route that delegates); none for TCP and TLS.
	Routes []RouteDescription `json:"routes,omitempty"`
	// Addresses are those of the gateway workloads the registry has (the ones the
	// Gateway's selector selects); none when the gateway is not registered.
	Addresses []string `json:"addresses,omitempty"`
}

// RuleDescription is the DestinationRule a proxy takes for a service.
type RuleDescription struct {
	Namespace string              `json:"namespace"`
	Name      string              `json:"name"`
	Host      string              `json:"host"`
	Subsets   []SubsetDescription `json:"subsets,omitempty"`
	// LoadBalancer is the top-level policy's: ROUND_ROBIN, LEAST_REQUEST,
	// "consistent hash (header x-user)", ...; empty when it sets none.
	LoadBalancer     string `json:"loadBalancer,omitempty"`
	ConnectionPool   bool   `json:"connectionPool,omitempty"`
	OutlierDetection bool   `json:"outlierDetection,omitempty"`
	// TLS is the top-level policy's TLS mode, empty when it sets none.
	TLS string `json:"tls,omitempty"`
}

// SubsetDescription is a DestinationRule subset and how many of the service's
// endpoints its labels select.
type SubsetDescription struct {
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	Endpoints int               `json:"endpoints"`
}

// VirtualServiceDescription is the VirtualService that routes a service for a
// proxy.
type VirtualServiceDescription struct {
	Namespace string             `json:"namespace"`
	Name      string             `json:"name"`
	Hosts     []string           `json:"hosts"`
	HTTP      []RouteDescription `json:"http,omitempty"`
	// TCP and TLS count the routes of those kinds.
	TCP int `json:"tcp,omitempty"`
	TLS int `json:"tls,omitempty"`
}

// RouteDescription is one HTTP route of a VirtualService.
type RouteDescription struct {
	Name string `json:"name,omitempty"`
	// Match lists the route's matches, each its conditions ANDed ("uri prefix /api,
	// header end-user exact jason"); empty: every request.
	Match        []string                 `json:"match,omitempty"`
	Destinations []DestinationDescription `json:"destinations,omitempty"`
	// Also is what else the route does: "fault abort 10% status 503", "timeout 2s",
	// "retries 3", "redirect", "delegate ns/name", ...
	Also []string `json:"also,omitempty"`
}

// DestinationDescription is one destination of a route, with its share of the
// route's traffic in percent.
type DestinationDescription struct {
	Host    string  `json:"host"`
	Subset  string  `json:"subset,omitempty"`
	Port    uint32  `json:"port,omitempty"`
	Weight  int32   `json:"weight,omitempty"`
	Percent float64 `json:"percent"`
}

// PortDescription is how a proxy reaches a service port: the security of its
// traffic there and why.
type PortDescription struct {
	Number   uint32 `json:"number"`
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	// TLS is "mTLS", "mTLS to 2 of 3 endpoints, plaintext to the others" (an
	// Envoy's automatic mTLS, by endpoint), "TLS" (originated to a server outside
	// the mesh), "plaintext" or "none" (no cluster for the port); Reason says what
	// decided it.
	TLS    string `json:"tls"`
	Reason string `json:"reason"`
}

// InboundDescription is some of a service's endpoints and the policies they serve
// under: the effective mTLS mode per service port (from PeerAuthentication) and
// the AuthorizationPolicies that apply to them.
type InboundDescription struct {
	Endpoints []string          `json:"endpoints"`
	MTLS      map[uint32]string `json:"mtls"`
	// PeerAuthentications are the policies the mode comes from ("ns/name"), the
	// most specific first.
	PeerAuthentications []string          `json:"peerAuthentications,omitempty"`
	Authorization       []PolicyReference `json:"authorization,omitempty"`
}

// PolicyReference names an AuthorizationPolicy and its action.
type PolicyReference struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action"`
}

// WorkloadDescription is one workload as the mesh sees it (GET
// /debug/describe?workload=..., `navarch describe workload`): the services it is an
// endpoint of, how it serves each of their ports (its port, the effective mTLS
// mode), the policies that apply to it, the Sidecar that scopes its proxy, and what
// analysis finds in those resources.
type WorkloadDescription struct {
	Revision int64           `json:"revision"`
	Workload EndpointListing `json:"workload"`
	// Origin is the resource that defines the workload ("WorkloadEntry ns/name").
	Origin   string                `json:"origin"`
	Services []WorkloadServiceInfo `json:"services"`
	// MTLS is the workload's mTLS mode where no policy names a port, and MTLSFrom
	// the PeerAuthentication it comes from ("ns/name"; empty: the default).
	MTLS     string `json:"mtls"`
	MTLSFrom string `json:"mtlsFrom,omitempty"`
	// PeerAuthentications are the policies its modes come from ("ns/name").
	PeerAuthentications []string          `json:"peerAuthentications,omitempty"`
	Authorization       []PolicyReference `json:"authorization,omitempty"`
	// Sidecar is the Sidecar that scopes the workload's proxy ("ns/name"), empty
	// for none.
	Sidecar string `json:"sidecar,omitempty"`
	// Gateways are the Gateways that select the workload (a gateway's), with the
	// servers it listens with.
	Gateways []WorkloadGateway `json:"gateways,omitempty"`
	Messages []AnalysisMessage `json:"messages,omitempty"`
}

// WorkloadGateway is a Gateway that selects a workload, and its servers.
type WorkloadGateway struct {
	Gateway string          `json:"gateway"` // "ns/name"
	Servers []GatewayServer `json:"servers"`
}

// GatewayServer is a Gateway's server as the gateway workload listens with it.
type GatewayServer struct {
	Port     uint32   `json:"port"`
	Name     string   `json:"name,omitempty"`
	Protocol string   `json:"protocol"`
	Hosts    []string `json:"hosts"`
	// Listen is the port the workload listens on for it (the gateway service's
	// target port for the server's port, as istiod translates it), Bind the
	// address it binds, if the server names one.
	Listen uint32 `json:"listen,omitempty"`
	Bind   string `json:"bind,omitempty"`
	// TLS is the server's TLS mode and credential ("SIMPLE credential shop-cert"),
	// empty for none.
	TLS string `json:"tls,omitempty"`
	// LeftOut says why the gateway does not listen with the server (a port it
	// shares with a server of another kind, ...); empty when it does.
	LeftOut string `json:"leftOut,omitempty"`
}

// WorkloadServiceInfo is a service a workload is an endpoint of, with the
// DestinationRule and VirtualService a client in the workload's namespace takes for
// it ("ns/name", empty for none).
type WorkloadServiceInfo struct {
	Host            string                `json:"host"`
	Namespace       string                `json:"namespace"`
	Ports           []WorkloadPortServing `json:"ports"`
	DestinationRule string                `json:"destinationRule,omitempty"`
	VirtualService  string                `json:"virtualService,omitempty"`
}

// WorkloadPortServing is a service port and how the workload serves it: on which
// port of its own, under which mTLS mode.
type WorkloadPortServing struct {
	Name     string `json:"name"`
	Number   uint32 `json:"number"`
	Protocol string `json:"protocol"`
	Target   uint32 `json:"target"`
	MTLS     string `json:"mtls"`
	MTLSFrom string `json:"mtlsFrom,omitempty"`
}
