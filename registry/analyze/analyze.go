// Package analyze finds configuration that is valid but does not do what its author
// meant: a route to a host the mesh does not know, a subset no DestinationRule
// defines, two VirtualServices claiming one host, a policy that selects no
// workload. It is navarch's `istioctl analyze`: it reports with Istio's message codes
// (IST0101 and so on, https://istio.io/latest/docs/reference/config/analysis/) so that
// what users know of those carries over, and it judges by what navarch's proxies
// would get, from the registry of every source (Kubernetes, Consul, VMs, ServiceEntries),
// not from Kubernetes Services and pods alone. docs/analyze.md lists the checks and
// where they differ from Istio's.
//
// Validation (package api) refuses what is wrong on its own; analysis looks at
// resources together, so it runs on a whole snapshot and never refuses anything.
package analyze

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// Level is how bad a message is, as Istio grades its analysis messages.
type Level int

// The levels, least severe first.
const (
	Info Level = iota
	Warning
	Error
)

func (l Level) String() string {
	switch l {
	case Error:
		return "Error"
	case Warning:
		return "Warning"
	}
	return "Info"
}

// ParseLevel reads a level by name, in any case.
func ParseLevel(s string) (Level, error) {
	for _, l := range []Level{Info, Warning, Error} {
		if strings.EqualFold(s, l.String()) {
			return l, nil
		}
	}
	return 0, fmt.Errorf("unknown level %q (Info, Warning or Error)", s)
}

// Message is one finding about one resource.
type Message struct {
	Code  string // Istio's code, "IST0101"
	Level Level
	// Resource is the resource the finding is about.
	Resource api.Key
	// Text says what is wrong, in Istio's words where Istio has the message.
	Text string
}

// String formats the message as istioctl analyze prints one:
// `Error [IST0101] (VirtualService default/reviews) Referenced host not found: "ratings"`.
func (m Message) String() string {
	return fmt.Sprintf("%s [%s] (%s) %s", m.Level, m.Code, m.Resource, m.Text)
}

// rootNamespace is the mesh's root namespace, fixed in navarch (api.MeshConfig): a
// policy there with a selector may select workloads of every namespace.
const rootNamespace = api.MeshConfigNamespace

// Analyze checks every resource of snap and returns what it found, sorted by
// resource, then code, then text.
func Analyze(snap *registry.Snapshot) []Message {
	a := &analysis{snap: snap, byHost: map[string][]*registry.Service{},
		rules: map[string]*registry.Rules{}, workloads: map[string][]*registry.Workload{}}
	for _, w := range snap.Workloads() {
		a.workloads[w.Namespace] = append(a.workloads[w.Namespace], w)
	}
	for _, svc := range snap.Services() {
		if strings.HasPrefix(svc.Hostname, "*") {
			a.wild = append(a.wild, svc)
		} else {
			a.byHost[svc.Hostname] = append(a.byHost[svc.Hostname], svc)
		}
	}
	for _, check := range []func(){
		a.virtualServiceDestinations,
		a.virtualServiceGateways,
		a.meshHostConflicts,
		a.destinationRules,
		a.gatewayConflicts,
		a.serviceEntries,
		a.selectors,
		a.envoyFilters,
		a.telemetryProviders,
		a.schemaWarnings,
		a.jwtClaimRoutes,
		a.deprecatedFields,
	} {
		check()
	}
	slices.SortFunc(a.out, func(x, y Message) int {
		return cmp.Or(
			cmp.Compare(x.Resource.Kind.Name, y.Resource.Kind.Name),
			cmp.Compare(x.Resource.Namespace, y.Resource.Namespace),
			cmp.Compare(x.Resource.Name, y.Resource.Name),
			cmp.Compare(x.Code, y.Code),
			cmp.Compare(x.Text, y.Text),
		)
	})
	return slices.CompactFunc(a.out, func(x, y Message) bool { return x == y })
}

// analysis is one run over a snapshot.
type analysis struct {
	snap *registry.Snapshot
	out  []Message
	// byHost holds the services of each exact host name, wild those of wildcard
	// hosts, in the snapshot's order.
	byHost map[string][]*registry.Service
	wild   []*registry.Service
	// rules caches the DestinationRules visible from each namespace; workloads
	// holds the workloads of each namespace.
	rules     map[string]*registry.Rules
	workloads map[string][]*registry.Workload
}

func (a *analysis) report(r *api.Resource, code string, level Level, format string, args ...any) {
	a.out = append(a.out, Message{Code: code, Level: level, Resource: r.Key(), Text: fmt.Sprintf(format, args...)})
}

// rulesFrom returns the DestinationRules visible from namespace ns.
func (a *analysis) rulesFrom(ns string) *registry.Rules {
	r, ok := a.rules[ns]
	if !ok {
		r = a.snap.DestinationRules(ns, rootNamespace)
		a.rules[ns] = r
	}
	return r
}

// resolve turns a host as written in a resource of namespace ns into its full name.
func (a *analysis) resolve(host, ns string) string {
	return registry.ResolveHost(host, ns, a.snap.Domain)
}

// names returns "namespace/name" of each resource, sorted and joined by commas, as
// Istio's messages list resources.
func names(rs []*api.Resource) string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Meta.Namespace+"/"+r.Meta.Name)
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ",")
}

// scopes returns the namespaces an exportTo list exports a resource of namespace ns
// to, ["*"] for all. An empty list means def (the mesh config's default for the
// kind), and an empty def all namespaces.
func scopes(exportTo, def []string, ns string) []string {
	if len(exportTo) == 0 {
		exportTo = def
	}
	if len(exportTo) == 0 || slices.Contains(exportTo, "*") {
		return []string{"*"}
	}
	out := make([]string, 0, len(exportTo))
	for _, e := range exportTo {
		if e == "." {
			e = ns
		}
		out = append(out, e)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// overlap reports whether two scopes (see scopes) share a namespace.
func overlap(a, b []string) bool {
	if slices.Contains(a, "*") || slices.Contains(b, "*") {
		return true
	}
	for _, ns := range a {
		if slices.Contains(b, ns) {
			return true
		}
	}
	return false
}
