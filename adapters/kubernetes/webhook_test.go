package kubernetes

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// TestValidatingWebhook: the webhook refuses what navarch refuses, with its error,
// allows the rest with its warnings, and lets through deletes and kinds navarch
// does not serve. Objects come as the API server sends them, with server-set
// metadata and status.
func TestValidatingWebhook(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := ValidatingWebhook(reg)
	review := func(op admissionv1.Operation, object string) *admissionv1.AdmissionResponse {
		t.Helper()
		raw, err := yaml.YAMLToJSON([]byte(object))
		if err != nil {
			t.Fatal(err)
		}
		in := admissionv1.AdmissionReview{Request: &admissionv1.AdmissionRequest{UID: types.UID("u-1"), Operation: op, Namespace: "shop",
			Resource: metav1.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"},
			Object:   runtime.RawExtension{Raw: raw}}}
		in.APIVersion, in.Kind = "admission.k8s.io/v1", "AdmissionReview"
		body, _ := json.Marshal(in)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body)))
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("answer %d %q: %v", rec.Code, rec.Body.String(), err)
		}
		if out.Kind != "AdmissionReview" || out.Response.UID != "u-1" {
			t.Fatalf("answer is not a review of the request: %+v", out)
		}
		return out.Response
	}
	const meta = `metadata: {name: reviews, uid: 5f0c, generation: 2, creationTimestamp: "2026-11-23T10:00:00Z",
  managedFields: [{manager: kubectl, operation: Update, apiVersion: networking.istio.io/v1}]}
status: {}
`
	bad := "apiVersion: networking.istio.io/v1\nkind: VirtualService\n" + meta +
		"spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}, weight: -1}]}]}\n"
	if r := review(admissionv1.Create, bad); r.Allowed || r.Result == nil ||
		!strings.Contains(r.Result.Message, "VirtualService shop/reviews: spec.http[0].route[0].weight: must not be negative") {
		t.Errorf("an invalid VirtualService: %+v", r)
	}
	if r := review(admissionv1.Delete, bad); !r.Allowed {
		t.Errorf("a delete was refused: %+v", r.Result)
	}
	warned := "apiVersion: networking.istio.io/v1\nkind: VirtualService\n" + meta +
		"spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}, {match: [{uri: {prefix: /a}}], route: [{destination: {host: reviews}}]}]}\n"
	if r := review(admissionv1.Update, warned); !r.Allowed || len(r.Warnings) != 1 ||
		r.Warnings[0] != "spec.http[1]: virtualService rule #1 not used (route without matches defined before)" {
		t.Errorf("a VirtualService with a rule no request reaches: allowed %v, warnings %q, %+v", r.Allowed, r.Warnings, r.Result)
	}
	gatewayAPI := "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n" + meta + "spec: {gatewayClassName: istio, listeners: []}\n"
	if r := review(admissionv1.Create, gatewayAPI); !r.Allowed {
		t.Errorf("a Gateway API Gateway was refused: %+v", r.Result)
	}

	// Counted as istiod counts: one refused, one passed; the delete and the kind
	// navarch does not serve, neither.
	const want = `
# HELP galley_validation_failed Resources the validating webhook refused.
# TYPE galley_validation_failed counter
galley_validation_failed{group="networking.istio.io",reason="invalid_resource",resource="virtualservices",version="v1"} 1
# HELP galley_validation_passed Resources the validating webhook allowed.
# TYPE galley_validation_passed counter
galley_validation_passed{group="networking.istio.io",resource="virtualservices",version="v1"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "galley_validation_failed", "galley_validation_passed"); err != nil {
		t.Error(err)
	}
}
