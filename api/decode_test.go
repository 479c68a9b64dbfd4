package api

import (
	"errors"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
)

// minimalSpecs is a small valid spec for every kind.
var minimalSpecs = map[string]string{
	"VirtualService":        `{hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}`,
	"DestinationRule":       `{host: reviews, subsets: [{name: v1, labels: {version: v1}}]}`,
	"Gateway":               `{selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}`,
	"ServiceEntry":          `{hosts: [api.example.com], ports: [{number: 443, name: https, protocol: TLS}], resolution: DNS}`,
	"Sidecar":               `{egress: [{hosts: ["./*", "istio-system/*"]}]}`,
	"WorkloadEntry":         `{address: 10.0.0.1, labels: {app: vm}, serviceAccount: vm-sa}`,
	"WorkloadGroup":         `{template: {labels: {app: vm}, serviceAccount: vm-sa}}`,
	"PeerAuthentication":    `{mtls: {mode: STRICT}}`,
	"AuthorizationPolicy":   `{selector: {matchLabels: {app: web}}, action: ALLOW, rules: [{from: [{source: {namespaces: [prod]}}]}]}`,
	"RequestAuthentication": `{jwtRules: [{issuer: "https://issuer.example.com", jwksUri: "https://issuer.example.com/jwks"}]}`,
	"Telemetry":             `{tracing: [{providers: [{name: zipkin}], randomSamplingPercentage: 10}]}`,
	"MeshConfig":            `{accessLogFile: /dev/stdout}`,
	"EnvoyFilter":           `{configPatches: [{applyTo: CLUSTER, match: {cluster: {service: reviews}}, patch: {operation: MERGE, value: {connect_timeout: 2s}}}]}`,
}

func TestDecodeAcceptsEveryKindUnderEveryServedVersion(t *testing.T) {
	for _, k := range Kinds() {
		spec, ok := minimalSpecs[k.Name]
		if !ok {
			t.Fatalf("no minimal spec for %s", k.Name)
		}
		for _, v := range k.Versions {
			t.Run(k.Name+"/"+v, func(t *testing.T) {
				ns, name := "prod", "example"
				if k == MeshConfig {
					ns, name = MeshConfigNamespace, MeshConfigName // the one mesh config
				}
				doc := "apiVersion: " + k.Group + "/" + v + "\nkind: " + k.Name +
					"\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec: " + spec + "\n"
				r := mustDecode(t, doc)
				if r.Kind != k || r.Meta.Name != name || r.Meta.Namespace != ns {
					t.Errorf("got %s %s/%s, want %s %s/%s", r.Kind, r.Meta.Namespace, r.Meta.Name, k, ns, name)
				}
				if err := Validate(r); err != nil {
					t.Errorf("Validate of a decoded resource: %v", err)
				}
			})
		}
	}
}

func TestDecodeSplitsDocuments(t *testing.T) {
	vs := func(name string) string {
		return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: " + name + "}\nspec: " +
			minimalSpecs["VirtualService"] + "\n"
	}
	cases := []struct {
		name  string
		input string
		names []string
	}{
		{"a single document", vs("a"), []string{"a"}},
		{"documents separated by ---", vs("a") + "---\n" + vs("b"), []string{"a", "b"}},
		{"a leading separator and comment-only documents",
			"# header\n---\n" + vs("a") + "---\n# nothing here\n---\n\n---\n" + vs("b") + "...\n", []string{"a", "b"}},
		{"CRLF line endings", strings.ReplaceAll(vs("a")+"---\n"+vs("b"), "\n", "\r\n"), []string{"a", "b"}},
		{"a List", "apiVersion: v1\nkind: List\nitems:\n- " + strings.TrimSuffix(strings.ReplaceAll(vs("a"), "\n", "\n  "), "  ") +
			"- " + strings.ReplaceAll(vs("b"), "\n", "\n  "), []string{"a", "b"}},
		{"a JSON object", `{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "a"},
			"spec": {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a"}}]}]}}`, []string{"a"}},
		{"a JSON list and a stream of JSON objects", `[{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
			"metadata": {"name": "a"}, "spec": {"host": "a"}}] {"apiVersion": "networking.istio.io/v1",
			"kind": "DestinationRule", "metadata": {"name": "b"}, "spec": {"host": "b"}}`, []string{"a", "b"}},
		{"an empty input", "", nil},
		{"only comments", "# a\n---\n# b\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, _, err := Decode("in.yaml", []byte(tc.input), "")
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var names []string
			for _, r := range rs {
				names = append(names, r.Meta.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.names, ",") {
				t.Errorf("decoded %v, want %v", names, tc.names)
			}
		})
	}
}

func TestDecodeDefaultsTheNamespace(t *testing.T) {
	withNS := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a, namespace: prod}\nspec: {host: a}\n"
	withoutNS := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: a}\n"
	cases := []struct {
		name, input, defaultNS, want string
	}{
		{"metadata.namespace applies without a namespace given", withNS, "", "prod"},
		{"metadata.namespace may repeat the namespace given", withNS, "prod", "prod"},
		{"the caller's default applies", withoutNS, "staging", "staging"},
		{"api.DefaultNamespace when the caller gives none", withoutNS, "", DefaultNamespace},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, _, err := Decode("in.yaml", []byte(tc.input), tc.defaultNS)
			if err != nil {
				t.Fatal(err)
			}
			if got := rs[0].Meta.Namespace; got != tc.want {
				t.Errorf("namespace %q, want %q", got, tc.want)
			}
			keys, _, err := DecodeKeys("in.yaml", []byte(tc.input), tc.defaultNS)
			if err != nil || keys[0].Namespace != tc.want {
				t.Errorf("DecodeKeys: %v, %v; want namespace %q", keys, err, tc.want)
			}
		})
	}
}

// TestDecodeRefusesANamespaceThatContradictsTheGivenOne: as kubectl apply -n, a
// document naming another namespace than the one given is an error, not an override.
func TestDecodeRefusesANamespaceThatContradictsTheGivenOne(t *testing.T) {
	input := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a, namespace: prod}\nspec: {host: a}\n"
	for _, decode := range []func() error{
		func() error { _, _, err := Decode("in.yaml", []byte(input), "staging"); return err },
		func() error { _, _, err := DecodeKeys("in.yaml", []byte(input), "staging"); return err },
	} {
		err := decode()
		if err == nil || !strings.Contains(err.Error(), `in.yaml: document 1: DestinationRule prod/a: metadata.namespace: "prod" does not match the namespace given (-n staging)`) {
			t.Errorf("got %v, want the contradiction named", err)
		}
	}
}

func TestDecodeSkipsWhatIsNotMeshConfiguration(t *testing.T) {
	input := `apiVersion: v1
kind: Service
metadata: {name: fortio}
spec: {ports: [{port: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: fortio}
spec: {replicas: 1}
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: auth}
spec: {url: oci://example/auth}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a}
spec: {host: a}
---
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: per-pod}
spec: {concurrency: 2}
`
	rs, skipped, err := Decode("bookinfo.yaml", []byte(input), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Errorf("decoded %d resources, want 1", len(rs))
	}
	want := []Skipped{
		{Source: "bookinfo.yaml: document 1", APIVersion: "v1", Kind: "Service", Name: "fortio", Reason: ReasonNotMesh},
		{Source: "bookinfo.yaml: document 2", APIVersion: "apps/v1", Kind: "Deployment", Name: "fortio", Reason: ReasonNotMesh},
		{Source: "bookinfo.yaml: document 3", APIVersion: "extensions.istio.io/v1alpha1", Kind: "WasmPlugin", Name: "auth", Reason: ReasonNotServed},
		{Source: "bookinfo.yaml: document 5", APIVersion: "networking.istio.io/v1beta1", Kind: "ProxyConfig", Name: "per-pod", Reason: ReasonNotServed},
	}
	if len(skipped) != len(want) {
		t.Fatalf("skipped %+v, want %+v", skipped, want)
	}
	for i := range want {
		if skipped[i] != want[i] {
			t.Errorf("skipped[%d] = %+v, want %+v", i, skipped[i], want[i])
		}
	}
}

func TestDecodeKeepsResourceVersionAndIgnoresKubernetesFields(t *testing.T) {
	input := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: a
  namespace: prod
  resourceVersion: "42"
  uid: 0b1e7f4c-3a3e-4d1e-9d59-2f6c1f1a2b3c
  generation: 3
  creationTimestamp: "2024-01-02T15:04:05Z"
  managedFields: [{manager: kubectl}]
  ownerReferences: [{kind: Deployment, name: x}]
  finalizers: [a/b]
spec: {host: a}
status: {validationMessages: [{level: ERROR}]}
`
	r := mustDecode(t, input)
	if r.Meta.ResourceVersion != "42" || r.Meta.Revision() != 42 {
		t.Errorf("resourceVersion %q, want 42", r.Meta.ResourceVersion)
	}
}

func TestDecodeAcceptsDurationsTheWayIstioDoes(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"1m", time.Minute},
		{"1h30m", 90 * time.Minute},
		{"8ms", 8 * time.Millisecond},
		{"300s", 300 * time.Second},
		{"1.5s", 1500 * time.Millisecond},
		{"2m30s", 150 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			r := mustDecode(t, specDoc(VirtualService, `{hosts: [a], http: [{timeout: `+tc.in+`, route: [{destination: {host: a}}]}]}`))
			if got := r.Spec.(*networking.VirtualService).Http[0].Timeout.AsDuration(); got != tc.want {
				t.Errorf("timeout %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDecodeAcceptsRelativeWeights(t *testing.T) {
	r := mustDecode(t, specDoc(VirtualService, `{hosts: [a], http: [{route: [
		{destination: {host: a, subset: v1}, weight: 120}, {destination: {host: a, subset: v2}, weight: 30}]}]}`))
	got := r.Spec.(*networking.VirtualService).Http[0].Route
	if got[0].Weight != 120 || got[1].Weight != 30 {
		t.Errorf("weights %d/%d, want 120/30", got[0].Weight, got[1].Weight)
	}
}

func TestDecodeRejectsTheWholeInputWhenOneDocumentIsBad(t *testing.T) {
	input := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: -1
`
	rs, _, err := Decode("reviews.yaml", []byte(input), "")
	if rs != nil {
		t.Errorf("Decode returned %d resources, want none", len(rs))
	}
	want := "reviews.yaml: document 2: VirtualService default/reviews: spec.http[0].route[1].weight: must not be negative, got -1"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n  %v\nwant\n  %s", err, want)
	}
	var de *DocumentError
	if !errors.As(err, &de) {
		t.Fatalf("error is not a *DocumentError: %T", err)
	}
	if de.Source != "reviews.yaml" || de.Document != 2 || de.Item != -1 || de.Line != 6 ||
		de.Resource != "VirtualService default/reviews" || de.Field != "spec.http[0].route[1].weight" {
		t.Errorf("DocumentError %+v", de)
	}
}

func TestDecodeReportsEveryBadDocument(t *testing.T) {
	bad := func(name string) string {
		return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: " + name + "}\nspec: {hots: a}\n"
	}
	_, _, err := Decode("in.yaml", []byte(bad("a")+"---\n"+bad("b")), "")
	errs := DocumentErrors(err)
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want 2: %v", len(errs), err)
	}
	for i, name := range []string{"a", "b"} {
		if errs[i].Document != i+1 || errs[i].Resource != "DestinationRule default/"+name {
			t.Errorf("error %d: %v", i, errs[i])
		}
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != 2 {
		t.Errorf("want one line per problem, got %q", err.Error())
	}
}

func TestDecodeNamesTheItemOfAList(t *testing.T) {
	input := `apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: good}
  spec: {host: a}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: bad}
  spec: {host: "a_b"}
`
	_, _, err := Decode("list.yaml", []byte(input), "")
	want := `list.yaml: document 1: items[1]: DestinationRule default/bad: spec.host: invalid host "a_b"`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want it to start with %s", err, want)
	}
}

func TestDecodeKeys(t *testing.T) {
	input := `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec: {this: [is, not, checked]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
`
	keys, skipped, err := DecodeKeys("in.yaml", []byte(input), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Key{{Kind: VirtualService, Namespace: "prod", Name: "reviews"}, {Kind: PeerAuthentication, Namespace: "default", Name: "default"}}
	if len(keys) != len(want) || keys[0] != want[0] || keys[1] != want[1] {
		t.Errorf("keys %v, want %v", keys, want)
	}
	if len(skipped) != 1 || skipped[0].Kind != "Service" {
		t.Errorf("skipped %v", skipped)
	}
	_, _, err = DecodeKeys("in.yaml", []byte("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {}\n"), "")
	wantProblem(t, err, "metadata.name", "required")
}
