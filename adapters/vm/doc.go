// Package vm registers workloads outside any platform (VMs, bare processes) as
// WorkloadEntries of their WorkloadGroup for as long as they are connected, as
// Istio's WorkloadGroup auto-registration does.
//
// A workload asks to be registered by connecting to a node's xDS over TLS (15012)
// with node metadata AUTO_REGISTER_GROUP naming a WorkloadGroup of its namespace:
// istio-agent does so with ISTIO_META_AUTO_REGISTER_GROUP, and so does `navarch
// agent run --group`. The node checks that the identity the workload proved (its
// certificate) is the group's (namespace and template service account), then writes
// a WorkloadEntry built as istiod builds it:
//
//   - name <group>-<ip> (IPv6 colons as dashes), -<network> appended when the proxy
//     names its network;
//   - spec: the group's template, with the proxy's address, network and locality;
//   - labels: the template's, then the group's metadata labels, then the labels the
//     proxy sent (LABELS), each overriding the one before;
//   - annotations istio.io/autoRegistrationGroup, istio.io/workloadController (the
//     node holding the connection), istio.io/connectedAt and, once the proxy has
//     gone, istio.io/disconnectedAt instead.
//
// A change of the group reaches the entries of its connected proxies: each node
// watches the WorkloadGroups and writes again, built from the new group, the
// entries it holds that the change alters (istiod builds an entry only when its
// proxy connects). A deleted group takes the entries with it, as Kubernetes
// collects istiod's (the group owns them), and brings them back when applied again,
// as istiod registers the proxies connected when a group is added. A group no
// longer admitting the proxy's identity (another template service account) takes
// its entry the same way, and brings it back if it admits the proxy again.
//
// The entry lives in the registry space of source "vm"
// (/navarch/registry/vm/networking.istio.io/WorkloadEntry/<ns>/<name>), so it is
// shown by `navarch registry`, not `navarch get`, and a user's configuration is never
// overwritten by it.
//
// Lifetime. Every node writes its entries attached to its own etcd lease (one per
// node, renewed while the node is alive and in the quorum):
//
//   - the proxy disconnects from a live node: the node marks the entry
//     disconnected and deletes it after the grace period, unless the proxy
//     reconnected (to this node or another) in between;
//   - the proxy moves to another node: that node rewrites the entry with its own
//     lease and controller, and the first node's delayed delete, a compare-and-swap
//     on the revision it wrote, finds the entry changed and leaves it;
//   - the node dies: its lease ends a grace period later and etcd deletes every
//     entry still attached to it, that is, of proxies that did not reconnect
//     elsewhere;
//   - the node is cut off from its quorum: once its lease has gone unrenewed for
//     half its TTL the node refuses new registrations and ends the streams of the
//     proxies registered through it (Unavailable), so that they register with
//     another node before the lease ends; a node that lost its lease and is back in
//     the quorum takes a new one and writes the entries of the proxies still
//     connected to it again.
//
// So an entry outlives its workload by about one grace period however the workload
// or its node went away, and no node needs to sweep for orphans.
//
// Health. A proxy that reports its health (Istio's health requests on the xDS stream,
// of type istio.v1.HealthInformation: no error detail when healthy, the failing
// probe's message otherwise)
// has it recorded on its entry (navarch.io/health: unhealthy), which takes it out of
// load balancing until it reports healthy again. A proxy whose first request is a
// health report is registered with that health, so a workload that starts failing its
// probe never receives traffic.
package vm
