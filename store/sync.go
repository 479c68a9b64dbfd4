package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/navarch/navarch/api"
)

// SyncStats says what a Sync wrote.
type SyncStats struct {
	Created, Updated, Deleted, Unchanged int
	// Txns is how many transactions the writes took.
	Txns int
}

// Changed reports whether the sync wrote anything.
func (s SyncStats) Changed() bool { return s.Created+s.Updated+s.Deleted > 0 }

// syncBatch bounds the writes of one transaction of a Sync, well under MaxTxnOps so
// that one transaction stays small for Raft and for watchers.
const syncBatch = 500

// Sync makes the resources of space sp equal to desired: it creates and updates what
// differs and deletes what desired lacks, leaving equal resources untouched, in
// transactions of at most syncBatch writes. It is how an adapter mirrors its source:
// only what changed reaches etcd, so unchanged inventory costs nothing downstream.
// Every resource is validated first; if any is invalid nothing is written.
func (s *Store) Sync(ctx context.Context, sp Space, desired []*api.Resource) (SyncStats, error) {
	ops, st, err := s.planSync(ctx, sp, desired)
	if err != nil {
		return st, err
	}
	for len(ops) > 0 {
		n := min(len(ops), syncBatch)
		if err := s.syncTxn(ctx, ops[:n]); err != nil {
			return st, err
		}
		st.Txns++
		ops = ops[n:]
	}
	return st, nil
}

// SyncChange is a write a Sync would make.
type SyncChange struct {
	Action Action // Created, Configured or Deleted
	Key    api.Key
}

// SyncDryRun says what Sync would write, writing nothing: its counts and each
// change, in key order.
func (s *Store) SyncDryRun(ctx context.Context, sp Space, desired []*api.Resource) (SyncStats, []SyncChange, error) {
	ops, st, err := s.planSync(ctx, sp, desired)
	changes := make([]SyncChange, len(ops))
	for i, o := range ops {
		changes[i] = o.change
	}
	return st, changes, err
}

// planSync validates desired and compares it with what sp holds: the writes that
// would make them equal, sorted by key, and their counts.
func (s *Store) planSync(ctx context.Context, sp Space, desired []*api.Resource) ([]syncOp, SyncStats, error) {
	var errs []error
	for _, r := range desired {
		if err := api.Validate(r); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, SyncStats{}, err
	}
	resp, err := s.cli.Get(ctx, sp.Prefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, SyncStats{}, mapErr(err)
	}
	current := map[string]stored{}
	for _, kv := range resp.Kvs {
		if _, _, err := ParseKey(string(kv.Key)); err != nil {
			continue // the source's status, not a resource
		}
		r, err := decodeKV(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, SyncStats{}, err
		}
		current[string(kv.Key)] = stored{res: r, rev: kv.ModRevision}
	}
	var st SyncStats
	var ops []syncOp
	seen := map[string]bool{}
	for _, r := range dedupe(desired) {
		key := sp.Key(r.Key())
		seen[key] = true
		cur, exists := current[key]
		if exists && api.SpecEqual(cur.res, r) {
			st.Unchanged++
			continue
		}
		w := r.Clone()
		stamp(w, cur.res)
		val, err := w.MarshalJSON()
		if err != nil {
			return nil, st, err
		}
		op := syncOp{key: key, rev: cur.rev, put: string(val), change: SyncChange{Action: Created, Key: r.Key()}}
		if exists {
			op.change.Action = Configured
			st.Updated++
		} else {
			st.Created++
		}
		ops = append(ops, op)
	}
	for key, cur := range current {
		if !seen[key] {
			ops = append(ops, syncOp{key: key, rev: cur.rev, del: true, change: SyncChange{Action: Deleted, Key: cur.res.Key()}})
			st.Deleted++
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].key < ops[j].key })
	return ops, st, nil
}

type syncOp struct {
	key    string
	rev    int64 // mod revision read; 0 when the key did not exist
	put    string
	del    bool
	change SyncChange
}

// syncTxn writes ops if none of their keys changed since they were read.
func (s *Store) syncTxn(ctx context.Context, ops []syncOp) error {
	cmps := make([]clientv3.Cmp, len(ops))
	writes := make([]clientv3.Op, len(ops))
	for i, o := range ops {
		cmps[i] = clientv3.Compare(clientv3.ModRevision(o.key), "=", o.rev)
		if o.del {
			writes[i] = clientv3.OpDelete(o.key)
		} else {
			writes[i] = clientv3.OpPut(o.key, o.put)
		}
	}
	resp, err := s.commit(ctx, func() (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).If(cmps...).Then(writes...).Commit()
	})
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("syncing: %w (another writer changed the source's keys)", ErrConflict)
	}
	return nil
}
