package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	authnv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/navarch/navarch/adapters/mirror"
	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/internal/wait"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// Adapter mirrors one Kubernetes cluster's Services and pods into the registry.
// Run it on one node at a time: under the election ElectionName names.
type Adapter struct {
	cfg   Config
	rest  *rest.Config
	authn *authnv1client.AuthenticationV1Client
	st    Store
	node  string
	log   *slog.Logger
}

// Store is what the adapter needs of navarch's store: to write its spaces and
// status, to read back the Istio configuration it mirrored (RunConfig), and to read
// the mesh config.
type Store interface {
	mirror.Store
	List(ctx context.Context, sp store.Space, k *api.Kind, ns string) ([]*api.Resource, int64, error)
	Get(ctx context.Context, sp store.Space, k api.Key) (*api.Resource, error)
	WatchKeys(ctx context.Context, k api.Key, changed func(), sps ...store.Space)
}

var _ Store = (*store.Store)(nil)

// New returns an adapter that reads the cluster cfg names and writes to st on behalf
// of the node named node (recorded in the source status). It reads the kubeconfig
// but contacts nothing.
func New(cfg Config, st Store, node string, log *slog.Logger) (*Adapter, error) {
	if !cfg.Enabled() {
		return nil, errors.New("kubernetes: no kubeconfig configured")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	rc.UserAgent = "navarch/" + node
	// client-go allows 5 requests a second by default; every CSR with a pod's token
	// is a TokenReview. istiod's own client allows 80 (bursts of 160).
	rc.QPS, rc.Burst = 80, 160
	authn, err := authnv1client.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	return &Adapter{cfg: cfg, rest: rc, authn: authn, st: st, node: node,
		log: log.With("component", "kubernetes", "cluster", cfg.ClusterID)}, nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == InCluster {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster configuration: %w", err)
		}
		return rc, nil
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %s: %w", kubeconfig, err)
	}
	return rc, nil
}

// Source returns the registry source the cluster is written as.
func (a *Adapter) Source() string { return SourceName(a.cfg.ClusterID) }

// SourceName returns the registry source of cluster id: "kubernetes.<id>".
func SourceName(id string) string { return registry.KubernetesSource(id) }

// ElectionName returns the name of the election whose winner syncs the cluster.
func (a *Adapter) ElectionName() string { return "kubernetes/" + a.cfg.ClusterID }

// ReviewToken asks the API server who a service-account token belongs to
// (TokenReview, for the audiences of Config.TokenAudiences), as istiod does before
// it signs a pod's certificate: the token must be valid, for one of those
// audiences, and a service account's. It implements ca.TokenReviewer; any node may
// call it, elected or not. The credentials need create on tokenreviews
// (system:auth-delegator).
func (a *Adapter) ReviewToken(ctx context.Context, token string) (namespace, serviceAccount, rejected string, err error) {
	res, err := a.authn.TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: a.cfg.TokenAudiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", "", "", fmt.Errorf("TokenReview at %s: %w", a.rest.Host, err)
	}
	st := res.Status
	if !st.Authenticated {
		if st.Error != "" {
			return "", "", st.Error, nil
		}
		return "", "", "the API server did not authenticate it", nil
	}
	if len(a.cfg.TokenAudiences) > 0 && !slices.ContainsFunc(st.Audiences, func(aud string) bool { return slices.Contains(a.cfg.TokenAudiences, aud) }) {
		return "", "", fmt.Sprintf("its audiences %v include none of %v", st.Audiences, a.cfg.TokenAudiences), nil
	}
	parts := strings.Split(st.User.Username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" || parts[2] == "" || parts[3] == "" {
		return "", "", fmt.Sprintf("it belongs to %q, not to a service account", st.User.Username), nil
	}
	return parts[2], parts[3], "", nil
}

// Run follows the cluster's Services, pods and nodes and mirrors them into the store
// until ctx ends (leadership is lost or the node stops). It writes nothing until
// every list was read once, so a node that takes over never deletes what it has not
// read yet; while the API server cannot be reached the last mirrored entries stay
// and the source's status says they are stale. It blocks; the caller owns the
// goroutine.
func (a *Adapter) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.log.Info("syncing Kubernetes cluster", "source", a.Source(), "server", a.rest.Host)
	c := &cluster{changed: make(chan struct{}, 1), metrics: a.cfg.Metrics}
	rc := rest.CopyConfig(a.rest)
	// Informers retry a watch the server refused without a word to anyone: the
	// transport says whether the server answers.
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &healthTransport{next: rt, c: c} })
	core, err := corev1client.NewForConfig(rc)
	if err != nil {
		return err
	}
	disc, err := discoveryv1client.NewForConfig(rc)
	if err != nil {
		return err
	}
	// Pods and nodes change often in ways the translation does not read (a node's
	// status, a container's restart count): those updates wake nothing.
	c.services = informer(core.RESTClient(), c, "services", &corev1.Service{}, nil, nil)
	c.pods = informer(core.RESTClient(), c, "pods", &corev1.Pod{}, nil, samePod)
	c.nodes = informer(core.RESTClient(), c, "nodes", &corev1.Node{}, nil, sameNode)
	// Namespaces choose what is followed (discovery selectors), and the system
	// namespace names the cluster's network: their labels are all that is read.
	c.namespaces = informer(core.RESTClient(), c, "namespaces", &corev1.Namespace{}, nil, sameMeta)
	// The slices Kubernetes keeps for Services with selectors say nothing the pods
	// do not: only those kept by others (Services without selectors) are read.
	c.slices = informer(disc.RESTClient(), c, "endpointslices", &discoveryv1.EndpointSlice{}, func(o *metav1.ListOptions) {
		o.LabelSelector = discoveryv1.LabelManagedBy + "!=" + endpointSliceController
	}, nil)
	// Only what the translation reads is kept of pods and nodes: they are most of
	// what the informers hold.
	if err := c.pods.SetTransform(slimPod); err != nil {
		return err
	}
	if err := c.nodes.SetTransform(slimNode); err != nil {
		return err
	}
	if err := c.namespaces.SetTransform(slimNamespace); err != nil {
		return err
	}
	gateways := newGatewayResolver(func() {
		c.version.Add(1)
		c.signal()
	}, a.log)
	tr := translator{domain: a.cfg.Domain, network: a.cfg.Network, systemNamespace: a.cfg.SystemNamespace}
	tr.selectors, _ = a.cfg.selectors() // New validated them
	fromMesh := len(tr.selectors) == 0  // else the mesh config's
	var meshSelectors []labels.Selector
	if fromMesh { // a change of the mesh config is a change of what is followed
		a.st.WatchKeys(ctx, meshConfigKey, func() {
			c.version.Add(1)
			c.signal()
		}, store.ConfigSpace, store.RegistrySpace(a.ConfigSource()))
	}
	w := &mirror.Writer{St: a.st, Source: a.Source(), Node: a.node, What: "the Kubernetes cluster",
		Interval: a.cfg.StatusInterval, Retry: c.signal, Log: a.log}
	a.mirrorLoop(ctx, c, c.informers(), w, gateways.refresh, func() ([]*api.Resource, []mirror.Skipped) {
		inv := c.inventory()
		inv.gatewayAddrs = gateways.addresses(ctx, gatewayHosts(inv.services))
		if fromMesh {
			meshSelectors = a.meshSelectors(ctx, meshSelectors)
			tr.selectors = meshSelectors
		}
		return tr.translate(inv)
	})
	return nil
}

// mirrorLoop runs informers, and writes what desired makes of them with w whenever
// they change (batched), every StatusInterval (a full re-sync, after tick), and
// while c says the server does not answer (the status), until ctx ends. Nothing is
// written until every informer has listed its resources once; an empty cluster is
// written too.
func (a *Adapter) mirrorLoop(ctx context.Context, c *cluster, informers []cache.SharedIndexInformer, w *mirror.Writer, tick func(), desired func() ([]*api.Resource, []mirror.Skipped)) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, inf := range informers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inf.RunWithContext(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		wait.Every(ctx, a.cfg.StatusInterval, func() {
			tick()
			c.force.Store(true)
			c.signal()
		})
	}()
	c.signal()
	mirror.Coalesce(ctx, c.changed, a.cfg.Coalesce, a.cfg.CoalesceMax, func() {
		ready := true
		for _, inf := range informers {
			ready = ready && inf.HasSynced()
		}
		if !ready {
			// The informers report no completion; look again shortly.
			time.AfterFunc(a.cfg.Coalesce, c.signal)
		}
		w.Flush(ctx, mirror.State{
			Ready: ready, Version: c.version.Load(), Force: c.force.Swap(false), Err: c.err(),
			Desired: desired,
		})
	})
}

// cluster is the cluster as the informers hold it, and whether it can be read.
type cluster struct {
	services, pods, nodes, slices, namespaces cache.SharedIndexInformer

	metrics *Metrics      // nil: changes not counted
	changed chan struct{} // capacity 1: signals Coalesce
	version atomic.Uint64 // bumped by every change the informers see
	force   atomic.Bool   // a full re-sync is due

	mu sync.Mutex
	// readErrs say why the informers may be out of date, by the path of the resource
	// whose last request failed: a refusal of one resource (a missing right) stays
	// while the others are read.
	readErrs map[string]error
}

func (c *cluster) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// err returns why the informers may be out of date (the first failing resource's
// error, by path), or nil while the server answers for every resource.
func (c *cluster) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.readErrs) == 0 {
		return nil
	}
	return c.readErrs[slices.Min(slices.Collect(maps.Keys(c.readErrs)))]
}

// setErr records whether the server answered the last request for a resource, and
// wakes the sync loop when the cluster turns stale or fresh (to write the source's
// status).
func (c *cluster) setErr(path string, err error) {
	c.mu.Lock()
	was := len(c.readErrs) == 0
	if err != nil {
		if c.readErrs == nil {
			c.readErrs = map[string]error{}
		}
		c.readErrs[path] = err
	} else {
		delete(c.readErrs, path)
	}
	fresh := len(c.readErrs) == 0
	c.mu.Unlock()
	if was != fresh {
		if fresh {
			c.force.Store(true) // re-sync what was missed
		}
		c.signal()
	}
}

func (c *cluster) informers() []cache.SharedIndexInformer {
	return []cache.SharedIndexInformer{c.services, c.pods, c.nodes, c.slices, c.namespaces}
}

// inventory returns what the informers hold now.
func (c *cluster) inventory() inventory {
	inv := inventory{nodes: map[string]*corev1.Node{}, namespaces: map[string]*corev1.Namespace{}}
	for _, o := range c.services.GetStore().List() {
		inv.services = append(inv.services, o.(*corev1.Service))
	}
	for _, o := range c.pods.GetStore().List() {
		inv.pods = append(inv.pods, o.(*corev1.Pod))
	}
	for _, o := range c.nodes.GetStore().List() {
		n := o.(*corev1.Node)
		inv.nodes[n.Name] = n
	}
	for _, o := range c.slices.GetStore().List() {
		inv.slices = append(inv.slices, o.(*discoveryv1.EndpointSlice))
	}
	for _, o := range c.namespaces.GetStore().List() {
		ns := o.(*corev1.Namespace)
		inv.namespaces[ns.Name] = ns
	}
	return inv
}

// endpointSliceController is the manager Kubernetes' EndpointSlice controller
// labels its slices with.
const endpointSliceController = "endpointslice-controller.k8s.io"

// informer returns an informer of every object of a resource (those that filter
// leaves in), whose changes signal c, except updates unchanged (when given) says the
// translation cannot see.
func informer(rc cache.Getter, c *cluster, resource string, obj runtime.Object, filter func(*metav1.ListOptions), unchanged func(old, cur any) bool) cache.SharedIndexInformer {
	if filter == nil {
		filter = func(*metav1.ListOptions) {}
	}
	lw := cache.NewFilteredListWatchFromClient(rc, resource, metav1.NamespaceAll, filter)
	inf := cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
	c.notify(inf, unchanged, newEvents(c.metrics.regVec(), registryEventTypes[resource]))
	return inf
}

// registryEventTypes are istiod's names of the registry's resources in
// pilot_k8s_reg_events.
var registryEventTypes = map[string]string{"services": "Services", "pods": "Pods", "nodes": "Nodes",
	"namespaces": "Namespaces", "endpointslices": "EndpointSlice"}

// notify makes every change an informer sees signal c, except updates unchanged
// (when given) says the translation cannot see, and counts each in ev.
func (c *cluster) notify(inf cache.SharedIndexInformer, unchanged func(old, cur any) bool, ev events) {
	changed := func() {
		c.version.Add(1)
		c.signal()
	}
	// Registration fails only on a stopped informer; this one has not started.
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { inc(ev.add); changed() },
		UpdateFunc: func(old, cur any) {
			if unchanged != nil && unchanged(old, cur) {
				inc(ev.same)
				return
			}
			inc(ev.update)
			changed()
		},
		DeleteFunc: func(any) { inc(ev.del); changed() },
	})
}

// healthTransport records in c whether the API server answers for each resource: a
// request that cannot reach it, or that it answers with a server error or a refusal
// (401, 403, 429), makes the cluster stale until the same resource's next request
// gets any other answer.
type healthTransport struct {
	next http.RoundTripper
	c    *cluster
}

func (h *healthTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(req)
	switch {
	case req.Context().Err() != nil:
		// The adapter is stopping; the server said nothing.
	case err != nil:
		h.c.setErr(req.URL.Path, fmt.Errorf("reading %s: %w", req.URL.Path, err))
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusUnauthorized ||
		resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests:
		h.c.setErr(req.URL.Path, fmt.Errorf("reading %s: the API server answered %s", req.URL.Path, resp.Status))
	default:
		h.c.setErr(req.URL.Path, nil)
	}
	return resp, err
}

// sameMeta reports whether two versions of a (slim) namespace are the same to the
// translation: the same labels and (kept) annotations.
func sameMeta(old, cur any) bool {
	o, ok1 := old.(metav1.Object)
	n, ok2 := cur.(metav1.Object)
	return ok1 && ok2 && maps.Equal(o.GetLabels(), n.GetLabels()) && maps.Equal(o.GetAnnotations(), n.GetAnnotations())
}

// samePod reports whether two versions of a (slim) pod are the same to the
// translation: equal but for their resource versions.
func samePod(old, cur any) bool {
	o, ok1 := old.(*corev1.Pod)
	n, ok2 := cur.(*corev1.Pod)
	if !ok1 || !ok2 {
		return false
	}
	oc, nc := *o, *n
	oc.ResourceVersion, nc.ResourceVersion = "", ""
	return equality.Semantic.DeepEqual(&oc, &nc)
}

// slimNode keeps of a node what the translation reads: its name, labels and
// external IP.
func slimNode(o any) (any, error) {
	n, ok := o.(*corev1.Node)
	if !ok {
		return o, nil // a tombstone
	}
	slim := &corev1.Node{ObjectMeta: nameAndLabels(n.ObjectMeta)}
	if a := externalIP(n); a != "" { // a NodePort network gateway's address
		slim.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeExternalIP, Address: a}}
	}
	return slim, nil
}

// sameNode reports whether two versions of a (slim) node are the same to the
// translation: the same labels and external IP.
func sameNode(old, cur any) bool {
	o, ok1 := old.(*corev1.Node)
	n, ok2 := cur.(*corev1.Node)
	return ok1 && ok2 && sameMeta(o, n) && externalIP(o) == externalIP(n)
}

// slimNamespace keeps of a namespace what the translation reads: its name, labels
// and traffic distribution annotation.
func slimNamespace(o any) (any, error) {
	ns, ok := o.(*corev1.Namespace)
	if !ok {
		return o, nil // a tombstone
	}
	slim := &corev1.Namespace{ObjectMeta: nameAndLabels(ns.ObjectMeta)}
	if v, ok := ns.Annotations[registry.TrafficDistributionAnnotation]; ok {
		slim.Annotations = map[string]string{registry.TrafficDistributionAnnotation: v}
	}
	return slim, nil
}

// nameAndLabels keeps of a cluster-scoped object's metadata its name and labels,
// and what the informer's cache needs (resource version, UID).
func nameAndLabels(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Labels: m.Labels, ResourceVersion: m.ResourceVersion, UID: m.UID}
}

// slimPod keeps of a pod what the translation reads.
func slimPod(o any) (any, error) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil // a tombstone
	}
	slim := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels,
			ResourceVersion: p.ResourceVersion, DeletionTimestamp: p.DeletionTimestamp, UID: p.UID},
		Spec: corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName, NodeName: p.Spec.NodeName,
			Hostname: p.Spec.Hostname, Subdomain: p.Spec.Subdomain},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, Conditions: p.Status.Conditions},
	}
	for _, ct := range p.Spec.Containers {
		if len(ct.Ports) > 0 {
			slim.Spec.Containers = append(slim.Spec.Containers, corev1.Container{Name: ct.Name, Ports: ct.Ports})
		}
	}
	return slim, nil
}

var meshConfigKey = api.Key{Kind: api.MeshConfig, Namespace: api.MeshConfigNamespace, Name: api.MeshConfigName}

// meshSelectors returns the mesh config's discoverySelectors (the one navarch apply
// wrote, else the one mirrored from this cluster), which choose the namespaces
// followed when the adapter is given none (Config.DiscoverySelectors); nil for none.
// The mesh config is read at every translation, and Run translates again when it
// changes. A mesh config that cannot be read leaves the selectors as they were
// (last).
func (a *Adapter) meshSelectors(ctx context.Context, last []labels.Selector) []labels.Selector {
	var r *api.Resource
	var err error
	for _, sp := range []store.Space{store.ConfigSpace, store.RegistrySpace(a.ConfigSource())} {
		if r, err = a.st.Get(ctx, sp, meshConfigKey); !errors.Is(err, store.ErrNotFound) {
			break
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		a.log.Warn("reading the mesh config's discovery selectors failed; keeping the last ones", "err", err)
		return last
	}
	var out []labels.Selector
	for _, s := range r.Spec.(*meshconfig.MeshConfig).GetDiscoverySelectors() {
		ls := &metav1.LabelSelector{MatchLabels: s.GetMatchLabels()}
		for _, e := range s.GetMatchExpressions() {
			ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{
				Key: e.GetKey(), Operator: metav1.LabelSelectorOperator(e.GetOperator()), Values: e.GetValues()})
		}
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil { // checked by api
			a.log.Warn("a discovery selector of the mesh config is not valid; left out", "err", err)
			continue
		}
		out = append(out, sel)
	}
	return out
}
