// Package consul brings the services of a Consul catalog into navarch's registry,
// with no change on the Consul side: a grpc-go client of the mesh dials
// xds:///ratings.service.consul:9090 and reaches the healthy instances Consul knows,
// and Istio's DestinationRules and VirtualServices apply to them.
//
// # Use
//
// New makes an Adapter from a Config; Datacenters lists one Datacenter per configured
// datacenter. Each Datacenter's Run follows that datacenter's catalog and mirrors it
// into its own registry space (source "consul.<dc>", see SourceName) with
// store.Sync. Run it on one node at a time, under the election ElectionName names
// ("consul/<dc>"): node does, with store.RunElected. A node that takes over reads
// the whole catalog before it writes anything, and Sync writes only differences, so a
// takeover neither duplicates nor loses entries.
//
// # Following the catalog
//
// One blocking query on the service list and one per service on its instances and
// their checks (/v1/health/service/<name>), each answered by the agent only when what
// it reads changes; see watch.go. Changes are coalesced (Config.Coalesce, 50 ms of
// quiet, at most Config.CoalesceMax) into one Sync, which writes only the resources
// that differ, in batched transactions. A catalog of 1,000 instances over 200
// services costs 200 open requests at the agent and nothing else while it is idle;
// an instance that fails a check costs one read of its service and one etcd write.
// Consul's agent allows 200 concurrent connections per client address by default
// (limits.http_max_conns_per_client). Over HTTPS, HTTP/2 carries all the queries on
// a few connections. Over plain HTTP each open query holds a connection, so at most
// Config.MaxConnections (150) service queries are open at once (and the three
// others); a catalog with more services shares
// them, each query then waiting at most Config.SharedWaitTime (5 s) for a change, so a
// change is seen within about services/150 × 5 s instead of at once.
//
// If Consul cannot be read, the entries last written stay and the source's status is
// marked stale (navarch registry warns) until reads succeed again.
//
// # Translation
//
// For each Consul service in datacenter <dc> (names made valid DNS labels; a name
// that had to be changed ends in a hash of the original):
//
//   - a ServiceEntry per host: "<service>.service.<dc>.<suffix>", and in the primary
//     datacenter (the first configured, or the agent's own) also
//     "<service>.service.<suffix>", as Consul's DNS answers the short name from the
//     local datacenter. Namespace Config.Namespace ("consul"), named after the host,
//     location MESH_INTERNAL, resolution STATIC, and a workloadSelector on the labels
//     consul.navarch.io/service and consul.navarch.io/datacenter;
//   - its ports: one per distinct port its instances listen on, named
//     "<protocol>-<port>" ("grpc-9090"), with the protocol from the instance's
//     ServiceMeta "protocol" as Consul's service-defaults name it (http, http2, grpc,
//     tcp), else the service's service-defaults config entry's Protocol, else the
//     proxy-defaults "global" entry's Config "protocol" (as Consul's own proxies take
//     it), else http (a protocol Istio has no equivalent for counts as none);
//   - a WorkloadEntry per instance, named "<service>.<dc>.<node>.<service ID>":
//     address the service address, else the node's (with Config.TranslateWANAddrs,
//     in every datacenter but the primary, the addresses tagged "wan" first, as
//     Consul's translate_wan_addrs); ports mapping every service port
//     name to the instance's own port (instances of one service may listen on
//     different ports); locality the datacenter (as the region); weight the
//     instance's passing weight when above 1; annotations consul.navarch.io/node,
//     consul.navarch.io/service-id, navarch.io/workload-name (the service: the
//     workload Istio's metrics name); and navarch.io/health: unhealthy unless every
//     check of the instance and its node passes (warning counts as passing with
//     Config.WarningHealthy; maintenance mode is critical). Unhealthy instances stay
//     listed and get no traffic.
//
// Labels of a WorkloadEntry, so that DestinationRule subsets select Consul instances:
//
//   - tag "key=value": key: value
//   - bare tag that looks like a version ("v1", "v2.1", "v1.4.0-rc1"): version: <tag>
//   - any other bare tag: <tag>: "true"
//   - ServiceMeta key: value (wins over a tag setting the same key)
//   - consul.navarch.io/service and consul.navarch.io/datacenter (reserved)
//
// Keys and values are made valid Kubernetes label syntax (other characters become
// '-', ends trimmed to alphanumerics, cut to 63 characters); a key with nothing valid
// left is dropped. Left out entirely: Consul's own "consul" service, Connect proxies
// and gateways, instances without a port, and any resource that would still not be
// valid (logged).
package consul
