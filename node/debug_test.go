package node

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/xds"
)

func TestDescribedProxy(t *testing.T) {
	p, err := describedProxy(url.Values{"namespace": {"shop"}, "generator": {"envoy"}, "type": {"router"},
		"labels": {"istio=ingressgateway, app=gw"}, "locality": {"us-east/a"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespace != "shop" || p.Generator != "" || p.Type != xds.TypeRouter || p.Labels["app"] != "gw" || p.Locality != "us-east/a" {
		t.Errorf("proxy %+v", p)
	}
	if p, _ := describedProxy(url.Values{}); p.Namespace != "default" || p.Generator != xds.GeneratorGRPC || p.Type != xds.TypeSidecar {
		t.Errorf("defaults: %+v", p)
	}
	for q, want := range map[string]string{"type=waypoint": "want sidecar or router", "generator=x": "want grpc or envoy", "labels=app": `"app" is not k=v`} {
		v, _ := url.ParseQuery(q)
		if _, err := describedProxy(v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", q, err, want)
		}
	}
}

// GET /debug/describe resolves a short host in the proxy's namespace, lists the
// service with its endpoints, and carries what analysis finds in the resources the
// description names, not in others.
func TestDebugDescribe(t *testing.T) {
	api := startDevNode(t, func(*Config) {})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	docs := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.11, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v3}}]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other}
spec: {address: 10.0.0.11}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: unrelated}
spec:
  hosts: [ratings]
  http: [{route: [{destination: {host: ratings, subset: v9}}]}]
`
	if _, err := api.Apply(ctx, "", []client.File{{Source: "mesh.yaml", Data: docs}}); err != nil {
		t.Fatal(err)
	}
	// The node's view takes the write a moment after it is acknowledged.
	raw, err := api.Raw(ctx, "/debug/describe?host=reviews&namespace=default")
	for deadline := time.Now().Add(20 * time.Second); client.IsNotFound(err) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		raw, err = api.Raw(ctx, "/debug/describe?host=reviews&namespace=default")
	}
	if err != nil {
		t.Fatal(err)
	}
	var d client.ServiceDescription
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.Service.Host != "reviews.default.svc.cluster.local" || len(d.Service.Endpoints) != 1 || d.Service.Endpoints[0].Address != "10.0.0.11" {
		t.Errorf("service %+v", d.Service)
	}
	if d.VirtualService == nil || d.VirtualService.Name != "reviews" {
		t.Errorf("virtual service %+v", d.VirtualService)
	}
	if len(d.Messages) != 1 || d.Messages[0].Code != "IST0101" || d.Messages[0].Name != "reviews" {
		t.Errorf("messages %+v, want the one about VirtualService reviews only", d.Messages)
	}
	raw, err = api.Raw(ctx, "/debug/describe?workload="+url.QueryEscape(d.Service.Endpoints[0].Name)+"&namespace=default")
	if err != nil {
		t.Fatal(err)
	}
	var wd client.WorkloadDescription
	if err := json.Unmarshal(raw, &wd); err != nil {
		t.Fatal(err)
	}
	if wd.Workload.Address != "10.0.0.11" || wd.Origin != "ServiceEntry default/reviews" || len(wd.Services) != 1 ||
		wd.Services[0].VirtualService != "default/reviews" || len(wd.Messages) != 1 || wd.Messages[0].Name != "reviews" {
		t.Errorf("workload 10.0.0.11: %+v", wd)
	}
	for path, want := range map[string]string{
		"/debug/describe?workload=10.0.0.12&namespace=default":           "no workload 10.0.0.12 in namespace default",
		"/debug/describe?workload=10.0.0.11&namespace=default":           "2 workloads of namespace default have the name or address 10.0.0.11: ",
		"/debug/describe?workload=10.0.0.11&namespace=default&source=vm": "no workload 10.0.0.11 in namespace default",
		"/debug/describe?workload=10.0.0.11&host=reviews":                "one of them",
		"/debug/describe?namespace=default":                              "name a service (host=) or a workload (workload=), one of them",
		"/debug/describe?host=ratings&namespace=default":                 "no service ratings.default.svc.cluster.local in the registry",
	} {
		if _, err := api.Raw(ctx, path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}
