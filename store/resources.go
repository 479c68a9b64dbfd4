package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/navarch/navarch/api"
)

// Action says what a write did to one resource.
type Action string

// Actions reported by Apply and Delete.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Deleted    Action = "deleted"
)

// Result is the outcome of writing one resource: the resource as stored (with its
// ResourceVersion) and what happened to it.
type Result struct {
	Resource *api.Resource
	Action   Action
}

// maxApplyAttempts bounds the retries of an apply that lost a race with another writer
// of the same keys.
const maxApplyAttempts = 8

// Get returns the stored resource with key k.
func (s *Store) Get(ctx context.Context, sp Space, k api.Key) (*api.Resource, error) {
	resp, err := s.cli.Get(ctx, sp.Key(k))
	if err != nil {
		return nil, mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	return decodeKV(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// Layered reads resources from several spaces in turn: the first that holds a key
// has it. A node reads the configuration a workload names (its WorkloadGroup) from
// what navarch apply wrote, then from the sources that mirror configuration (a
// Kubernetes cluster's Istio resources).
type Layered struct {
	St     *Store
	Spaces []Space
}

// Get returns the resource with key k from the first space that has it; ErrNotFound
// when none does.
func (l Layered) Get(ctx context.Context, k api.Key) (*api.Resource, error) {
	for _, sp := range l.Spaces {
		r, err := l.St.Get(ctx, sp, k)
		if !errors.Is(err, ErrNotFound) {
			return r, err
		}
	}
	return nil, fmt.Errorf("%s: %w", k, ErrNotFound)
}

// List returns every resource of kind k in namespace ns (all namespaces when ns is
// empty), sorted by namespace and name, and the revision they were read at.
func (s *Store) List(ctx context.Context, sp Space, k *api.Kind, ns string) ([]*api.Resource, int64, error) {
	resp, err := s.cli.Get(ctx, sp.KindPrefix(k, ns), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, mapErr(err)
	}
	out := make([]*api.Resource, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r, err := decodeKV(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	return out, resp.Header.Revision, nil
}

// Create stores a new resource; it fails with ErrExists if the key is taken.
func (s *Store) Create(ctx context.Context, sp Space, r *api.Resource) (*api.Resource, error) {
	if err := api.Validate(r); err != nil {
		return nil, err
	}
	key := sp.Key(r.Key())
	stored := r.Clone()
	stamp(stored, nil)
	val, err := stored.MarshalJSON()
	if err != nil {
		return nil, err
	}
	resp, err := s.commit(ctx, func() (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(val))).Commit()
	})
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%s: %w", r, ErrExists)
	}
	stored.Meta.ResourceVersion = strconv.FormatInt(resp.Header.Revision, 10)
	return stored, nil
}

// Update replaces an existing resource. When r.Meta.ResourceVersion is set the write is
// a compare-and-swap: it fails with ErrConflict unless the stored resource still has
// that version.
func (s *Store) Update(ctx context.Context, sp Space, r *api.Resource) (*api.Resource, error) {
	if err := api.Validate(r); err != nil {
		return nil, err
	}
	res, err := s.apply(ctx, sp, []*api.Resource{r}, true, false)
	if err != nil {
		return nil, err
	}
	return res[0].Resource, nil
}

// Apply creates or replaces every resource in rs, all or nothing, in one etcd
// transaction. A resource whose spec, labels and annotations equal the stored ones is
// left untouched (Unchanged, no new revision). A resource that carries a
// ResourceVersion is written only if the stored one still has it (ErrConflict
// otherwise). Every resource is validated first; if any is invalid nothing is written.
// When rs names a key twice the last one wins.
func (s *Store) Apply(ctx context.Context, sp Space, rs []*api.Resource) ([]Result, error) {
	if err := validateAll(rs); err != nil {
		return nil, err
	}
	return s.apply(ctx, sp, dedupe(rs), false, false)
}

// DryRun is Apply without the write: every resource is validated and checked against
// what is stored, and the results say what Apply would do (Created, Configured,
// Unchanged; changed resources carry no ResourceVersion). Nothing is written.
func (s *Store) DryRun(ctx context.Context, sp Space, rs []*api.Resource) ([]Result, error) {
	if err := validateAll(rs); err != nil {
		return nil, err
	}
	return s.apply(ctx, sp, dedupe(rs), false, true)
}

func validateAll(rs []*api.Resource) error {
	var errs []error
	for _, r := range rs {
		if err := api.Validate(r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func dedupe(rs []*api.Resource) []*api.Resource {
	last := make(map[api.Key]int, len(rs))
	for i, r := range rs {
		last[r.Key()] = i
	}
	out := make([]*api.Resource, 0, len(last))
	for i, r := range rs {
		if last[r.Key()] == i {
			out = append(out, r)
		}
	}
	return out
}

// apply writes rs (already validated) in one transaction, retrying when a concurrent
// writer changed one of the keys between our read and our write; with dryRun it
// returns what it would write instead.
func (s *Store) apply(ctx context.Context, sp Space, rs []*api.Resource, mustExist, dryRun bool) ([]Result, error) {
	keys := make([]string, len(rs))
	for i, r := range rs {
		keys[i] = sp.Key(r.Key())
	}
	for attempt := 0; attempt < maxApplyAttempts; attempt++ {
		current, err := s.getMany(ctx, keys)
		if err != nil {
			return nil, err
		}
		results := make([]Result, len(rs))
		var cmps []clientv3.Cmp
		var puts []clientv3.Op
		for i, r := range rs {
			cur := current[i]
			if err := checkPrecondition(r, cur, mustExist); err != nil {
				return nil, err
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(keys[i]), "=", cur.modRevision()))
			if cur.res != nil && api.SpecEqual(cur.res, r) {
				results[i] = Result{Resource: cur.res, Action: Unchanged}
				continue
			}
			stored := r.Clone()
			stamp(stored, cur.res)
			val, err := stored.MarshalJSON()
			if err != nil {
				return nil, err
			}
			puts = append(puts, clientv3.OpPut(keys[i], string(val)))
			action := Created
			if cur.res != nil {
				action = Configured
			}
			results[i] = Result{Resource: stored, Action: action}
		}
		if len(puts) == 0 || dryRun {
			return results, nil
		}
		resp, err := s.commit(ctx, func() (*clientv3.TxnResponse, error) {
			return s.cli.Txn(ctx).If(cmps...).Then(puts...).Commit()
		})
		if err != nil {
			return nil, err
		}
		if !resp.Succeeded {
			continue // someone wrote one of the keys; read again
		}
		rev := strconv.FormatInt(resp.Header.Revision, 10)
		for i := range results {
			if results[i].Action != Unchanged {
				results[i].Resource.Meta.ResourceVersion = rev
			}
		}
		return results, nil
	}
	return nil, fmt.Errorf("applying %d resources: %w (gave up after %d attempts)", len(rs), ErrConflict, maxApplyAttempts)
}

func checkPrecondition(r *api.Resource, cur stored, mustExist bool) error {
	if cur.res == nil {
		if mustExist {
			return fmt.Errorf("%s: %w", r, ErrNotFound)
		}
		if r.Meta.ResourceVersion != "" {
			return fmt.Errorf("%s: resourceVersion %s given but the resource does not exist: %w", r, r.Meta.ResourceVersion, ErrConflict)
		}
		return nil
	}
	if r.Meta.ResourceVersion != "" && r.Meta.ResourceVersion != cur.res.Meta.ResourceVersion {
		return fmt.Errorf("%s: resourceVersion is %s, not %s: %w", r, cur.res.Meta.ResourceVersion, r.Meta.ResourceVersion, ErrConflict)
	}
	return nil
}

// stamp sets the store-owned metadata of a resource about to be written over prev
// (nil when it is new).
func stamp(r *api.Resource, prev *api.Resource) {
	r.Meta.ResourceVersion = ""
	if prev == nil {
		now := time.Now().UTC().Truncate(time.Second)
		r.Meta.CreationTimestamp = &now
		r.Meta.Generation = 1
		return
	}
	r.Meta.CreationTimestamp = prev.Meta.CreationTimestamp
	r.Meta.Generation = prev.Meta.Generation
	if !api.SpecEqual(prev, r) {
		r.Meta.Generation++
	}
}

// stored is a key as read: the resource (nil if absent) and its mod revision.
type stored struct {
	res *api.Resource
	rev int64
}

func (s stored) modRevision() int64 { return s.rev }

// getMany reads keys at one revision.
func (s *Store) getMany(ctx context.Context, keys []string) ([]stored, error) {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k)
	}
	resp, err := s.commit(ctx, func() (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).Then(ops...).Commit()
	})
	if err != nil {
		return nil, err
	}
	out := make([]stored, len(keys))
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue
		}
		res, err := decodeKV(kvs[0].Value, kvs[0].ModRevision)
		if err != nil {
			return nil, err
		}
		out[i] = stored{res: res, rev: kvs[0].ModRevision}
	}
	return out, nil
}

// Delete removes the resource with key k. When resourceVersion is not empty the
// delete is a compare-and-swap on it. It returns the resource as it was and the
// store revision of the delete.
func (s *Store) Delete(ctx context.Context, sp Space, k api.Key, resourceVersion string) (*api.Resource, int64, error) {
	key := sp.Key(k)
	for attempt := 0; attempt < maxApplyAttempts; attempt++ {
		cur, err := s.getMany(ctx, []string{key})
		if err != nil {
			return nil, 0, err
		}
		if cur[0].res == nil {
			return nil, 0, fmt.Errorf("%s: %w", k, ErrNotFound)
		}
		if resourceVersion != "" && resourceVersion != cur[0].res.Meta.ResourceVersion {
			return nil, 0, fmt.Errorf("%s: resourceVersion is %s, not %s: %w", k, cur[0].res.Meta.ResourceVersion, resourceVersion, ErrConflict)
		}
		resp, err := s.commit(ctx, func() (*clientv3.TxnResponse, error) {
			return s.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", cur[0].rev)).
				Then(clientv3.OpDelete(key)).Commit()
		})
		if err != nil {
			return nil, 0, err
		}
		if resp.Succeeded {
			return cur[0].res, resp.Header.Revision, nil
		}
	}
	return nil, 0, fmt.Errorf("deleting %s: %w", k, ErrConflict)
}

func decodeKV(value []byte, modRevision int64) (*api.Resource, error) {
	r, err := api.Unmarshal(value)
	if err != nil {
		return nil, err
	}
	r.Meta.ResourceVersion = strconv.FormatInt(modRevision, 10)
	return r, nil
}

// commit runs a transaction, retrying while the cluster is electing a leader (a
// member died): such a transaction was not applied, and a new leader usually follows
// within an election timeout. When ctx ends first the error is ErrUnavailable.
func (s *Store) commit(ctx context.Context, txn func() (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
	backoff := 50 * time.Millisecond
	for {
		resp, err := txn()
		if err == nil || !leaderless(err) {
			return resp, mapErr(err)
		}
		select {
		case <-ctx.Done():
			return nil, mapErr(err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// leaderless reports errors that mean "no leader right now; nothing was applied".
func leaderless(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaderChanged) || errors.Is(err, rpctypes.ErrNoLeader) ||
		errors.Is(err, rpctypes.ErrGRPCLeaderChanged) || errors.Is(err, rpctypes.ErrGRPCNoLeader)
}

// mapErr turns etcd's errors for "this write cannot be committed now" into
// ErrUnavailable, keeping the original text.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, rpctypes.ErrTimeout),
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost),
		leaderless(err):
		return fmt.Errorf("%w (%v)", ErrUnavailable, err)
	case errors.Is(err, rpctypes.ErrLeaseNotFound), errors.Is(err, rpctypes.ErrGRPCLeaseNotFound):
		return fmt.Errorf("%w (%v)", ErrLeaseNotFound, err)
	}
	return err
}

// PutWithLease creates or replaces r, attached to an etcd lease: etcd deletes it when
// the lease ends, because its holder stopped renewing it (died, or lost its quorum)
// or revoked it. A later write of the key attaches it to that write's lease instead.
// r is validated first; the store-owned metadata is kept as Apply keeps it. When r
// carries a ResourceVersion the write is a compare-and-swap, as Update's.
func (s *Store) PutWithLease(ctx context.Context, sp Space, r *api.Resource, lease clientv3.LeaseID) (*api.Resource, error) {
	if err := api.Validate(r); err != nil {
		return nil, err
	}
	key := sp.Key(r.Key())
	for attempt := 0; attempt < maxApplyAttempts; attempt++ {
		cur, err := s.getMany(ctx, []string{key})
		if err != nil {
			return nil, err
		}
		if err := checkPrecondition(r, cur[0], false); err != nil {
			return nil, err
		}
		stored := r.Clone()
		stamp(stored, cur[0].res)
		val, err := stored.MarshalJSON()
		if err != nil {
			return nil, err
		}
		resp, err := s.commit(ctx, func() (*clientv3.TxnResponse, error) {
			return s.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", cur[0].rev)).
				Then(clientv3.OpPut(key, string(val), clientv3.WithLease(lease))).Commit()
		})
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			stored.Meta.ResourceVersion = strconv.FormatInt(resp.Header.Revision, 10)
			return stored, nil
		}
	}
	return nil, fmt.Errorf("writing %s: %w (gave up after %d attempts)", r, ErrConflict, maxApplyAttempts)
}
