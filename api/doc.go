// Package api defines the resources navarch stores and serves: Istio's configuration
// kinds (types from istio.io/api), their decoding from YAML or JSON, and their
// validation.
//
// A Resource is one object as a user wrote it: a Kind, metadata and a typed Spec.
// Decode turns a byte stream of one or more YAML or JSON documents into Resources,
// rejecting unknown fields and wrong types with errors that name the document, the
// resource and the field path. Validate applies the semantic rules Istio's own
// validation applies (hosts, weights, regexes, ports, subsets, ...).
//
// Every problem is a *DocumentError ("reviews.yaml: document 2: VirtualService
// default/reviews: spec.http[0].route[1].weight: must not be negative, got -1");
// Decode and Validate join them with errors.Join and DocumentErrors splits them
// again. Documents that are not mesh configuration (a Kubernetes Service in the same
// file) come back as Skipped, not as errors; Istio's mesh ConfigMap (istio of
// istio-system) is the one ConfigMap taken: it becomes the MeshConfig kind
// (meshconfig.go), whose checks follow Istio's ValidateMeshConfig rather than a
// webhook (Istio has none for it), and are stricter where Istio would only warn.
//
// Specs are decoded by walking the JSON tree against the spec message's protoreflect
// descriptor (walk.go), which reads fields the way Istio's own decoder does (JSON or
// proto field names, durations such as "1m" or "1h30m") but reports every unknown
// field and wrong type with its path, and, as the API server does with Istio's CRDs,
// takes enums by name only and refuses some fields given empty (presentRules).
//
// The rule is Istio's: accept what Istio accepts when the document is applied to a
// Kubernetes cluster with Istio (its CRDs' schemas and CEL rules, then istiod's
// webhook), reject what it rejects. istio_oracle_test.go holds navarch to it: it runs
// Istio's own validation (istio-validate, built by `make peers` from
// e2e/peers/istio) on Istio's test corpus, on testdata/oracle-seeds.yaml (every kind,
// most fields) and on some 40,000 documents derived from them with one change each
// (a value made empty, negative, out of range, of the wrong type, a bad regex; a
// field or key removed, renamed or added), and fails on any disagreement. Where
// Istio accepts what a proxy would refuse (a Maglev table of 1, a payload header
// with a line break), navarch accepts it too and the translation leaves it out.
// The one deliberate difference: HTTPRoute's removed websocketUpgrade is accepted
// and dropped (corpus_test.go says why).
//
// Nothing in this package does I/O; every function is safe for concurrent use.
package api
