package api

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	meshconfig "istio.io/api/mesh/v1alpha1"
)

// Skipped is a document Decode read but did not turn into a Resource because it is not
// mesh configuration (a Kubernetes Service or Deployment, say).
type Skipped struct {
	Source     string // where the document came from: "bookinfo.yaml: document 3"
	APIVersion string
	Kind       string
	Name       string
	Reason     string
}

// Reasons given in Skipped.
const (
	// ReasonNotMesh is the reason for skipping a document of a non-Istio API group.
	ReasonNotMesh = "not mesh configuration; navarch ignores it"
	// ReasonNotServed is the reason for skipping a document of another Istio API
	// group (extensions.istio.io, install.istio.io, ...).
	ReasonNotServed = "an Istio kind navarch does not serve; navarch ignores it"
)

const (
	istioGroupSuffix = ".istio.io"
	listKind         = "List"
	// maxListDepth is how deep Lists may nest: a List of resources, not of Lists.
	maxListDepth = 1
)

// Decode parses every YAML or JSON document in data: YAML documents separated by
// "---" lines (empty and comment-only documents are ignored), a stream of JSON
// objects, a JSON list of objects, or a Kubernetes `kind: List` whose items are
// resources. source names the input ("bookinfo.yaml", "stdin") in errors and in
// Skipped. Resources without metadata.namespace are put in defaultNamespace, or in
// DefaultNamespace when that is empty. A document naming a namespace other than a
// non-empty defaultNamespace is an error, as kubectl refuses one that contradicts -n.
//
// Documents of API groups other than Istio's networking, security and telemetry
// groups (a Kubernetes Service, a Deployment) are returned as Skipped. Every other
// document must be a valid resource of a kind navarch serves: its spec is decoded
// strictly (unknown fields and wrong types are errors) and checked with Validate.
//
// If any document is invalid, Decode returns no resources and an error that
// reports every problem of every document, each a *DocumentError (see
// DocumentErrors). Skipped documents are returned either way.
func Decode(source string, data []byte, defaultNamespace string) ([]*Resource, []Skipped, error) {
	d := newDecoder(source, defaultNamespace, true)
	d.run(data)
	if len(d.errs) > 0 {
		return nil, d.skipped, errors.Join(d.errs...)
	}
	return d.resources, d.skipped, nil
}

// DecodeKeys parses only the apiVersion, kind and metadata of every document in data,
// for commands that need to know which resources a file names but not what they
// say (`navarch delete -f`). The spec is not decoded and not validated. Documents,
// Skipped and errors are as for Decode.
func DecodeKeys(source string, data []byte, defaultNamespace string) ([]Key, []Skipped, error) {
	d := newDecoder(source, defaultNamespace, false)
	d.run(data)
	if len(d.errs) > 0 {
		return nil, d.skipped, errors.Join(d.errs...)
	}
	keys := make([]Key, len(d.resources))
	for i, r := range d.resources {
		keys[i] = r.Key()
	}
	return keys, d.skipped, nil
}

// decoder holds the state of one Decode or DecodeKeys call.
type decoder struct {
	source    string
	namespace string
	explicit  bool // namespace was given: documents that name another are refused
	full      bool // decode and validate specs (Decode), or only envelopes (DecodeKeys)

	resources []*Resource
	skipped   []Skipped
	errs      []error
}

func newDecoder(source, namespace string, full bool) *decoder {
	d := &decoder{source: source, namespace: namespace, explicit: namespace != "", full: full}
	if namespace == "" {
		d.namespace = DefaultNamespace
	}
	return d
}

// location is where a document is in the input.
type location struct {
	doc, item, line int
}

// where names the location for Skipped.Source: "bookinfo.yaml: document 3".
func (l location) where(source string) string {
	s := source + ": document " + strconv.Itoa(l.doc)
	if l.item >= 0 {
		s += ": items[" + strconv.Itoa(l.item) + "]"
	}
	return s
}

func (d *decoder) run(data []byte) {
	for _, doc := range splitDocuments(data) {
		loc := location{doc: doc.number, item: -1, line: doc.line}
		if doc.err != nil {
			d.fail(loc, "", &problems{errs: []*DocumentError{{Item: -1, Reason: doc.err.Error()}}})
			continue
		}
		d.document(loc, doc.value, 0)
	}
}

// fail records the problems of the document at loc.
func (d *decoder) fail(loc location, resource string, p *problems) {
	for _, e := range p.errs {
		e.Source, e.Document, e.Item, e.Line, e.Resource = d.source, loc.doc, loc.item, loc.line, resource
		d.errs = append(d.errs, e)
	}
}

// document decodes one document (or one item of a List) into a resource, a
// Skipped entry, or errors.
func (d *decoder) document(loc location, v any, depth int) {
	p := &problems{}
	obj, ok := v.(map[string]any)
	if !ok {
		p.add("", "a document must be an object with apiVersion and kind, got %s", describe(v))
		d.fail(loc, "", p)
		return
	}
	apiVersion := envelopeString(p, obj, "apiVersion")
	kind := envelopeString(p, obj, "kind")
	if p.count() > 0 {
		d.fail(loc, "", p)
		return
	}
	if isList(kind, obj) {
		d.list(loc, obj, depth)
		return
	}
	group, _, qualified := strings.Cut(apiVersion, "/")
	if !qualified && !strings.Contains(apiVersion, ".") {
		group = "" // the Kubernetes core group: "v1"
	}
	if group == "" && kind == configMapKind && d.isMeshConfigMap(obj) {
		d.meshConfigMap(loc, obj)
		return
	}
	if !meshGroup(group) || unservedKinds[group+"/"+kind] {
		d.skip(loc, apiVersion, kind, obj, group)
		return
	}
	k := resolveKind(p, group, apiVersion, kind)
	if k == nil {
		d.fail(loc, "", p)
		return
	}
	if r := d.resource(p, k, obj); p.count() > 0 {
		d.fail(loc, resourceName(k, r.Meta), p)
	} else {
		d.resources = append(d.resources, r)
	}
}

// resource decodes the metadata and, for Decode, the spec of a document of kind k.
func (d *decoder) resource(p *problems, k *Kind, obj map[string]any) *Resource {
	if d.full {
		for _, key := range sortedKeys(obj) {
			switch key {
			case "apiVersion", "kind", "metadata", "spec", "status":
			default:
				p.add(key, "unknown field %q; a resource has apiVersion, kind, metadata and spec", key)
			}
		}
	}
	r := &Resource{Kind: k, Meta: parseMeta(p, obj["metadata"], d.full)}
	switch {
	case r.Meta.Namespace == "":
		r.Meta.Namespace = d.namespace
	case d.explicit && r.Meta.Namespace != d.namespace:
		// As kubectl: -n names where the documents go, and a document that says
		// otherwise is a mistake, not an override.
		p.add("metadata.namespace", "%q does not match the namespace given (-n %s); give -n %s, or no -n", r.Meta.Namespace, d.namespace, r.Meta.Namespace)
	}
	validateMeta(p, k, &r.Meta, d.full)
	if !d.full {
		return r
	}
	r.Spec = k.NewSpec()
	before := p.count()
	decodeSpec("spec", obj["spec"], r.Spec.ProtoReflect(), p)
	if m, ok := r.Spec.(*meshconfig.MeshConfig); ok {
		meshBoolDefaults(obj["spec"], m)
	}
	if p.count() == before {
		validateSpec(p, r)
	}
	return r
}

func (d *decoder) list(loc location, obj map[string]any, depth int) {
	items, ok := obj["items"].([]any)
	if !ok && obj["items"] != nil {
		p := &problems{}
		p.add("items", "must be a list, got %s", describe(obj["items"]))
		d.fail(loc, "", p)
		return
	}
	if depth >= maxListDepth {
		p := &problems{}
		p.add("items", "a List must not contain another List")
		d.fail(loc, "", p)
		return
	}
	for i, item := range items {
		d.document(location{doc: loc.doc, item: i, line: loc.line}, item, depth+1)
	}
}

func (d *decoder) skip(loc location, apiVersion, kind string, obj map[string]any, group string) {
	reason := ReasonNotMesh
	if strings.HasSuffix(group, istioGroupSuffix) {
		reason = ReasonNotServed
	}
	name := ""
	if meta, ok := obj["metadata"].(map[string]any); ok {
		name, _ = meta["name"].(string)
	}
	d.skipped = append(d.skipped, Skipped{
		Source: loc.where(d.source), APIVersion: apiVersion, Kind: kind, Name: name, Reason: reason,
	})
}

// envelopeString returns the string field key of a document, recording a problem
// when it is missing or not a string.
func envelopeString(p *problems, obj map[string]any, key string) string {
	v, ok := obj[key]
	if !ok || v == nil || v == "" {
		p.add(key, "required")
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.add(key, "must be a string, got %s", describe(v))
	}
	return s
}

// isList reports whether a document is a Kubernetes List (kind "List", or a typed
// list such as "VirtualServiceList" with items).
func isList(kind string, obj map[string]any) bool {
	if kind == listKind {
		return true
	}
	_, hasItems := obj["items"]
	return hasItems && strings.HasSuffix(kind, listKind)
}

// unservedKinds are the kinds Istio serves in the groups navarch serves that navarch
// does not: documents of them are skipped (with ReasonNotServed), where another kind
// of those groups is refused as a mistake. ProxyConfig sets what Istio's injector and
// agent start a proxy with (concurrency, image, environment), nothing istiod sends.
var unservedKinds = map[string]bool{GroupNetworking + "/ProxyConfig": true}

// meshGroup reports whether group is one of the Istio groups navarch serves.
func meshGroup(group string) bool {
	switch group {
	case GroupNetworking, GroupSecurity, GroupTelemetry, GroupNavarch:
		return true
	}
	return false
}

// resolveKind finds the kind of a document of a mesh group, or records why there is none.
func resolveKind(p *problems, group, apiVersion, kind string) *Kind {
	if k, ok := KindFor(apiVersion, kind); ok {
		return k
	}
	var served []string
	for _, k := range kinds {
		if k.Group != group {
			continue
		}
		if k.Name == kind {
			versions := make([]string, len(k.Versions))
			for i, v := range k.Versions {
				versions[i] = k.Group + "/" + v
			}
			p.add("apiVersion", "%s is not served as %q; served: %s", kind, apiVersion, strings.Join(versions, ", "))
			return nil
		}
		served = append(served, k.Name)
	}
	sort.Strings(served)
	p.add("kind", "%q of %s is not served by navarch; served kinds: %s", kind, group, strings.Join(served, ", "))
	return nil
}

// resourceName is "Kind namespace/name" for errors.
func resourceName(k *Kind, m ObjectMeta) string {
	if m.Name == "" {
		return fmt.Sprintf("%s %s/(unnamed)", k.Name, m.Namespace)
	}
	return fmt.Sprintf("%s %s/%s", k.Name, m.Namespace, m.Name)
}
