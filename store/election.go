package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/navarch/navarch/internal/wait"
)

// ElectionPrefix holds the keys of leader elections: work that must run on one node
// at a time (syncing a Consul datacenter, a Kubernetes cluster).
const ElectionPrefix = Root + "elections/"

// electionTTL is how long an elected node keeps its lease after it stops renewing it
// (it died or lost its quorum): the time another node waits before taking over.
const electionTTL = 5 // seconds

// RunElected campaigns for the election name on behalf of this node (id names it in
// the election key's value) and, while elected, runs work with a context that ends
// when leadership is lost. When work returns or leadership is lost it campaigns again,
// until ctx ends. It blocks; run it in its own goroutine.
//
// An election's candidates are the keys under its name and "/": no name may be
// another's followed by "/" ("a" and "a/b" would each count the other's candidates
// as their own, and one would never be elected).
func (s *Store) RunElected(ctx context.Context, name, id string, log *slog.Logger, work func(ctx context.Context) error) error {
	log = log.With("election", name)
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := s.electedOnce(ctx, name, id, log, work)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			log.Warn("leadership ended", "err", err)
		}
		if !wait.Sleep(ctx, backoff) {
			break
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (s *Store) electedOnce(ctx context.Context, name, id string, log *slog.Logger, work func(ctx context.Context) error) error {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(electionTTL), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("starting an etcd session: %w", err)
	}
	defer sess.Close()
	e := concurrency.NewElection(sess, ElectionPrefix+name)
	if err := e.Campaign(ctx, id); err != nil {
		return fmt.Errorf("campaigning: %w", err)
	}
	log.Info("elected", "node", id)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done(): // the lease expired: someone else may be elected now
			cancel()
		case <-wctx.Done():
		}
	}()
	err = work(wctx)
	resignCtx, rc := context.WithTimeout(context.Background(), 2*time.Second)
	defer rc()
	_ = e.Resign(resignCtx)
	if err == nil && wctx.Err() != nil && ctx.Err() == nil {
		return errors.New("lost the election lease")
	}
	return err
}

// ElectionLeader returns the id of the node holding election name, "" when none does.
func (s *Store) ElectionLeader(ctx context.Context, name string) (string, error) {
	resp, err := s.cli.Get(ctx, ElectionPrefix+name+"/", clientv3FirstCreated()...)
	if err != nil {
		return "", mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

func clientv3FirstCreated() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1)}
}
