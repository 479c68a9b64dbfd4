package api

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// Validate checks r against the rules Istio's own validation applies (istio/istio
// pkg/config/validation): its metadata, then the semantic rules of its kind. The
// error joins one *DocumentError per problem, each naming the resource and the field
// path and saying what is wrong with which value; see DocumentErrors.
//
// Validate does not change r and is safe for concurrent use.
func Validate(r *Resource) error {
	if r == nil || r.Kind == nil {
		return &DocumentError{Item: -1, Reason: "invalid resource: no kind"}
	}
	p := &problems{}
	validateMeta(p, r.Kind, &r.Meta, true)
	validateSpec(p, r)
	return p.join(resourceName(r.Kind, r.Meta))
}

// validateSpec applies the rules of r's kind to its spec.
func validateSpec(p *problems, r *Resource) {
	if r.Spec == nil {
		p.add("spec", "required")
		return
	}
	if want := r.Kind.NewSpec().ProtoReflect().Descriptor().FullName(); r.Spec.ProtoReflect().Descriptor().FullName() != want {
		p.add("spec", "is a %s, want a %s for a %s", r.Spec.ProtoReflect().Descriptor().FullName(), want, r.Kind.Name)
		return
	}
	validateDryRun(p, r)
	switch s := r.Spec.(type) {
	case *networking.VirtualService:
		validateVirtualService(p, r.Meta.Namespace, s)
	case *networking.DestinationRule:
		validateDestinationRule(p, r.Meta.Namespace, s)
	case *networking.Gateway:
		validateGateway(p, s)
	case *networking.ServiceEntry:
		validateServiceEntry(p, r.Meta.Namespace, s)
	case *networking.Sidecar:
		validateSidecar(p, s)
	case *networking.WorkloadEntry:
		validateWorkloadEntry(p, "spec", s, false)
	case *networking.WorkloadGroup:
		validateWorkloadGroup(p, s)
	case *security.PeerAuthentication:
		validatePeerAuthentication(p, s)
	case *security.AuthorizationPolicy:
		validateAuthorizationPolicy(p, s)
	case *security.RequestAuthentication:
		validateRequestAuthentication(p, s)
	case *telemetry.Telemetry:
		validateTelemetry(p, s)
	case *networking.EnvoyFilter:
		validateEnvoyFilter(p, s)
	case *meshconfig.MeshConfig:
		validateMeshConfig(p, "spec", r.Meta, s)
	default:
		p.add("spec", "no validation for %T", r.Spec)
	}
}

// dryRunAnnotation makes an AuthorizationPolicy be evaluated but not enforced.
const dryRunAnnotation = "istio.io/dry-run"

// DryRun reports whether an AuthorizationPolicy is to be evaluated but not
// enforced: its istio.io/dry-run annotation says true (validation refuses a value
// that is not a boolean).
func DryRun(r *Resource) bool {
	v, _ := strconv.ParseBool(r.Meta.Annotations[dryRunAnnotation])
	return v
}

func validateDryRun(p *problems, r *Resource) {
	val, ok := r.Meta.Annotations[dryRunAnnotation]
	if !ok {
		return
	}
	path := mapKey("metadata.annotations", dryRunAnnotation)
	ap, isAP := r.Spec.(*security.AuthorizationPolicy)
	switch {
	case !isAP:
		p.add(path, "is only supported on AuthorizationPolicy")
	case ap.Action != security.AuthorizationPolicy_ALLOW && ap.Action != security.AuthorizationPolicy_DENY:
		p.add(path, "is only supported with action ALLOW or DENY, got %s", ap.Action)
	default:
		if _, err := strconv.ParseBool(val); err != nil {
			p.add(path, "must be true or false, got %q", val)
		}
	}
}

// Shared checks.

// named is a value with the field name it came from, for checks over several fields
// in a fixed order.
type named[T any] struct {
	name  string
	value T
}

// validatePort checks a port number: 1..65535.
func validatePort(p *problems, path string, port uint32) {
	if port < 1 || port > 65535 {
		p.add(path, "must be 1-65535, got %d", port)
	}
}

// validateDuration checks a duration Istio hands to Envoy: at least 1ms, in whole
// milliseconds. A nil duration is unset and valid.
func validateDuration(p *problems, path string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		p.add(path, "invalid duration: %v", err)
		return
	}
	dur := d.AsDuration()
	if dur < time.Millisecond {
		p.add(path, "must be at least 1ms, got %s", dur)
	} else if dur%time.Millisecond != 0 {
		p.add(path, "must be a whole number of milliseconds, got %s", dur)
	}
}

// validatePercent checks an integer percentage: 0..100.
func validatePercent(p *problems, path string, v int32) {
	if v < 0 || v > 100 {
		p.add(path, "must be 0-100, got %d", v)
	}
}

// validatePercentage checks a networking.Percent: 0, or 0.0001..100.
func validatePercentage(p *problems, path string, pct *networking.Percent) {
	if pct == nil {
		return
	}
	if v := pct.Value; v < 0 || v > 100 || (v > 0 && v < 0.0001) {
		p.add(field(path, "value"), "must be 0 or between 0.0001 and 100, got %g", v)
	}
}

// validateHostField checks a host name that may be a wildcard or a short name.
func validateHostField(p *problems, path, host string) {
	if host == "" {
		p.add(path, "required")
		return
	}
	if reason := hostError(host); reason != "" {
		p.add(path, "invalid host %q: %s", host, reason)
	}
}

// validateExportTo checks exportTo: ".", "*", namespaces, and "~" for ServiceEntry;
// no duplicates; "*" and "~" alone.
func validateExportTo(p *problems, path, namespace string, exportTo []string, serviceEntry bool) {
	seen := map[string]bool{}
	for i, e := range exportTo {
		ep := index(path, i)
		key := e
		if e == "." {
			key = namespace
		}
		switch {
		case seen[key]:
			p.add(ep, "duplicate entry %q", e)
		case e == "~" && !serviceEntry:
			p.add(ep, "\"~\" (export to no one) is only allowed on a ServiceEntry")
		case e != "." && e != "*" && e != "~" && !dnsLabel(e, true):
			p.add(ep, "%q must be \".\", \"*\" or a namespace name", e)
		}
		seen[key] = true
	}
	if len(exportTo) > 1 && (seen["*"] || seen["~"]) {
		p.add(path, "\"*\" and \"~\" must be the only entry, got %s", strings.Join(exportTo, ", "))
	}
}

// validateWorkloadSelector checks a type.v1beta1.WorkloadSelector.
func validateWorkloadSelector(p *problems, path string, s *typev1beta1.WorkloadSelector) {
	if s != nil {
		validateSelectorLabels(p, field(path, "matchLabels"), s.MatchLabels)
	}
}

// validateTargetRefs checks targetRef, targetRefs and selector of a policy: at most
// one of them, and references to kinds a policy can attach to.
func validateTargetRefs(p *problems, selector *typev1beta1.WorkloadSelector,
	ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference,
) {
	set := 0
	for _, isSet := range []bool{selector != nil, ref != nil, len(refs) > 0} {
		if isSet {
			set++
		}
	}
	if set > 1 {
		p.add("spec", "only one of selector, targetRef and targetRefs may be set")
	}
	validateWorkloadSelector(p, "spec.selector", selector)
	if ref != nil {
		validateTargetRef(p, "spec.targetRef", ref)
	}
	for i, r := range refs {
		validateTargetRef(p, index("spec.targetRefs", i), r)
	}
}

func validateTargetRef(p *problems, path string, r *typev1beta1.PolicyTargetReference) {
	if r == nil {
		p.add(path, "must not be null")
		return
	}
	if r.Name == "" {
		p.add(field(path, "name"), "required")
	}
	if r.Namespace != "" {
		p.add(field(path, "namespace"), "must not be set; cross-namespace references are not supported, got %q", r.Namespace)
	}
	switch r.Group + "/" + r.Kind {
	case "/Service", "core/Service", "networking.istio.io/ServiceEntry",
		"gateway.networking.k8s.io/Gateway", "gateway.networking.k8s.io/GatewayClass":
	default:
		p.add(path, "must refer to a Service, a ServiceEntry (networking.istio.io) or a Gateway "+
			"(gateway.networking.k8s.io), got group %q kind %q", r.Group, r.Kind)
	}
}

// validateRegex checks a regular expression Envoy will compile as RE2. Go's regexp
// implements RE2's syntax, as Istio relies on too.
func validateRegex(p *problems, path, re string) {
	if re == "" {
		p.add(path, "regex must not be empty")
		return
	}
	if reason := regexError(re); reason != "" {
		p.add(path, "%s", reason)
	}
}

// maxRegexLength approximates Envoy's RE2 program size limit, as Istio does.
const maxRegexLength = 1024

func regexError(re string) string {
	if len(re) > maxRegexLength {
		return fmt.Sprintf("regex is %d characters long, at most %d are allowed", len(re), maxRegexLength)
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Sprintf("invalid RE2 regex %q: %v", re, err)
	}
	return ""
}
