package kubernetes

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
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
//
// It counts what it decides as istiod's webhook does, under Istio's metric names:
// galley_validation_passed{group,version,resource},
// galley_validation_failed{group,version,resource,reason} (reason
// yaml_decode_error or invalid_resource; dry runs are not counted) and
// galley_validation_http_error{status}.
func ValidatingWebhook(reg prometheus.Registerer) http.Handler {
	res := []string{"group", "version", "resource"}
	passed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "galley_validation_passed", Help: "Resources the validating webhook allowed."}, res)
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "galley_validation_failed", Help: "Resources the validating webhook refused."}, append(res, "reason"))
	httpErrors := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "galley_validation_http_error", Help: "Validating webhook requests that could not be read."}, []string{"status"})
	reg.MustRegister(passed, failed, httpErrors)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReview)).Decode(&review); err != nil || review.Request == nil {
			if err == nil {
				err = errors.New("no request")
			}
			httpErrors.WithLabelValues(strconv.Itoa(http.StatusBadRequest)).Inc()
			http.Error(w, "reading the AdmissionReview: "+err.Error(), http.StatusBadRequest)
			return
		}
		req := review.Request
		resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
		if req.Operation == admissionv1.Create || req.Operation == admissionv1.Update {
			warnings, reason, err := admit(req.Object.Raw, req.Namespace)
			resp.Warnings = warnings
			labels := []string{req.Resource.Group, req.Resource.Version, req.Resource.Resource}
			switch {
			case err != nil:
				resp.Allowed = false
				resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity,
					Reason: metav1.StatusReasonInvalid, Message: err.Error()}
				if req.DryRun == nil || !*req.DryRun {
					failed.WithLabelValues(append(labels, reason)...).Inc()
				}
			case reason == "":
				passed.WithLabelValues(labels...).Inc()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
	})
}

// admit decodes and validates one object as the adapter imports it, and returns
// its warnings ("field: reason"). reason says why it refused (Istio's metric
// reasons), or, for an object it let through unread, "unknown_type".
func admit(raw []byte, namespace string) (warnings []string, reason string, err error) {
	o := &unstructured.Unstructured{}
	if err := o.UnmarshalJSON(raw); err != nil {
		return nil, "yaml_decode_error", fmt.Errorf("decoding the object: %w", err)
	}
	if o.GetNamespace() == "" {
		o.SetNamespace(namespace)
	}
	if k, ok := api.LookupKind(o.GetKind()); !ok || k.Name != o.GetKind() || k.Group != o.GroupVersionKind().Group {
		return nil, "unknown_type", nil // not one of navarch's kinds (a Gateway API Gateway, a WasmPlugin, ...)
	}
	res, err := decodeConfig(o)
	if err == nil {
		err = api.Validate(res)
	}
	if err != nil {
		return nil, "invalid_resource", err
	}
	for _, w := range api.Warnings(res) {
		warnings = append(warnings, w.Field+": "+w.Reason)
	}
	return warnings, "", nil
}
