package node

import (
	"context"
	"time"

	"github.com/navarch/navarch/internal/wait"
	"github.com/navarch/navarch/store"
)

// defragInterval is how often a node looks at how much of its etcd member's
// database file is free pages.
const defragInterval = 10 * time.Minute

// defragLoop defragments the node's etcd member when compaction has left much of its
// file free (store.DefaultDefragPolicy), so that a burst of churn does not leave the
// file near etcd's quota; members take turns.
func (n *Node) defragLoop(ctx context.Context, st *store.Store) {
	wait.Every(ctx, defragInterval, func() {
		// Bounded: without a quorum the lock cannot be taken; try again next time.
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		r, err := st.DefragmentIfWasteful(dctx, store.DefaultDefragPolicy())
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			n.log.Warn("defragmenting the etcd database", "err", err)
		case r.Done:
			n.log.Info("etcd database defragmented", "before_bytes", r.Before, "after_bytes", r.After)
		}
	})
}
