package main

import (
	"fmt"
	"testing"

	"github.com/navarch/navarch/client"
)

func TestFilterRegistry(t *testing.T) {
	listing := func() *client.RegistryListing {
		return &client.RegistryListing{
			Services: []client.ServiceListing{
				{Host: "ratings.vms.svc.cluster.local", Namespace: "vms", Source: "serviceentry", Endpoints: []client.EndpointListing{
					{Name: "ratings-10.0.0.1", Namespace: "vms", Source: "vm"}, {Name: "ratings-static", Namespace: "vms", Source: "serviceentry"}}},
				{Host: "web.service.consul", Namespace: "consul", Source: "consul.dc1", Endpoints: []client.EndpointListing{
					{Name: "web-1", Namespace: "consul", Source: "consul.dc1"}}},
				{Host: "empty.default.svc.cluster.local", Namespace: "default", Source: "serviceentry", Endpoints: []client.EndpointListing{}},
			},
			Unselected: []client.EndpointListing{{Name: "reviews-10.0.0.2", Namespace: "vms", Source: "vm"}},
		}
	}
	summary := func(r *client.RegistryListing) string {
		var out []string
		for _, s := range r.Services {
			var eps []string
			for _, e := range s.Endpoints {
				eps = append(eps, e.Name)
			}
			out = append(out, fmt.Sprintf("%s%v", s.Host, eps))
		}
		for _, e := range r.Unselected {
			out = append(out, "unselected:"+e.Name)
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct{ source, ns, want string }{
		{"", "", "[ratings.vms.svc.cluster.local[ratings-10.0.0.1 ratings-static] web.service.consul[web-1] empty.default.svc.cluster.local[] unselected:reviews-10.0.0.2]"},
		{"vm", "", "[ratings.vms.svc.cluster.local[ratings-10.0.0.1] unselected:reviews-10.0.0.2]"},
		{"serviceentry", "", "[ratings.vms.svc.cluster.local[ratings-static] empty.default.svc.cluster.local[]]"},
		{"", "consul", "[web.service.consul[web-1]]"},
		{"vm", "default", "[]"},
	} {
		r := listing()
		filterRegistry(r, tc.source, tc.ns)
		if got := summary(r); got != tc.want {
			t.Errorf("source %q namespace %q:\n got %s\nwant %s", tc.source, tc.ns, got, tc.want)
		}
	}
}
