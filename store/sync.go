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
	return s.SpaceWriter(sp).sync(ctx, desired, true, true)
}

// SpaceWriter syncs one registry space for its one writer (an adapter holding its
// election), as Sync does, but remembers what the space holds after each read and
// write, so that a sync where little changed neither reads nor decodes the whole
// space again: for 11,000 resources, a full read and decode costs ten times what the
// comparison does. Its keys' revisions still guard every write (another writer's
// change to a key it writes is a conflict, and the next sync reads again); what it
// cannot see is a key another writer created, until a sync with reread.
type SpaceWriter struct {
	s       *Store
	sp      Space
	current map[string]stored // the space after the last read or write; nil: unknown
}

// SpaceWriter returns a writer of space sp that knows nothing of it yet.
func (s *Store) SpaceWriter(sp Space) *SpaceWriter { return &SpaceWriter{s: s, sp: sp} }

// Sync makes the space equal to desired, as Store.Sync, reading the space first
// when reread is set or it does not know the space (its first sync, or one after a
// failed write). Only the resources it writes are validated: the others are as
// written before, valid then.
func (w *SpaceWriter) Sync(ctx context.Context, desired []*api.Resource, reread bool) (SyncStats, error) {
	return w.sync(ctx, desired, false, reread)
}

func (w *SpaceWriter) sync(ctx context.Context, desired []*api.Resource, validateAll, reread bool) (SyncStats, error) {
	if w.current == nil || reread {
		cur, err := w.s.readSpace(ctx, w.sp)
		if err != nil {
			return SyncStats{}, err
		}
		w.current = cur
	}
	ops, st, err := planSync(w.sp, w.current, desired, validateAll)
	if err != nil {
		return st, err
	}
	for len(ops) > 0 {
		n := min(len(ops), syncBatch)
		rev, err := w.s.syncTxn(ctx, ops[:n])
		if err != nil {
			w.current = nil // what was written is unknown; read it again
			return st, err
		}
		for _, o := range ops[:n] {
			if o.del {
				delete(w.current, o.key)
			} else {
				w.current[o.key] = stored{res: o.res, rev: rev}
			}
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
	current, err := s.readSpace(ctx, sp)
	if err != nil {
		return SyncStats{}, nil, err
	}
	ops, st, err := planSync(sp, current, desired, true)
	changes := make([]SyncChange, len(ops))
	for i, o := range ops {
		changes[i] = o.change
	}
	return st, changes, err
}

// readSpace reads and decodes every resource of sp, by key.
func (s *Store) readSpace(ctx context.Context, sp Space) (map[string]stored, error) {
	resp, err := s.cli.Get(ctx, sp.Prefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, mapErr(err)
	}
	current := make(map[string]stored, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if _, _, err := ParseKey(string(kv.Key)); err != nil {
			continue // the source's status, not a resource
		}
		r, err := decodeKV(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, err
		}
		current[string(kv.Key)] = stored{res: r, rev: kv.ModRevision}
	}
	return current, nil
}

// planSync compares desired with what sp holds (current): the writes that would
// make them equal, sorted by key, and their counts. It validates every desired
// resource (validateAll), or those it would write; any invalid one is an error.
func planSync(sp Space, current map[string]stored, desired []*api.Resource, validateAll bool) ([]syncOp, SyncStats, error) {
	var errs []error
	if validateAll {
		for _, r := range desired {
			if err := api.Validate(r); err != nil {
				errs = append(errs, err)
			}
		}
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
		if !validateAll {
			if err := api.Validate(r); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		w := r.Clone()
		stamp(w, cur.res)
		val, err := w.MarshalJSON()
		if err != nil {
			return nil, st, err
		}
		op := syncOp{key: key, rev: cur.rev, put: string(val), res: w, change: SyncChange{Action: Created, Key: r.Key()}}
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
	if err := errors.Join(errs...); err != nil {
		return nil, SyncStats{}, err
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].key < ops[j].key })
	return ops, st, nil
}

type syncOp struct {
	key    string
	rev    int64 // mod revision read; 0 when the key did not exist
	put    string
	res    *api.Resource // what put holds
	del    bool
	change SyncChange
}

// syncTxn writes ops if none of their keys changed since they were read, and
// returns the revision the writes have.
func (s *Store) syncTxn(ctx context.Context, ops []syncOp) (int64, error) {
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
		return 0, err
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("syncing: %w (another writer changed the source's keys)", ErrConflict)
	}
	return resp.Header.Revision, nil
}
