package kubernetes

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/navarch/navarch/api"
)

// WebhookPath is where a node answers Kubernetes' validating admission webhook,
// the path istiod serves its own at.
const WebhookPath = "/validate"

// maxReview bounds an AdmissionReview's body; the API server sends at most its own
// request limit (3 MiB by default) and the object once more.
const maxReview = 8 << 20

// ValidatingWebhook answers a Kubernetes API server's validating admission webhook
// (admission.k8s.io/v1): each create or update of an Istio resource in a cluster
// whose configuration the adapter imports (--kube-istio-config) is refused when
// navarch would refuse it, with navarch's error (resource, field, reason), and
// allowed with navarch's warnings (api.Warnings) otherwise, which kubectl prints as
// it prints istiod's. The resource is read as the adapter imports it, so what the
// webhook allows the adapter takes. Deletes, and objects of kinds navarch does not
// serve, are allowed.
//
// It reads nothing of the node's and writes nothing, so it needs no admin token:
// the API server calls it over TLS without one (the node's --http-tls-cert).
func ValidatingWebhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReview)).Decode(&review); err != nil || review.Request == nil {
			if err == nil {
				err = errors.New("no request")
			}
			http.Error(w, "reading the AdmissionReview: "+err.Error(), http.StatusBadRequest)
			return
		}
		req := review.Request
		resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
		if req.Operation == admissionv1.Create || req.Operation == admissionv1.Update {
			warnings, err := admit(req.Object.Raw, req.Namespace)
			resp.Warnings = warnings
			if err != nil {
				resp.Allowed = false
				resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity,
					Reason: metav1.StatusReasonInvalid, Message: err.Error()}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
	})
}

// admit decodes and validates one object as the adapter imports it, and returns
// its warnings ("field: reason").
func admit(raw []byte, namespace string) ([]string, error) {
	o := &unstructured.Unstructured{}
	if err := o.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("decoding the object: %w", err)
	}
	if o.GetNamespace() == "" {
		o.SetNamespace(namespace)
	}
	if k, ok := api.LookupKind(o.GetKind()); !ok || k.Name != o.GetKind() || k.Group != o.GroupVersionKind().Group {
		return nil, nil // not one of navarch's kinds (a Gateway API Gateway, a WasmPlugin, ...)
	}
	res, err := decodeConfig(o)
	if err == nil {
		err = api.Validate(res)
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, w := range api.Warnings(res) {
		out = append(out, w.Field+": "+w.Reason)
	}
	return out, nil
}
