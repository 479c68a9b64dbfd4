package api

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
)

func TestValidateResourcesBuiltInCode(t *testing.T) {
	cases := []struct {
		name   string
		r      *Resource
		field  string // "" when valid
		reason string
	}{
		{"a valid DestinationRule", &Resource{Kind: DestinationRule, Meta: ObjectMeta{Name: "a", Namespace: "prod"},
			Spec: &networking.DestinationRule{Host: "a"}}, "", ""},
		{"no spec", &Resource{Kind: DestinationRule, Meta: ObjectMeta{Name: "a", Namespace: "prod"}}, "spec", "required"},
		{"a spec of another kind", &Resource{Kind: DestinationRule, Meta: ObjectMeta{Name: "a", Namespace: "prod"},
			Spec: &networking.Gateway{}}, "spec", "is a istio.networking.v1alpha3.Gateway, want a istio.networking.v1alpha3.DestinationRule"},
		{"a nil subset", &Resource{Kind: DestinationRule, Meta: ObjectMeta{Name: "a", Namespace: "prod"},
			Spec: &networking.DestinationRule{Host: "a", Subsets: []*networking.Subset{nil}}}, "spec.subsets[0]", "must not be null"},
		{"a nil http route", &Resource{Kind: VirtualService, Meta: ObjectMeta{Name: "a", Namespace: "prod"},
			Spec: &networking.VirtualService{Hosts: []string{"a"}, Http: []*networking.HTTPRoute{nil}}}, "spec.http[0]", "must not be null"},
		{"a nil header match", &Resource{Kind: VirtualService, Meta: ObjectMeta{Name: "a", Namespace: "prod"},
			Spec: &networking.VirtualService{Hosts: []string{"a"}, Http: []*networking.HTTPRoute{{
				Match: []*networking.HTTPMatchRequest{{Headers: map[string]*networking.StringMatch{"x": nil}}},
				Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "a"}}},
			}}}}, "spec.http[0].match[0].headers[x]", "must not be null"},
		{"a nil rule", &Resource{Kind: AuthorizationPolicy, Meta: ObjectMeta{Name: "a", Namespace: "prod"},
			Spec: &security.AuthorizationPolicy{Rules: []*security.Rule{nil}}}, "spec.rules[0]", "must not be null"},
		{"a malformed name", &Resource{Kind: DestinationRule, Meta: ObjectMeta{Name: "A", Namespace: "prod"},
			Spec: &networking.DestinationRule{Host: "a"}}, "metadata.name", "must be a DNS-1123 subdomain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.r)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantProblem(t, err, tc.field, tc.reason)
			for _, de := range DocumentErrors(err) {
				if de.Source != "" || de.Document != 0 || de.Resource != resourceName(tc.r.Kind, tc.r.Meta) {
					t.Errorf("error from Validate carries %+v", de)
				}
			}
		})
	}
}

func TestValidateWithoutAKind(t *testing.T) {
	var de *DocumentError
	if err := Validate(&Resource{}); !errors.As(err, &de) {
		t.Errorf("Validate of a resource without a kind: %v", err)
	}
	if err := Validate(nil); err == nil {
		t.Errorf("Validate(nil) returned no error")
	}
}

func TestValidateDoesNotChangeTheResource(t *testing.T) {
	r := mustDecode(t, specDoc(Sidecar, `{workloadSelector: {labels: {app: web}}, egress: [{hosts: ["./*"]}]}`))
	before := r.Clone()
	r.Spec.(*networking.Sidecar).WorkloadSelector.Labels["bad"] = "*"
	if err := Validate(r); err == nil || !strings.Contains(err.Error(), "wildcards") {
		t.Fatalf("Validate: %v", err)
	}
	if got := r.Spec.(*networking.Sidecar).WorkloadSelector.Labels; len(got) != 2 {
		t.Errorf("Validate changed the selector to %v", got)
	}
	delete(r.Spec.(*networking.Sidecar).WorkloadSelector.Labels, "bad")
	if !proto.Equal(r.Spec, before.Spec) {
		t.Errorf("spec changed")
	}
}

func TestValidateReportsProblemsInAStableOrder(t *testing.T) {
	doc := specDoc(VirtualService, `{hosts: [a], http: [{match: [{headers: {"b b": {regex: "("}, "a a": {prefix: ""}}}], route: [{destination: {host: "x_y"}, weight: -1}]}]}`)
	_, _, first := Decode("in.yaml", []byte(doc), "")
	for range 20 {
		if _, _, err := Decode("in.yaml", []byte(doc), ""); err == nil || err.Error() != first.Error() {
			t.Fatalf("errors differ between runs:\n%v\n---\n%v", first, err)
		}
	}
	if n := len(DocumentErrors(first)); n < 5 {
		t.Errorf("want every problem reported, got %d:\n%v", n, first)
	}
}
