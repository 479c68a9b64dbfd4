package api

import (
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
)

// API groups of Istio's configuration kinds.
const (
	GroupNetworking = "networking.istio.io"
	GroupSecurity   = "security.istio.io"
	GroupTelemetry  = "telemetry.istio.io"
	// GroupNavarch holds the kinds that are navarch's own: the mesh config.
	GroupNavarch = "navarch.io"
)

// Kind describes one resource kind: how users name it and which Go type holds its spec.
// Kinds are values shared read-only by the whole program; compare them by pointer.
type Kind struct {
	// Group is the API group, e.g. "networking.istio.io".
	Group string
	// Name is the kind as written in a document's `kind:` field, e.g. "VirtualService".
	Name string
	// Plural and Singular are the lower-case names the CLI accepts, e.g. "virtualservices".
	Plural, Singular string
	// Short are the short names the CLI accepts, e.g. "vs".
	Short []string
	// Versions are the apiVersion versions the kind is served under, preferred first.
	// Decoded resources are stored and printed under the first.
	Versions []string

	newSpec func() proto.Message
}

// NewSpec returns an empty spec message of the kind's type.
func (k *Kind) NewSpec() proto.Message { return k.newSpec() }

// APIVersion returns the preferred apiVersion, e.g. "networking.istio.io/v1".
func (k *Kind) APIVersion() string { return k.Group + "/" + k.Versions[0] }

// Serves reports whether apiVersion (group/version) is one this kind is served under.
func (k *Kind) Serves(apiVersion string) bool {
	group, version, ok := strings.Cut(apiVersion, "/")
	if !ok || group != k.Group {
		return false
	}
	for _, v := range k.Versions {
		if v == version {
			return true
		}
	}
	return false
}

// String returns the kind's name.
func (k *Kind) String() string { return k.Name }

var networkingVersions = []string{"v1", "v1beta1", "v1alpha3"}

// The kinds navarch serves.
var (
	VirtualService = &Kind{Group: GroupNetworking, Name: "VirtualService", Plural: "virtualservices", Singular: "virtualservice",
		Short: []string{"vs"}, Versions: networkingVersions,
		newSpec: func() proto.Message { return &networking.VirtualService{} }}
	DestinationRule = &Kind{Group: GroupNetworking, Name: "DestinationRule", Plural: "destinationrules", Singular: "destinationrule",
		Short: []string{"dr"}, Versions: networkingVersions,
		newSpec: func() proto.Message { return &networking.DestinationRule{} }}
	Gateway = &Kind{Group: GroupNetworking, Name: "Gateway", Plural: "gateways", Singular: "gateway",
		Short: []string{"gw"}, Versions: networkingVersions,
		newSpec: func() proto.Message { return &networking.Gateway{} }}
	ServiceEntry = &Kind{Group: GroupNetworking, Name: "ServiceEntry", Plural: "serviceentries", Singular: "serviceentry",
		Short: []string{"se"}, Versions: networkingVersions,
		newSpec: func() proto.Message { return &networking.ServiceEntry{} }}
	Sidecar = &Kind{Group: GroupNetworking, Name: "Sidecar", Plural: "sidecars", Singular: "sidecar",
		Versions: networkingVersions,
		newSpec:  func() proto.Message { return &networking.Sidecar{} }}
	WorkloadEntry = &Kind{Group: GroupNetworking, Name: "WorkloadEntry", Plural: "workloadentries", Singular: "workloadentry",
		Short: []string{"we"}, Versions: networkingVersions,
		newSpec: func() proto.Message { return &networking.WorkloadEntry{} }}
	WorkloadGroup = &Kind{Group: GroupNetworking, Name: "WorkloadGroup", Plural: "workloadgroups", Singular: "workloadgroup",
		Short: []string{"wg"}, Versions: networkingVersions,
		newSpec: func() proto.Message { return &networking.WorkloadGroup{} }}
	// EnvoyFilter patches the Envoy configuration built for sidecars and gateways;
	// Istio serves it as v1alpha3 only.
	EnvoyFilter = &Kind{Group: GroupNetworking, Name: "EnvoyFilter", Plural: "envoyfilters", Singular: "envoyfilter",
		Versions: []string{"v1alpha3"},
		newSpec:  func() proto.Message { return &networking.EnvoyFilter{} }}
	PeerAuthentication = &Kind{Group: GroupSecurity, Name: "PeerAuthentication", Plural: "peerauthentications", Singular: "peerauthentication",
		Short: []string{"pa"}, Versions: []string{"v1", "v1beta1"},
		newSpec: func() proto.Message { return &security.PeerAuthentication{} }}
	AuthorizationPolicy = &Kind{Group: GroupSecurity, Name: "AuthorizationPolicy", Plural: "authorizationpolicies", Singular: "authorizationpolicy",
		Short: []string{"ap"}, Versions: []string{"v1", "v1beta1"},
		newSpec: func() proto.Message { return &security.AuthorizationPolicy{} }}
	RequestAuthentication = &Kind{Group: GroupSecurity, Name: "RequestAuthentication", Plural: "requestauthentications", Singular: "requestauthentication",
		Short: []string{"ra"}, Versions: []string{"v1", "v1beta1"},
		newSpec: func() proto.Message { return &security.RequestAuthentication{} }}
	Telemetry = &Kind{Group: GroupTelemetry, Name: "Telemetry", Plural: "telemetries", Singular: "telemetry",
		Short: []string{"telemetry"}, Versions: []string{"v1", "v1alpha1"},
		newSpec: func() proto.Message { return &telemetry.Telemetry{} }}
	// MeshConfig is Istio's mesh config (istio.mesh.v1alpha1.MeshConfig), which Istio
	// keeps in the ConfigMap istio of istio-system; see meshconfig.go.
	MeshConfig = &Kind{Group: GroupNavarch, Name: "MeshConfig", Plural: "meshconfigs", Singular: "meshconfig",
		Short: []string{"mesh"}, Versions: []string{"v1"},
		newSpec: func() proto.Message { return &meshconfig.MeshConfig{} }}
)

// kinds lists every kind, in the order `navarch get all` prints them.
var kinds = []*Kind{
	ServiceEntry, WorkloadEntry, WorkloadGroup, VirtualService, DestinationRule, Gateway, Sidecar, EnvoyFilter,
	PeerAuthentication, AuthorizationPolicy, RequestAuthentication, Telemetry, MeshConfig,
}

// Kinds returns every kind navarch serves. The slice must not be modified.
func Kinds() []*Kind { return kinds }

// LookupKind finds a kind by any of the names a user may type: the kind name, plural,
// singular or short name (case-insensitive), optionally qualified by group
// ("virtualservices.networking.istio.io").
func LookupKind(name string) (*Kind, bool) {
	name = strings.ToLower(name)
	base, group, _ := strings.Cut(name, ".")
	for _, k := range kinds {
		if group != "" && group != k.Group {
			continue
		}
		if base == strings.ToLower(k.Name) || base == k.Plural || base == k.Singular {
			return k, true
		}
		for _, s := range k.Short {
			if base == s {
				return k, true
			}
		}
	}
	return nil, false
}

// KindFor finds the kind a document's apiVersion and kind fields name.
// ok is false when the kind is unknown or not served under that apiVersion.
func KindFor(apiVersion, kind string) (k *Kind, ok bool) {
	for _, k := range kinds {
		if k.Name == kind && k.Serves(apiVersion) {
			return k, true
		}
	}
	return nil, false
}

// KindNames returns the plural names of all kinds, sorted, for help and error texts.
func KindNames() []string {
	names := make([]string, 0, len(kinds))
	for _, k := range kinds {
		names = append(names, k.Plural)
	}
	sort.Strings(names)
	return names
}
