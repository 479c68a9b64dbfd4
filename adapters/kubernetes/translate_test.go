package kubernetes

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

func strp(s string) *string { return &s }

func TestProtocol(t *testing.T) {
	for _, tc := range []struct {
		port corev1.ServicePort
		want string
	}{
		{corev1.ServicePort{Name: "grpc"}, "GRPC"},
		{corev1.ServicePort{Name: "grpc-api"}, "GRPC"},
		{corev1.ServicePort{Name: "http2-x"}, "HTTP2"},
		{corev1.ServicePort{Name: "grpc-web"}, "GRPC-WEB"},
		{corev1.ServicePort{Name: "grpc-web-ui"}, "GRPC-WEB"},
		{corev1.ServicePort{Name: "HTTP-Admin"}, "HTTP"},
		{corev1.ServicePort{Name: "tcp-db"}, "TCP"},
		{corev1.ServicePort{Name: "metrics"}, ""},
		{corev1.ServicePort{Name: "grpcx"}, ""},
		{corev1.ServicePort{Name: "grpc", AppProtocol: strp("http")}, "HTTP"},
		{corev1.ServicePort{Name: "web", AppProtocol: strp("kubernetes.io/h2c")}, "HTTP2"},
		{corev1.ServicePort{Name: "ws", AppProtocol: strp("kubernetes.io/ws")}, "HTTP"},
		{corev1.ServicePort{Name: "http", AppProtocol: strp("example.com/custom")}, "HTTP"},
		{corev1.ServicePort{Name: "dns", Protocol: corev1.ProtocolUDP}, "UDP"},
	} {
		if got := protocol(tc.port); got != tc.want {
			t.Errorf("protocol(%+v) = %q, want %q", tc.port, got, tc.want)
		}
	}
}

func pod(name string, labels map[string]string, ip string, ready bool) *corev1.Pod {
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels},
		Spec: corev1.PodSpec{ServiceAccountName: "reviews", NodeName: "node-a", Containers: []corev1.Container{
			{Name: "app", Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: 7070}}},
		}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}}},
	}
}

func TestTranslate(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", Labels: map[string]string{"team": "a", LabelNetwork: "west"},
			Annotations: map[string]string{AnnotationExportTo: "., istio-system"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"}, ClusterIPs: []string{"10.96.0.9"},
			Ports: []corev1.ServicePort{
				{Name: "grpc-api", Port: 9080, TargetPort: intstr.FromString("grpc")},
				{Port: 80, TargetPort: intstr.FromInt32(8080)},
			}},
	}
	// Selects reviews-v1 only, on the same label key as reviews and one more.
	canary := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-v1", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews", "version": "v1"},
			Ports: []corev1.ServicePort{
				{Name: "grpc-api", Port: 9080, TargetPort: intstr.FromString("nonexistent")},
				{Name: "admin", Port: 9999, TargetPort: intstr.FromString("grpc")},
			}},
	}
	headless := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db"}, ClusterIPs: []string{corev1.ClusterIPNone},
			Ports: []corev1.ServicePort{{Name: "tcp", Port: 5432}}},
	}
	external := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "payments", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "payments.example.com",
			Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
	}
	manual := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: "shop"},
		Spec:       corev1.ServiceSpec{ClusterIPs: []string{"10.96.0.10"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	yes, no := true, false
	httpName, port := "http", int32(8080)
	legacySlice := func(name string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "legacy"}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps,
			Ports: []discoveryv1.EndpointPort{{Name: &httpName, Port: &port}},
		}
	}
	nodeA := "node-a"
	legacySlices := []*discoveryv1.EndpointSlice{
		legacySlice("legacy-1",
			discoveryv1.Endpoint{Addresses: []string{"192.168.0.1", "192.168.0.9"}, NodeName: &nodeA},
			discoveryv1.Endpoint{Addresses: []string{"192.168.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &no}},
		),
		legacySlice("legacy-2",
			discoveryv1.Endpoint{Addresses: []string{"192.168.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			discoveryv1.Endpoint{Addresses: []string{"192.168.0.1"}},
		),
	}
	v1 := pod("reviews-v1", map[string]string{"app": "reviews", "version": "v1"}, "10.1.0.1", true)
	v2 := pod("reviews-v2", map[string]string{"app": "reviews", "version": "v2", LabelLocality: "eu.eu-1a", LabelNetwork: "west"}, "10.1.0.2", false)
	pending := pod("reviews-new", map[string]string{"app": "reviews"}, "", false)
	done := pod("reviews-job", map[string]string{"app": "reviews"}, "10.1.0.3", true)
	done.Status.Phase = corev1.PodSucceeded
	lonely := pod("batch", map[string]string{"app": "batch"}, "10.1.0.4", true)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{LabelRegion: "us", LabelZone: "us-1b"}}}

	got, skips := translator{domain: "cluster.local"}.translate(inventory{
		services: []*corev1.Service{svc, canary, headless, external, manual},
		pods:     []*corev1.Pod{v1, v2, pending, done, lonely},
		nodes:    map[string]*corev1.Node{"node-a": node},
		slices:   legacySlices,
	})
	if len(skips) > 0 {
		t.Fatalf("skipped: %v", skips)
	}
	byName := map[string]*api.Resource{}
	var names []string
	for _, r := range got {
		byName[r.Kind.Name+"/"+r.Meta.Name] = r
		names = append(names, r.Kind.Name+"/"+r.Meta.Name)
	}
	want := []string{"ServiceEntry/db", "ServiceEntry/legacy", "ServiceEntry/payments", "ServiceEntry/reviews", "ServiceEntry/reviews-v1", "WorkloadEntry/reviews-v1", "WorkloadEntry/reviews-v2"}
	if !slices.Equal(names, want) {
		t.Fatalf("resources %v, want %v (no pods without an IP, finished, or selected by nothing)", names, want)
	}

	wantSE := &networking.ServiceEntry{
		Hosts: []string{"reviews.shop.svc.cluster.local"}, Addresses: []string{"10.96.0.9"},
		Ports: []*networking.ServicePort{
			{Number: 9080, Name: "grpc-api", Protocol: "GRPC"},
			{Number: 80, Name: "port-80", TargetPort: 8080},
		},
		Location: networking.ServiceEntry_MESH_INTERNAL, Resolution: networking.ServiceEntry_STATIC,
		WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "reviews"}},
		ExportTo:         []string{".", "istio-system"},
	}
	if se := byName["ServiceEntry/reviews"]; !proto.Equal(se.Spec.(*networking.ServiceEntry), wantSE) || se.Meta.Namespace != "shop" ||
		se.Meta.Labels["team"] != "a" || se.Meta.Labels[LabelNetwork] != "" || svc.Labels[LabelNetwork] != "west" {
		t.Errorf("reviews:\n got %v %v\nwant %v", se.Meta, se.Spec, wantSE)
	}
	if se := byName["ServiceEntry/db"].Spec.(*networking.ServiceEntry); len(se.Addresses) != 0 || se.Resolution != networking.ServiceEntry_NONE || se.WorkloadSelector == nil {
		t.Errorf("a headless Service: addresses %v, resolution %v, selector %v; want none, NONE and its selector", se.Addresses, se.Resolution, se.WorkloadSelector)
	}
	wantExt := &networking.ServiceEntry{
		Hosts: []string{"payments.shop.svc.cluster.local"}, Ports: []*networking.ServicePort{{Number: 443, Name: "https", Protocol: "HTTPS"}},
		Location: networking.ServiceEntry_MESH_EXTERNAL, Resolution: networking.ServiceEntry_DNS,
		Endpoints: []*networking.WorkloadEntry{{Address: "payments.example.com"}},
	}
	if se := byName["ServiceEntry/payments"].Spec.(*networking.ServiceEntry); !proto.Equal(se, wantExt) {
		t.Errorf("ExternalName:\n got %v\nwant %v", se, wantExt)
	}

	wantLegacy := &networking.ServiceEntry{
		Hosts: []string{"legacy.shop.svc.cluster.local"}, Addresses: []string{"10.96.0.10"},
		Ports:    []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}},
		Location: networking.ServiceEntry_MESH_INTERNAL, Resolution: networking.ServiceEntry_STATIC,
		Endpoints: []*networking.WorkloadEntry{
			{Address: "192.168.0.1", Ports: map[string]uint32{"http": 8080}, Locality: "us/us-1b"},
			{Address: "192.168.0.3", Ports: map[string]uint32{"http": 8080}},
		},
	}
	if se := byName["ServiceEntry/legacy"].Spec.(*networking.ServiceEntry); !proto.Equal(se, wantLegacy) {
		t.Errorf("a Service without a selector, from its EndpointSlices (ready endpoints, each once, at its first address):\n got %v\nwant %v", se, wantLegacy)
	}

	w1 := byName["WorkloadEntry/reviews-v1"]
	wantW1 := &networking.WorkloadEntry{Address: "10.1.0.1", Labels: v1.Labels, ServiceAccount: "reviews",
		Locality: "us/us-1b", Ports: map[string]uint32{"grpc-api": 7070, "admin": 7070}}
	if !proto.Equal(w1.Spec.(*networking.WorkloadEntry), wantW1) || w1.Meta.Annotations[registry.HealthAnnotation] != "" {
		t.Errorf("reviews-v1 (selected by reviews and reviews-v1; grpc-api resolved by reviews, the first by name):\n got %v %v\nwant %v, healthy", w1.Meta, w1.Spec, wantW1)
	}
	w2 := byName["WorkloadEntry/reviews-v2"]
	if we := w2.Spec.(*networking.WorkloadEntry); we.Locality != "eu/eu-1a" || we.Network != "west" {
		t.Errorf("reviews-v2: locality %q network %q, want the pod's labels' eu/eu-1a and west", we.Locality, we.Network)
	}
	if w2.Meta.Annotations[registry.HealthAnnotation] != "unhealthy" {
		t.Errorf("an unready pod is not marked unhealthy: %v", w2.Meta.Annotations)
	}

	// The translation is a function of the inventory, whatever order it is listed in.
	again, _ := translator{domain: "cluster.local"}.translate(inventory{
		services: []*corev1.Service{manual, external, headless, canary, svc},
		pods:     []*corev1.Pod{lonely, done, pending, v2, v1},
		nodes:    map[string]*corev1.Node{"node-a": node},
		slices:   []*discoveryv1.EndpointSlice{legacySlices[1], legacySlices[0]},
	})
	for i := range got {
		if !proto.Equal(got[i].Spec, again[i].Spec) {
			t.Fatalf("resource %d differs with the inventory in another order", i)
		}
	}
}

func TestTranslateSkipsInvalid(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", Annotations: map[string]string{AnnotationExportTo: "not a namespace!"}},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	ok := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ratings", Namespace: "shop"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "ratings"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	got, skips := translator{domain: "cluster.local"}.translate(inventory{services: []*corev1.Service{svc, ok}})
	if len(got) != 1 || got[0].Meta.Name != "ratings" {
		t.Fatalf("resources %v, want ratings alone", got)
	}
	if len(skips) != 1 || skips[0].Object != "service shop/reviews" {
		t.Fatalf("skipped %v, want service shop/reviews", skips)
	}
}

// TestUnchangedUpdates: a pod or node update the translation cannot see (only its
// resource version moved, after slimming away its status noise) wakes nothing; one
// it can see does.
func TestUnchangedUpdates(t *testing.T) {
	p := pod("reviews-v1", map[string]string{"app": "reviews"}, "10.1.0.1", true)
	p.ResourceVersion = "1"
	restarted := p.DeepCopy()
	restarted.ResourceVersion = "2"
	restarted.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", RestartCount: 3}}
	unready := p.DeepCopy()
	unready.ResourceVersion = "3"
	unready.Status.Conditions[0].Status = corev1.ConditionFalse
	slim := func(p *corev1.Pod) any { o, _ := slimPod(p); return o }
	if !samePod(slim(p), slim(restarted)) {
		t.Error("a container restart woke the adapter")
	}
	if samePod(slim(p), slim(unready)) {
		t.Error("a pod turning unready did not wake the adapter")
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "1", Labels: map[string]string{LabelZone: "z1"}}}
	beat := n.DeepCopy()
	beat.ResourceVersion = "2"
	beat.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	moved := n.DeepCopy()
	moved.Labels = map[string]string{LabelZone: "z2"}
	readdressed := n.DeepCopy()
	readdressed.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeExternalIP, Address: "198.51.100.4"}}
	slimN := func(n *corev1.Node) any { o, _ := slimNode(n); return o }
	if !sameNode(slimN(n), slimN(beat)) || sameNode(slimN(n), slimN(moved)) || sameNode(slimN(n), slimN(readdressed)) {
		t.Error("node updates: a status change must wake nothing, a label or external IP change must")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", ResourceVersion: "1",
		Annotations: map[string]string{"owner": "team-a"}}}
	renamed := ns.DeepCopy()
	renamed.ResourceVersion, renamed.Annotations["owner"] = "2", "team-b"
	near := ns.DeepCopy()
	near.ResourceVersion, near.Annotations[registry.TrafficDistributionAnnotation] = "3", "PreferClose"
	slimNs := func(n *corev1.Namespace) any { o, _ := slimNamespace(n); return o }
	if !sameMeta(slimNs(ns), slimNs(renamed)) || sameMeta(slimNs(ns), slimNs(near)) {
		t.Error("namespace updates: another annotation must wake nothing, the traffic distribution must")
	}
}

// TestTrafficDistribution: a Service's traffic distribution reaches its
// ServiceEntry as Istio's annotation, from its spec.trafficDistribution, else its
// annotation, else its namespace's, as istiod reads them.
func TestTrafficDistribution(t *testing.T) {
	annotated := func(v string) map[string]string {
		return map[string]string{registry.TrafficDistributionAnnotation: v}
	}
	for _, tt := range []struct {
		name           string
		spec           *string
		svc, namespace map[string]string
		want           string
	}{
		{"none", nil, nil, nil, ""},
		{"the field", strp("PreferClose"), nil, nil, "PreferSameZone"},
		{"the field before the annotations", strp("PreferSameNode"), annotated("PreferClose"), annotated("PreferClose"), "PreferSameNode"},
		{"a field value Istio does not know: the annotation", strp("PreferNearby"), annotated("PreferSameNode"), nil, "PreferSameNode"},
		{"the Service's annotation before its namespace's", nil, annotated("preferclose"), annotated("PreferSameNode"), "PreferSameZone"},
		{"the namespace's", nil, nil, annotated("PreferSameZone"), "PreferSameZone"},
		{"an unknown annotation value: none", nil, annotated("Nearby"), annotated("PreferSameZone"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", Annotations: tt.svc},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"}, TrafficDistribution: tt.spec,
					Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Annotations: tt.namespace}}
			out, skips := translator{domain: "cluster.local"}.translate(inventory{services: []*corev1.Service{svc},
				namespaces: map[string]*corev1.Namespace{"shop": ns}})
			if len(out) != 1 || len(skips) > 0 {
				t.Fatalf("translated %v, skipped %v", out, skips)
			}
			if got := out[0].Meta.Annotations[registry.TrafficDistributionAnnotation]; got != tt.want {
				t.Errorf("annotation %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPublishNotReadyAddresses: an unready pod whose Services all publish unready
// addresses (spec.publishNotReadyAddresses) stays healthy; if one of them does not,
// it is unhealthy.
func TestPublishNotReadyAddresses(t *testing.T) {
	service := func(name string, publish bool) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db"}, PublishNotReadyAddresses: publish,
				Ports: []corev1.ServicePort{{Name: "tcp", Port: 5432}}}}
	}
	unready := pod("db-0", map[string]string{"app": "db"}, "10.1.0.9", false)
	health := func(svcs ...*corev1.Service) string {
		out, skips := translator{domain: "cluster.local"}.translate(inventory{services: svcs, pods: []*corev1.Pod{unready}})
		if len(skips) > 0 {
			t.Fatal(skips)
		}
		for _, r := range out {
			if r.Kind == api.WorkloadEntry {
				return r.Meta.Annotations[registry.HealthAnnotation]
			}
		}
		t.Fatal("no WorkloadEntry")
		return ""
	}
	if got := health(service("db-peers", true)); got != "" {
		t.Errorf("published unready: health %q, want healthy", got)
	}
	if got := health(service("db-peers", true), service("db", false)); got != "unhealthy" {
		t.Errorf("also selected by a Service that does not publish it: health %q, want unhealthy", got)
	}
	if got := health(service("db", false)); got != "unhealthy" {
		t.Errorf("not published: health %q, want unhealthy", got)
	}
}

// TestDiscoverySelectors: with discovery selectors, only the Services, pods and
// EndpointSlices of namespaces whose labels match one of them are translated; the
// cluster's network is the system namespace's label unless one is configured.
func TestDiscoverySelectors(t *testing.T) {
	ns := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	inv := inventory{namespaces: map[string]*corev1.Namespace{
		"shop":         ns("shop", map[string]string{"mesh": "on"}),
		"batch":        ns("batch", map[string]string{"team": "data"}),
		"lab":          ns("lab", nil),
		"istio-system": ns("istio-system", map[string]string{LabelNetwork: "net-east"}),
	}}
	httpName, port := "http", int32(8080)
	for _, n := range []string{"shop", "batch", "lab", "gone"} {
		inv.services = append(inv.services,
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: n},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "app"}, Ports: []corev1.ServicePort{{Name: "grpc", Port: 7070}}}},
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: n},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
		p := pod("app-0", map[string]string{"app": "app"}, "10.1.0.1", true)
		p.Namespace = n
		inv.pods = append(inv.pods, p)
		inv.slices = append(inv.slices, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "legacy-1", Namespace: n, Labels: map[string]string{discoveryv1.LabelServiceName: "legacy"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &httpName, Port: &port}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.168.0.1"}}},
		})
	}
	namespaces := func(out []*api.Resource) map[string][]string {
		got := map[string][]string{}
		for _, r := range out {
			got[r.Meta.Namespace] = append(got[r.Meta.Namespace], r.Kind.Name+"/"+r.Meta.Name)
		}
		return got
	}
	for _, tc := range []struct {
		selectors []string
		want      []string
	}{
		{nil, []string{"batch", "gone", "lab", "shop"}},
		{[]string{"mesh=on"}, []string{"shop"}},
		{[]string{"mesh=on", "team in (data,web)"}, []string{"batch", "shop"}},
		{[]string{"!mesh"}, []string{"batch", "istio-system", "lab"}},
		{[]string{""}, []string{"batch", "istio-system", "lab", "shop"}},
	} {
		cfg := Config{DiscoverySelectors: tc.selectors}
		sels, err := cfg.selectors()
		if err != nil {
			t.Fatal(err)
		}
		out, skips := translator{domain: "cluster.local", systemNamespace: "istio-system", selectors: sels}.translate(inv)
		if len(skips) > 0 {
			t.Fatal(skips)
		}
		got := namespaces(out)
		var names []string
		for _, n := range tc.want {
			if n == "istio-system" {
				continue // it holds nothing
			}
			names = append(names, n)
			if want := []string{"ServiceEntry/app", "ServiceEntry/legacy", "WorkloadEntry/app-0"}; !slices.Equal(got[n], want) {
				t.Errorf("selectors %q: namespace %s translated to %v, want %v", tc.selectors, n, got[n], want)
			}
		}
		if len(got) != len(names) {
			t.Errorf("selectors %q: namespaces %v translated, want %v", tc.selectors, got, names)
		}
	}

	network := func(tr translator) string {
		out, _ := tr.translate(inv)
		for _, r := range out {
			if r.Kind == api.WorkloadEntry {
				return r.Spec.(*networking.WorkloadEntry).Network
			}
		}
		t.Fatal("no WorkloadEntry")
		return ""
	}
	if got := network(translator{domain: "cluster.local", systemNamespace: "istio-system"}); got != "net-east" {
		t.Errorf("network %q, want the system namespace's net-east", got)
	}
	if got := network(translator{domain: "cluster.local", systemNamespace: "istio-system", network: "net-west"}); got != "net-west" {
		t.Errorf("network %q, want the configured net-west", got)
	}
	if got := network(translator{domain: "cluster.local", systemNamespace: "mesh-system"}); got != "" {
		t.Errorf("network %q from a system namespace that does not exist, want none", got)
	}
}

// TestConfigDiscoverySelectors: a discovery selector that does not parse is refused
// with the selector and the reason.
func TestConfigDiscoverySelectors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Kubeconfig = "kubeconfig"
	cfg.DiscoverySelectors = []string{"mesh=on", "team in (a"}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `discovery selector "team in (a"`) {
		t.Fatalf("Validate: %v", err)
	}
	cfg.DiscoverySelectors = []string{"mesh=on", "team in (a,b)", "!legacy"}
	cfg.SystemNamespace = "Istio_System"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `system namespace "Istio_System"`) {
		t.Fatalf("Validate: %v", err)
	}
}

// TestNetworkGateway: a Service labelled with a network (Istio's east-west gateway)
// makes its load balancer's and external IPs the network's gateways, on port 15443
// or the port its gatewayPort label names, as the registry reads them; without an
// external address, or a gateway port, it makes none.
func TestNetworkGateway(t *testing.T) {
	gateway := func(labels map[string]string, ports []int32, ingress []corev1.LoadBalancerIngress, external ...string) *corev1.Service {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "istio-eastwestgateway", Namespace: "istio-system", Labels: labels},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"istio": "eastwestgateway"},
				ExternalIPs: external},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: ingress}},
		}
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("tls-%d", p), Port: p})
		}
		return s
	}
	west := map[string]string{LabelNetwork: "net-west"}
	lb := []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}, {Hostname: "gw.example.com"}}
	// nodePort is the gateway as a NodePort Service on 15443 (node port 31443), its
	// nodes chosen by the annotation.
	nodePort := func(selector string) *corev1.Service {
		s := gateway(west, []int32{15443}, nil)
		s.Spec.Type, s.Spec.Ports[0].NodePort = corev1.ServiceTypeNodePort, 31443
		s.Annotations = map[string]string{AnnotationNodeSelector: selector}
		return s
	}
	node := func(name, role, externalIP string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"role": role}}}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}}
		if externalIP != "" {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: externalIP})
		}
		return n
	}
	nodes := map[string]*corev1.Node{"a": node("a", "edge", "198.51.100.10"), "b": node("b", "edge", "198.51.100.11"),
		"c": node("c", "worker", "198.51.100.12"), "d": node("d", "edge", "")}
	for _, tc := range []struct {
		name string
		svc  *corev1.Service
		want []registry.Gateway
	}{
		{"load balancer and external IPs on 15443", gateway(west, []int32{15021, 15443}, lb, "198.51.100.1", "203.0.113.7"),
			[]registry.Gateway{{Network: "net-west", Cluster: "test", Address: "198.51.100.1", Port: 15443}, {Network: "net-west", Cluster: "test", Address: "203.0.113.7", Port: 15443},
				{Network: "net-west", Cluster: "test", Address: "203.0.113.8", Port: 15443}, {Network: "net-west", Cluster: "test", Address: "203.0.113.9", Port: 15443}}},
		{"the gatewayPort label", gateway(map[string]string{LabelNetwork: "net-west", LabelGatewayPort: "8443"}, []int32{8443}, lb[:1]),
			[]registry.Gateway{{Network: "net-west", Cluster: "test", Address: "203.0.113.7", Port: 8443}}},
		{"no address yet", gateway(west, []int32{15443}, nil), nil},
		{"only a host name, not resolved", gateway(west, []int32{15443}, []corev1.LoadBalancerIngress{{Hostname: "gw.unknown.example"}}), nil},
		{"a host name resolved", gateway(west, []int32{15443}, []corev1.LoadBalancerIngress{{Hostname: "gw.example.com"}}),
			[]registry.Gateway{{Network: "net-west", Cluster: "test", Address: "203.0.113.8", Port: 15443}, {Network: "net-west", Cluster: "test", Address: "203.0.113.9", Port: 15443}}},
		{"no gateway port", gateway(west, []int32{443}, lb), nil},
		{"no network", gateway(nil, []int32{15443}, lb), nil},
		{"NodePort: the selected nodes' external IPs, on the node port", nodePort(`{"role": "edge"}`),
			[]registry.Gateway{{Network: "net-west", Cluster: "test", Address: "198.51.100.10", Port: 31443}, {Network: "net-west", Cluster: "test", Address: "198.51.100.11", Port: 31443}}},
		{"NodePort with a selector that is no map: every node", nodePort(`edge`),
			[]registry.Gateway{{Network: "net-west", Cluster: "test", Address: "198.51.100.10", Port: 31443}, {Network: "net-west", Cluster: "test", Address: "198.51.100.11", Port: 31443},
				{Network: "net-west", Cluster: "test", Address: "198.51.100.12", Port: 31443}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, skips := translator{domain: "cluster.local"}.translate(inventory{services: []*corev1.Service{tc.svc}, nodes: nodes,
				gatewayAddrs: map[string][]string{"gw.example.com": {"203.0.113.8", "203.0.113.9"}}})
			if len(skips) > 0 {
				t.Fatal(skips)
			}
			var entries []store.Entry
			for _, r := range out {
				entries = append(entries, store.Entry{Space: store.RegistrySpace("kubernetes.test"), Resource: r})
			}
			snap := registry.NewSnapshot(entries, 1, "cluster.local")
			if got := snap.Gateways("net-west"); !slices.Equal(got, tc.want) {
				t.Errorf("gateways %+v, want %+v", got, tc.want)
			}
			// The Service stays a service of its pods, in no network of its own.
			if svc := snap.Service("istio-eastwestgateway.istio-system.svc.cluster.local", "istio-system"); svc == nil || svc.Labels[LabelNetwork] != "" {
				t.Errorf("the gateway's own service: %+v", svc)
			}
		})
	}
}

// TestHeadlessServices: a headless Service with a selector is resolution NONE (its
// clients pick their pod); one without a selector lists its slices' endpoints, which
// only a STATIC ServiceEntry may, so it stays STATIC. Both are valid entries.
func TestHeadlessServices(t *testing.T) {
	httpName, port := "http", int32(8080)
	withSelector := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db"}, ClusterIP: corev1.ClusterIPNone,
			ClusterIPs: []string{corev1.ClusterIPNone}, Ports: []corev1.ServicePort{{Name: "tcp", Port: 5432}}}}
	withoutSelector := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: "shop"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "legacy-1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "legacy"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"192.168.0.1"}}},
		Ports: []discoveryv1.EndpointPort{{Name: &httpName, Port: &port}},
	}
	out, skips := translator{domain: "cluster.local"}.translate(inventory{services: []*corev1.Service{withSelector, withoutSelector},
		slices: []*discoveryv1.EndpointSlice{slice}})
	if len(skips) > 0 {
		t.Fatalf("skipped %v", skips)
	}
	got := map[string]string{}
	for _, r := range out {
		se := r.Spec.(*networking.ServiceEntry)
		got[r.Meta.Name] = fmt.Sprintf("%v %d addresses %d endpoints", se.Resolution, len(se.Addresses), len(se.Endpoints))
	}
	want := map[string]string{"db": "NONE 0 addresses 0 endpoints", "legacy": "STATIC 0 addresses 1 endpoints"}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestPodDNSNames: a pod with a subdomain (a StatefulSet's, under its headless
// Service) has the name Kubernetes' DNS gives it, "<hostname>.<subdomain>", its
// hostname defaulting to its name; a pod without one has none.
func TestPodDNSNames(t *testing.T) {
	db := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db"}, ClusterIP: corev1.ClusterIPNone,
			ClusterIPs: []string{corev1.ClusterIPNone}, Ports: []corev1.ServicePort{{Name: "tcp", Port: 5432}}}}
	named, unnamed, plain := pod("db-0", map[string]string{"app": "db"}, "10.1.0.7", true),
		pod("db-1", map[string]string{"app": "db"}, "10.1.0.8", true), pod("db-2", map[string]string{"app": "db"}, "10.1.0.9", true)
	named.Spec.Hostname, named.Spec.Subdomain = "primary", "db"
	unnamed.Spec.Subdomain = "db"
	out, skips := translator{domain: "cluster.local"}.translate(inventory{services: []*corev1.Service{db}, pods: []*corev1.Pod{named, unnamed, plain}})
	if len(skips) > 0 {
		t.Fatalf("skipped %v", skips)
	}
	got := map[string]string{}
	for _, r := range out {
		if r.Kind == api.WorkloadEntry {
			got[r.Meta.Name] = r.Meta.Annotations[registry.PodDNSNameAnnotation]
		}
	}
	if want := map[string]string{"db-0": "primary.db", "db-1": "db-1.db", "db-2": ""}; !maps.Equal(got, want) {
		t.Errorf("pods' DNS names %v, want %v", got, want)
	}
}

// TestNodeLocalServices: a Service with internalTrafficPolicy Local says so, and
// its pods' entries name their nodes, for the node-local routing Istio gives it;
// one without a selector (whose endpoints, listed inline, cannot name nodes) does
// not; the pods of other Services keep their nodes to themselves.
func TestNodeLocalServices(t *testing.T) {
	local := corev1.ServiceInternalTrafficPolicyLocal
	service := func(name string, selector map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: corev1.ServiceSpec{Selector: selector, InternalTrafficPolicy: &local, Ports: []corev1.ServicePort{{Name: "grpc", Port: 4317}}}}
	}
	plain := service("plain", map[string]string{"app": "plain"})
	plain.Spec.InternalTrafficPolicy = nil
	out, skips := translator{domain: "cluster.local"}.translate(inventory{
		services: []*corev1.Service{service("collector", map[string]string{"app": "collector"}), service("manual", nil), plain},
		pods: []*corev1.Pod{pod("collector-x1", map[string]string{"app": "collector"}, "10.1.0.7", false),
			pod("plain-1", map[string]string{"app": "plain"}, "10.1.0.8", true)},
	})
	if len(skips) > 0 {
		t.Fatalf("skipped %v", skips)
	}
	got := map[string]map[string]string{}
	for _, r := range out {
		got[r.Kind.Name+"/"+r.Meta.Name] = r.Meta.Annotations
	}
	want := map[string]map[string]string{
		"ServiceEntry/collector":     {registry.InternalTrafficPolicyAnnotation: "Local"},
		"ServiceEntry/manual":        nil,
		"WorkloadEntry/collector-x1": {registry.NodeAnnotation: "node-a", registry.HealthAnnotation: "unhealthy", registry.WorkloadNameAnnotation: "collector-x1"},
		"ServiceEntry/plain":         nil,
		"WorkloadEntry/plain-1":      {registry.WorkloadNameAnnotation: "plain-1"},
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !maps.Equal(g, w) {
			t.Errorf("%s: annotations %v, want %v", k, g, w)
		}
	}
}

func TestWorkloadName(t *testing.T) {
	controlled := func(kind, name string, labels map[string]string) *corev1.Pod {
		yes := true
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pod-x1", GenerateName: "pod-", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &yes}}}}
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{controlled("ReplicaSet", "reviews-v1-5d8f7c9b4", map[string]string{"pod-template-hash": "5d8f7c9b4"}), "reviews-v1"},
		{controlled("ReplicaSet", "canary-7f9d", map[string]string{"rollouts-pod-template-hash": "7f9d"}), "canary"},
		{controlled("ReplicaSet", "plain-rs", nil), "plain-rs"},
		{controlled("ReplicationController", "old-3", map[string]string{"deploymentconfig": "old"}), "old"},
		{controlled("Job", "nightly-28912345", nil), "nightly"},
		{controlled("Job", "once", nil), "once"},
		{controlled("StatefulSet", "db", map[string]string{"service.istio.io/workload-name": "database"}), "database"},
		{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "standalone"}}, "standalone"},
	} {
		if got := workloadName(tc.pod); got != tc.want {
			t.Errorf("%s of %v: workload %q, want %q", tc.pod.Name, tc.pod.OwnerReferences, got, tc.want)
		}
	}
}
