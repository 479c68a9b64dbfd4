package xds

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/registry"
)

// WorkloadGroupType is the type of a WorkloadGroup's spec on an xDS stream. A VM's
// agent (navarch agent run --probe-from-group) subscribes on its registration
// stream to its group, by name, and follows the group's readiness probe as it
// changes; istio-agent reads the probe only when the VM is set up. A proxy is sent
// only groups of its own namespace (which, over TLS, its certificate proves).
const WorkloadGroupType = "type.googleapis.com/istio.networking.v1alpha3.WorkloadGroup"

// workloadGroupResource is the spec of WorkloadGroup ns/name, named name; nil when
// there is no such group (the subscriber is then sent none).
func workloadGroupResource(snap *registry.Snapshot, ns, name string) (*Resource, error) {
	g := snap.WorkloadGroup(ns, name)
	if g == nil {
		return nil, nil
	}
	return newResource(WorkloadGroupType, name, g.Spec.(*networking.WorkloadGroup))
}
