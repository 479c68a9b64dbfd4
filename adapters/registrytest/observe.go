package registrytest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// env is one test's store, fixture and running adapters.
type env struct {
	t       *testing.T
	fx      Fixture
	st      *store.Store
	timeout time.Duration
}

func newEnv(t *testing.T, h Harness) *env {
	t.Helper()
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &env{t: t, fx: h.New(t), st: OpenStore(t), timeout: timeout}
}

// OpenStore opens a one-member store (embedded etcd, no fsync) in a temporary
// directory, closed when the test ends. Adapter tests outside the suite use it too.
func OpenStore(t testing.TB) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ClientURL, cfg.PeerURL = store.AnyLoopbackURL, store.AnyLoopbackURL
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"
	s, err := store.Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// start runs the adapter as node id; the returned function stops it and waits.
func (e *env) start(id string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.fx.Run(ctx, e.st, id) }()
	var once bool
	stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				e.t.Errorf("adapter %s: %v", id, err)
			}
		case <-time.After(30 * time.Second):
			e.t.Errorf("adapter %s did not stop within 30s of its context ending", id)
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// observed is what the registry shows of the adapter's sources.
type observed struct {
	snap     *registry.Snapshot
	status   map[string]store.SourceStatus
	versions map[string]string // "source kind ns/name" -> resourceVersion
}

func (e *env) observe() (*observed, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	entries, rev, err := e.st.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	o := &observed{status: map[string]store.SourceStatus{}, versions: map[string]string{}}
	var mine []store.Entry
	for _, en := range entries {
		if !slices.Contains(e.fx.Sources, en.Space.Source()) {
			continue
		}
		if en.Resource != nil && slices.Contains(e.fx.Builtin, en.Resource.String()) {
			continue
		}
		if en.Status != nil {
			o.status[en.Status.Source] = *en.Status
			continue
		}
		mine = append(mine, en)
		o.versions[en.Space.Source()+" "+en.Resource.String()] = en.Resource.Meta.ResourceVersion
	}
	o.snap = registry.NewSnapshot(mine, rev, "cluster.local")
	return o, nil
}

// eventually waits until check passes on what the registry shows, and returns that.
func (e *env) eventually(what string, check func(o *observed) error) *observed {
	e.t.Helper()
	deadline := time.Now().Add(e.timeout)
	var err error
	for {
		var o *observed
		if o, err = e.observe(); err == nil {
			if err = check(o); err == nil {
				return o
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not so after %s: %v", what, e.timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// services returns the services published under a host.
func (o *observed) services(host string) []*registry.Service {
	var out []*registry.Service
	for _, s := range o.snap.Services() {
		if s.Hostname == host {
			out = append(out, s)
		}
	}
	return out
}

// serves checks that every host of service shows exactly the instances, each once,
// with its port, protocol, labels, locality and health (unhealthy lists the IDs that
// must be unhealthy).
func (e *env) serves(service string, insts []Instance, unhealthy ...string) func(o *observed) error {
	return func(o *observed) error {
		for _, host := range e.fx.Hosts(service) {
			svcs := o.services(host)
			if len(svcs) != 1 {
				return fmt.Errorf("%d services with host %s, want 1", len(svcs), host)
			}
			if err := e.checkEndpoints(svcs[0], o.snap.Endpoints(svcs[0]), insts, unhealthy); err != nil {
				return fmt.Errorf("%s: %w", host, err)
			}
		}
		return nil
	}
}

func (e *env) checkEndpoints(svc *registry.Service, eps []*registry.Workload, insts []Instance, unhealthy []string) error {
	if len(eps) != len(insts) {
		var got []string
		for _, w := range eps {
			got = append(got, w.Address)
		}
		return fmt.Errorf("endpoints at %v, want %d", got, len(insts))
	}
	for _, in := range insts {
		port, ok := svc.Port(in.Port)
		if !ok {
			return fmt.Errorf("no service port %d (ports %+v)", in.Port, svc.Ports)
		}
		if in.Protocol != "" && port.Protocol != strings.ToUpper(in.Protocol) {
			return fmt.Errorf("port %d has protocol %q, want %q", in.Port, port.Protocol, strings.ToUpper(in.Protocol))
		}
		var w *registry.Workload
		for _, c := range eps {
			if c.Address == in.Address {
				w = c
			}
		}
		if w == nil {
			return fmt.Errorf("no endpoint at %s for instance %s", in.Address, in.ID)
		}
		if got := w.PortFor(port); got != in.Port {
			return fmt.Errorf("instance %s: port %d leads to %d, want %d", in.ID, in.Port, got, in.Port)
		}
		want := map[string]string{"version": in.Version}
		for k, v := range in.Labels {
			want[k] = v
		}
		if !registry.LabelsMatch(w.Labels, want) {
			return fmt.Errorf("instance %s: labels %v, want them to include %v", in.ID, w.Labels, want)
		}
		if e.fx.Locality != "" && w.Locality != e.fx.Locality {
			return fmt.Errorf("instance %s: locality %q, want %q", in.ID, w.Locality, e.fx.Locality)
		}
		if wantHealthy := !slices.Contains(unhealthy, in.ID); w.Healthy != wantHealthy {
			return fmt.Errorf("instance %s: healthy %v, want %v", in.ID, w.Healthy, wantHealthy)
		}
	}
	return nil
}

// gone checks that no host of service is published.
func (e *env) gone(service string) func(o *observed) error {
	return func(o *observed) error {
		for _, host := range e.fx.Hosts(service) {
			if n := len(o.services(host)); n != 0 {
				return fmt.Errorf("%d services with host %s, want none", n, host)
			}
		}
		return nil
	}
}

// syncedBy checks that every source's status names node id and is not stale.
func (e *env) syncedBy(id string, stale bool) func(o *observed) error {
	return func(o *observed) error {
		for _, src := range e.fx.Sources {
			st, ok := o.status[src]
			if !ok {
				return fmt.Errorf("no status for source %s", src)
			}
			if st.Node != id || st.Stale != stale {
				return fmt.Errorf("source %s: status %+v, want node %s and stale %v", src, st, id, stale)
			}
		}
		return nil
	}
}

// sameVersions reports the resources whose version differs between a and b, or that
// only one of them has.
func sameVersions(a, b *observed) error {
	var diffs []string
	for k, v := range a.versions {
		if w, ok := b.versions[k]; !ok {
			diffs = append(diffs, k+" deleted")
		} else if v != w {
			diffs = append(diffs, fmt.Sprintf("%s rewritten (version %s -> %s)", k, v, w))
		}
	}
	for k := range b.versions {
		if _, ok := a.versions[k]; !ok {
			diffs = append(diffs, k+" created")
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		return errors.New(strings.Join(diffs, "; "))
	}
	return nil
}
