package store

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefragPolicy says when a member's database file is worth rewriting. Compaction
// (five minutes of history are kept) frees pages inside the file, which new writes
// reuse, but never gives them back: after a burst of churn the file stays at its
// high-water mark, and etcd refuses every write once the file reaches its quota
// (2 GiB), used or not.
type DefragPolicy struct {
	// MinFree and MinFreeRatio: defragment when at least MinFree bytes, and at least
	// MinFreeRatio of the file, are free pages.
	MinFree      int64
	MinFreeRatio float64
}

// DefaultDefragPolicy defragments when 64 MiB and half the file are free.
func DefaultDefragPolicy() DefragPolicy { return DefragPolicy{MinFree: 64 << 20, MinFreeRatio: 0.5} }

// DefragResult is what DefragmentIfWasteful found and did.
type DefragResult struct {
	Before, InUse, After int64 // file size before, bytes in use, file size after
	Done                 bool
}

// DefragmentIfWasteful rewrites this member's database file when p says enough of
// it is free pages. A member does not answer while it defragments, so members take
// turns: the rewrite holds a cluster-wide lock, and needs a quorum to take it.
func (s *Store) DefragmentIfWasteful(ctx context.Context, p DefragPolicy) (DefragResult, error) {
	endpoint := s.cfg.ClientURL
	st, err := s.cli.Status(ctx, endpoint)
	if err != nil {
		return DefragResult{}, mapErr(err)
	}
	r := DefragResult{Before: st.DbSize, InUse: st.DbSizeInUse, After: st.DbSize}
	free := st.DbSize - st.DbSizeInUse
	if free < p.MinFree || float64(free) < p.MinFreeRatio*float64(st.DbSize) {
		return r, nil
	}
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(electionTTL), concurrency.WithContext(ctx))
	if err != nil {
		return r, fmt.Errorf("starting an etcd session: %w", err)
	}
	defer sess.Close()
	lock := concurrency.NewMutex(sess, Root+"locks/defrag")
	if err := lock.Lock(ctx); err != nil {
		return r, fmt.Errorf("waiting for the defragmentation lock: %w", mapErr(err))
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	// The member's own server, not the in-process client's maintenance API, whose
	// Defragment has no health reporter to tell and panics.
	if err := s.etcd.Server.Defragment(); err != nil {
		return r, fmt.Errorf("defragmenting: %w", err)
	}
	if st, err = s.cli.Status(ctx, endpoint); err == nil {
		r.After = st.DbSize
	}
	r.Done = true
	return r, nil
}
