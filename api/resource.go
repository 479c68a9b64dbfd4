package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// DefaultNamespace is the namespace of a resource that names none.
const DefaultNamespace = "default"

// ObjectMeta is the metadata of a resource, the subset of Kubernetes' ObjectMeta that
// means something outside Kubernetes.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// ResourceVersion is the etcd mod revision of the stored resource, in decimal.
	// Set by the store; on an update it is the revision the writer last read.
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// Generation counts the changes of the spec, starting at 1 on creation.
	Generation int64 `json:"generation,omitempty"`
	// CreationTimestamp is set by the store when the resource is created.
	CreationTimestamp *time.Time `json:"creationTimestamp,omitempty"`
}

// Revision returns ResourceVersion as a number, 0 when it is unset or malformed.
func (m *ObjectMeta) Revision() int64 {
	n, _ := strconv.ParseInt(m.ResourceVersion, 10, 64)
	return n
}

// Resource is one configuration object.
type Resource struct {
	Kind *Kind
	Meta ObjectMeta
	Spec proto.Message
}

// Key identifies a resource: its kind, namespace and name.
type Key struct {
	Kind      *Kind
	Namespace string
	Name      string
}

// String returns "Kind namespace/name", the form errors and logs use.
func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Kind.Name, k.Namespace, k.Name) }

// Key returns the resource's key.
func (r *Resource) Key() Key {
	return Key{Kind: r.Kind, Namespace: r.Meta.Namespace, Name: r.Meta.Name}
}

// String returns "Kind namespace/name".
func (r *Resource) String() string { return r.Key().String() }

// Clone returns a deep copy of r.
func (r *Resource) Clone() *Resource {
	c := &Resource{Kind: r.Kind, Meta: r.Meta, Spec: proto.Clone(r.Spec)}
	c.Meta.Labels = cloneMap(r.Meta.Labels)
	c.Meta.Annotations = cloneMap(r.Meta.Annotations)
	if r.Meta.CreationTimestamp != nil {
		t := *r.Meta.CreationTimestamp
		c.Meta.CreationTimestamp = &t
	}
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// SpecEqual reports whether two resources have equal specs, labels and annotations:
// whether writing b over a would change what a means.
func SpecEqual(a, b *Resource) bool {
	return a.Kind == b.Kind && proto.Equal(a.Spec, b.Spec) &&
		mapsEqual(a.Meta.Labels, b.Meta.Labels) && mapsEqual(a.Meta.Annotations, b.Meta.Annotations)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// document is the JSON form of a resource, as stored and as printed.
type document struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   ObjectMeta      `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
}

var specMarshal = protojson.MarshalOptions{UseProtoNames: false}

// MarshalJSON encodes the resource as a document under its kind's preferred apiVersion.
// The encoding is deterministic for equal resources.
func (r *Resource) MarshalJSON() ([]byte, error) {
	spec, err := specMarshal.Marshal(r.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", r, err)
	}
	// protojson output is deliberately unstable in whitespace; compact it.
	var compact json.RawMessage
	if err := json.Unmarshal(spec, &compact); err != nil {
		return nil, fmt.Errorf("encoding %s: %w", r, err)
	}
	if m, ok := r.Spec.(*meshconfig.MeshConfig); ok && !m.EnableTracing {
		// protojson leaves a false bool out, which Decode would read as Istio's
		// default, true (meshBoolDefaults): say it, so that what get prints
		// applies back the same.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(compact, &fields); err != nil {
			return nil, fmt.Errorf("encoding %s: %w", r, err)
		}
		fields["enableTracing"] = json.RawMessage("false")
		if compact, err = json.Marshal(fields); err != nil {
			return nil, fmt.Errorf("encoding %s: %w", r, err)
		}
	}
	return json.Marshal(document{APIVersion: r.Kind.APIVersion(), Kind: r.Kind.Name, Metadata: r.Meta, Spec: compact})
}

// Unmarshal decodes one resource in the JSON form MarshalJSON writes. It is meant for
// resources read back from the store: it checks the kind and the spec's field names but
// does not run Validate.
func Unmarshal(data []byte) (*Resource, error) {
	var d document
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decoding resource: %w", err)
	}
	k, ok := KindFor(d.APIVersion, d.Kind)
	if !ok {
		return nil, fmt.Errorf("decoding resource: unknown kind %s %q", d.APIVersion, d.Kind)
	}
	spec := k.NewSpec()
	if len(d.Spec) > 0 {
		if err := protojson.Unmarshal(d.Spec, spec); err != nil {
			return nil, fmt.Errorf("decoding %s %s/%s: %w", k.Name, d.Metadata.Namespace, d.Metadata.Name, err)
		}
	}
	return &Resource{Kind: k, Meta: d.Metadata, Spec: spec}, nil
}
