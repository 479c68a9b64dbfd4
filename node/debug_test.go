package node

import (
	"net/url"
	"strings"
	"testing"

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
