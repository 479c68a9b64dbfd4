package xds

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// Generator builds every resource of one type for one proxy class. Generators are
// stateless and called from build workers concurrently.
type Generator interface {
	// Name names the generator in errors and logs.
	Name() string
	// TypeURL is the type of the resources the generator builds.
	TypeURL() string
	// Generate returns the resources; a resource it cannot build is an error for that
	// resource only, reported through ctx.skip.
	Generate(ctx *Context) []named
}

// Profile is the list of generators that build the configuration of one kind of proxy.
type Profile []Generator

// grpcProfile builds configuration for proxyless gRPC clients and servers: API
// listeners named host:port, routes, EDS clusters and endpoints.
func grpcProfile() Profile {
	return Profile{grpcListeners{}, grpcRoutes{}, clusters{}, endpoints{}}
}

// Context is what generators build from: one proxy class at one snapshot.
type Context struct {
	Snapshot *registry.Snapshot
	// Proxy is a representative of the class; generators may read only the fields
	// that make up the class key (type, generator, namespace, labels, identity).
	Proxy *Proxy
	// Services are the services the proxy sees, sorted by host name.
	Services []*registry.Service
	// Mesh is the snapshot's mesh config (mesh.go), never nil.
	Mesh *meshconfig.MeshConfig
	// TrustDomain and RootNamespace are the server's (see Config).
	TrustDomain, RootNamespace string

	rules   map[*registry.Service]*api.Resource
	sidecar *api.Resource // the Sidecar that scopes the proxy, nil for none
	// ruleScope names the DestinationRules with a workloadSelector that select the
	// proxy; what is built from DestinationRules is shared only between classes with
	// the same (see shareKey).
	ruleScope string
	once      map[string]any // see derived
	errs      []error
	gen       string
	// memo holds the shared resources (see named) already built from Snapshot by
	// any class; nil builds everything afresh.
	memo *sync.Map
	// validated holds the resources of the server's last pushes; nil validates
	// every resource.
	validated *validCache
}

// newContext is the context of a build of proxy p's class from snap.
func (s *Server) newContext(snap *registry.Snapshot, p *Proxy) *Context {
	ctx := newContext(snap, p, s.cfg.TrustDomain, s.cfg.RootNamespace)
	ctx.validated = &s.validated
	s.mu.Lock()
	shared := len(s.classes) > 1
	s.mu.Unlock()
	if shared { // with one class the memo would only cost (a third of a build)
		ctx.memo = s.memoFor(snap)
	}
	return ctx
}

// snapMemo is the memo of shared resources built from one snapshot.
type snapMemo struct {
	snap *registry.Snapshot
	m    sync.Map
}

// memoFor returns the memo of shared resources built from snap, starting a new one
// (and letting the previous snapshot's go) when snap is newer than the current memo's.
// A build from an older snapshot gets no memo.
func (s *Server) memoFor(snap *registry.Snapshot) *sync.Map {
	for {
		cur := s.memo.Load()
		switch {
		case cur != nil && cur.snap == snap:
			return &cur.m
		case cur != nil && cur.snap.Revision > snap.Revision:
			return nil
		}
		next := &snapMemo{snap: snap}
		if s.memo.CompareAndSwap(cur, next) {
			return &next.m
		}
	}
}

func newContext(snap *registry.Snapshot, p *Proxy, trustDomain, rootNS string) *Context {
	ctx := &Context{Snapshot: snap, Proxy: p, Mesh: meshOf(snap), TrustDomain: trustDomain, RootNamespace: rootNS,
		rules: map[*registry.Service]*api.Resource{}}
	ctx.sidecar = sidecarFor(snap, p, rootNS)
	ctx.ruleScope = selectingRules(snap, p)
	ctx.Services = visibleServices(snap, p, ctx.sidecar)
	return ctx
}

// selectingRules names the DestinationRules of p's namespace whose workloadSelector
// selects p, "" for none (the usual case).
func selectingRules(snap *registry.Snapshot, p *Proxy) string {
	var names []string
	for _, r := range snap.Config(api.DestinationRule) {
		sel := r.Spec.(*networking.DestinationRule).WorkloadSelector
		if sel != nil && r.Meta.Namespace == p.Namespace && registry.LabelsMatch(p.Labels, sel.MatchLabels) {
			names = append(names, r.Meta.Name)
		}
	}
	return strings.Join(names, ",")
}

// shareKey is the key (see named) of a resource built from DestinationRules for the
// proxy's namespace: parts say what else it depends on.
func (ctx *Context) shareKey(parts ...string) string {
	key := strings.Join(append([]string{ctx.Proxy.Namespace}, parts...), "|")
	if ctx.ruleScope != "" {
		key += "|rules:" + ctx.ruleScope
	}
	return key
}

// derived returns f's result, computed once per build: for what several generators,
// or several resources of one, derive from the same inputs (a gateway's servers, a
// workload's JWT filter), so that its cost is paid and its problems reported once.
func derived[T any](ctx *Context, key string, f func() T) T {
	if v, ok := ctx.once[key]; ok {
		return v.(T)
	}
	v := f()
	if ctx.once == nil {
		ctx.once = map[string]any{}
	}
	ctx.once[key] = v
	return v
}

// skip records that a resource could not be built; the rest of the build goes on.
func (ctx *Context) skip(name string, err error) {
	ctx.errs = append(ctx.errs, fmt.Errorf("%s: %s: %w", ctx.gen, name, err))
}

// destinationRule returns the DestinationRule spec that applies to svc, or nil.
func (ctx *Context) destinationRule(svc *registry.Service) *networking.DestinationRule {
	if r := ctx.destinationRuleResource(svc); r != nil {
		return r.Spec.(*networking.DestinationRule)
	}
	return nil
}

// destinationRuleResource returns the DestinationRule that applies to svc, or nil.
func (ctx *Context) destinationRuleResource(svc *registry.Service) *api.Resource {
	if r, ok := ctx.rules[svc]; ok {
		return r
	}
	r := ctx.destinationRules().For(svc.Hostname, svc.Namespace, ctx.Proxy.Labels)
	ctx.rules[svc] = r
	return r
}

// inboundDestinationRule returns the DestinationRule that applies to the proxy's
// own service svc on its inbound side (rules with a workloadSelector do not).
func (ctx *Context) inboundDestinationRule(svc *registry.Service) *api.Resource {
	return ctx.destinationRules().Inbound(svc.Hostname, svc.Namespace)
}

// destinationRules returns the DestinationRules the proxy may take (registry.Rules).
func (ctx *Context) destinationRules() *registry.Rules {
	return derived(ctx, "destination-rules", func() *registry.Rules { return ctx.Snapshot.DestinationRules(ctx.Proxy.Namespace, ctx.RootNamespace) })
}

// build runs every generator of the profile and returns the built resources by type,
// each validated by its proto's Validate. Resources that fail are left out and
// reported in the error; everything else is returned.
func (p Profile) build(ctx *Context) (map[string]*TypeSet, error) {
	out := make(map[string]*TypeSet, len(p))
	for _, g := range p {
		ctx.gen = g.Name()
		set := &TypeSet{TypeURL: g.TypeURL(), ByName: map[string]*Resource{}}
		built := g.Generate(ctx)
		if pt := ctx.envoyPatches(); pt != nil {
			built = pt.apply(ctx, g.TypeURL(), built)
		}
		for _, n := range built {
			if _, dup := set.ByName[n.name]; dup {
				ctx.skip(n.name, errors.New("built twice; keeping the first"))
				continue
			}
			if r := ctx.resource(g.TypeURL(), n); r != nil {
				set.ByName[n.name] = r
			}
		}
		out[g.TypeURL()] = set
	}
	return out, errors.Join(ctx.errs...)
}

// resource validates and marshals a generated resource, or takes it from the memo
// when another class of this push built it with the same key (waiting while that
// class builds it, so concurrent builds of classes do each resource once). A resource
// that fails is reported and left out (nil).
func (ctx *Context) resource(typeURL string, n named) *Resource {
	if n.lazy == nil || ctx.memo == nil {
		r, err := validResource(ctx.validated, typeURL, n)
		if err != nil {
			ctx.skip(n.name, err)
		}
		return r
	}
	key := memoKey{typeURL, n.name, n.key}
	e, ok := ctx.memo.Load(key)
	if !ok {
		e, _ = ctx.memo.LoadOrStore(key, &memoEntry{})
	}
	m := e.(*memoEntry)
	m.once.Do(func() { m.r, m.err = validResource(ctx.validated, typeURL, n) })
	if m.err != nil {
		ctx.skip(n.name, m.err)
	}
	return m.r
}

// memoKey identifies a shared resource: its type, name and key (see named).
type memoKey struct{ typeURL, name, key string }

// memoEntry is a shared resource, built once.
type memoEntry struct {
	once sync.Once
	r    *Resource
	err  error
}

// validResource builds, validates (with what it packs: validateNested) and marshals
// a generated resource. A resource
// whose bytes are those of one in v (built in the server's last pushes) is that
// resource, not validated again.
func validResource(v *validCache, typeURL string, n named) (*Resource, error) {
	msg := n.msg
	if n.lazy != nil {
		msg = n.lazy()
	}
	b, err := deterministic.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("marshalling %s %q: %w", shortType(typeURL), n.name, err)
	}
	key := validKey{typeURL, contentVersion(b)}
	if r := v.get(key); r != nil && r.Name == n.name && bytes.Equal(r.Body.Value, b) {
		v.put(key, r)
		return r, nil
	}
	validate := validateNested
	if n.patched {
		validate = func(m proto.Message, _ []byte) error { return validateUnpacked(m) }
	}
	if err := validate(msg, b); err != nil {
		return nil, fmt.Errorf("invalid: %w", err)
	}
	r := marshalled(typeURL, n.name, key.version, b)
	v.put(key, r)
	return r, nil
}

// validCache keeps the resources built in a server's last two pushes (and the
// builds between them), by type and content, so that what a push builds again
// unchanged is not validated again: Validate reads nothing but the message, and
// deterministic bytes determine the message. A nil validCache keeps nothing.
type validCache struct {
	mu        sync.Mutex
	cur, prev map[validKey]*Resource
}

type validKey struct{ typeURL, version string }

// rotate starts a push: what the push before last built and this one has not
// rebuilt is let go.
func (v *validCache) rotate() {
	v.mu.Lock()
	v.prev, v.cur = v.cur, nil
	v.mu.Unlock()
}

func (v *validCache) get(k validKey) *Resource {
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if r := v.cur[k]; r != nil {
		return r
	}
	return v.prev[k]
}

func (v *validCache) put(k validKey, r *Resource) {
	if v == nil {
		return
	}
	v.mu.Lock()
	if v.cur == nil {
		v.cur = make(map[validKey]*Resource, len(v.prev))
	}
	v.cur[k] = r
	v.mu.Unlock()
}
