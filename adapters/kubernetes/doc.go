// Package kubernetes brings a Kubernetes cluster's Services and pods into navarch's
// registry, as istiod's Kubernetes registry has them: a grpc-go client of the mesh
// dials xds:///reviews.default.svc.cluster.local:9080 and reaches the ready pods
// the Service selects, and Istio's DestinationRules and VirtualServices apply to
// them. navarch's configuration stays in etcd (navarch apply); the cluster gives
// inventory, and with Config.IstioConfig the Istio configuration it stores as
// Istio's custom resources, mirrored into etcd by Adapter.RunConfig
// (istioconfig.go).
//
// # Use
//
// New makes an Adapter from a Config (a kubeconfig, or "in-cluster"); its Run
// follows the cluster with informers (Services, pods, nodes and the EndpointSlices
// not kept by Kubernetes' own controller: list and watch) and
// mirrors it into its own registry space (source "kubernetes.<cluster id>") with
// store.Sync. Run it on one node at a time, under the election ElectionName names
// ("kubernetes/<cluster id>"): node does, with store.RunElected. A node that takes
// over lists everything before it writes anything, and Sync writes only
// differences, so a takeover neither duplicates nor loses entries. Changes are
// coalesced (Config.Coalesce, 50 ms of quiet, at most Config.CoalesceMax) into one
// write.
//
// Config.DiscoverySelectors, as Istio's discoverySelectors, limit what is mirrored
// to the namespaces whose labels match one of them (the informers still read every
// namespace's objects; namespaces are followed too, so a namespace that gains or
// loses a label joins or leaves at once). Without them, the mesh config's
// discoverySelectors do, read at every translation (Adapter.meshSelectors), which a
// change of the mesh config sets off (Store.WatchKeys).
//
// The credentials need get, list and watch on services, pods, nodes, namespaces and
// endpointslices, cluster-wide, and create on tokenreviews (ReviewToken).
//
// If the API server cannot be reached (or refuses the adapter), the entries last
// written stay and the source's status is marked stale (navarch registry warns)
// until it answers again. Informers retry on their own without telling anyone, so
// the adapter learns it from its HTTP transport: every request that fails or is
// answered with a server error, 401, 403 or 429 makes the source stale, any other
// answer fresh.
//
// # Translation
//
// Each Service of namespace ns becomes a ServiceEntry named after it in ns:
//
//   - the Service's labels, but topology.istio.io/network (an Istio east-west
//     gateway's mark, which navarch would read as pods' addresses being the
//     network's gateways: a Service so labelled makes a second ServiceEntry,
//     <name>.network-gateway, whose endpoints are its load balancer's and external
//     IPs, or the addresses its load balancer's host name has (gatewayResolver), on
//     its gateway port, 15443 or its label networking.istio.io/gatewayPort; for a
//     NodePort Service annotated traffic.istio.io/nodeSelector, the external IPs of
//     the nodes it selects on the port's node port);
//   - host <name>.<ns>.svc.<domain> (the node's --domain), its cluster IPs as
//     addresses (none for a headless Service), location MESH_INTERNAL, resolution
//     STATIC (NONE for a headless Service with a selector: its clients pick their
//     pod, and sidecars send them there), a workloadSelector equal to the Service's selector, exportTo from the
//     annotation networking.istio.io/exportTo, and the annotation
//     networking.istio.io/traffic-distribution from spec.trafficDistribution, else
//     that annotation on the Service, else on its namespace (trafficDistribution);
//   - a port per Service port, named as there ("port-<number>" when unnamed), with
//     Istio's protocol: appProtocol, else UDP for a UDP port, else the name's prefix
//     (grpc-*, http-*, http2-*, tcp-*, ...), else none; a numeric target port that
//     differs from the port is the ServiceEntry port's targetPort;
//   - an ExternalName Service: MESH_EXTERNAL, DNS resolution of the external name;
//   - a Service without a selector (endpoints kept by hand, or mirrored from its
//     Endpoints by Kubernetes): the endpoints of its EndpointSlices (label
//     kubernetes.io/service-name) listed in the ServiceEntry, those not known to
//     be unready, each once, at its first address, with the slice's port of each
//     Service port's name and its node's locality (else its zone). Slices labelled
//     as kept by the EndpointSlice controller (those of Services with selectors)
//     are not read: the pods say the same.
//
// Each pod that a Service selects, that has an IP and has not finished, becomes a
// WorkloadEntry named after it in its namespace: its IP, its labels (so subsets by
// version work as in Istio), its service account, its locality (the istio-locality
// label, "region.zone.subzone", else its node's topology.kubernetes.io/region,
// topology.kubernetes.io/zone and topology.istio.io/subzone labels), its network
// (label topology.istio.io/network, else Config.Network, else that label of the
// namespace Config.SystemNamespace), and the container port each named target port
// of the selecting Services resolves to (under the Service port's name; the first
// Service by name wins a port name two of them resolve differently). A pod that is
// not Ready, or is terminating, is marked unhealthy and gets no traffic, unless
// every Service selecting it publishes unready addresses (publishNotReadyAddresses). A selected
// WorkloadEntry of navarch's own configuration in the namespace joins the Service too,
// as a VM does in Istio.
package kubernetes
