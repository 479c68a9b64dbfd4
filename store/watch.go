package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/navarch/navarch/api"
)

// Entry is one stored resource and the space it lives in, or (Status set, Resource
// nil) the sync status of a registry source.
type Entry struct {
	Space    Space
	Resource *api.Resource
	Status   *SourceStatus
}

// Event is one change of a resource. Resource is the new value, or the last value
// before a delete (Deleted is then true). For a change of a registry source's sync
// status, Status is set instead of Key and Resource.
type Event struct {
	Revision int64
	Space    Space
	Key      api.Key
	Resource *api.Resource
	Status   *SourceStatus
	Deleted  bool
	Created  bool // the key did not exist before this change
}

// Batch is the events of one or more consecutive revisions, in revision order.
// Revision is the store revision the receiver is at after applying the batch.
// Err is set, and Events empty, when the watch ended; the receiver must Snapshot
// again if it wants to go on.
type Batch struct {
	Revision int64
	Events   []Event
	Err      error
}

// Snapshot reads every resource of every space at one revision.
func (s *Store) Snapshot(ctx context.Context) ([]Entry, int64, error) {
	resp, err := s.cli.Get(ctx, ConfigPrefix, clientv3.WithRange(clientv3.GetPrefixRangeEnd(RegistryPrefix)))
	if err != nil {
		return nil, 0, mapErr(err)
	}
	out := make([]Entry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if src, ok := parseStatusKey(string(kv.Key)); ok {
			if st, err := decodeStatus(src, kv.Value); err == nil {
				out = append(out, Entry{Space: RegistrySpace(src), Status: st})
			}
			continue
		}
		sp, _, err := ParseKey(string(kv.Key))
		if err != nil {
			continue // a key of ours in between, e.g. /navarch/nodes/
		}
		r, err := decodeKV(kv.Value, kv.ModRevision)
		if err != nil {
			s.log.Error("skipping undecodable resource", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, Entry{Space: sp, Resource: r})
	}
	return out, resp.Header.Revision, nil
}

// Watch streams every change to resources after revision rev, in order, until ctx
// ends or the watch fails (compaction, member shutdown); then it sends a Batch with
// Err set and closes the channel. A batch also comes with no events when etcd reports
// progress, so the receiver's revision keeps up with the store's.
func (s *Store) Watch(ctx context.Context, rev int64) <-chan Batch {
	return s.watch(ctx, rev, ConfigPrefix, clientv3.WithRange(clientv3.GetPrefixRangeEnd(RegistryPrefix)))
}

// WatchKindFrom is Watch of the resources of kind k in space sp and namespace ns
// (every namespace when empty). It fails at once, with ErrCompacted, when etcd no
// longer keeps revision rev, or with ErrFutureRevision when the store has not
// reached it yet.
func (s *Store) WatchKindFrom(ctx context.Context, sp Space, k *api.Kind, ns string, rev int64) (<-chan Batch, error) {
	prefix := sp.KindPrefix(k, ns)
	if _, err := s.cli.Get(ctx, prefix, clientv3.WithRev(rev), clientv3.WithCountOnly()); err != nil {
		switch {
		case errors.Is(err, rpctypes.ErrCompacted):
			return nil, fmt.Errorf("revision %d: %w", rev, ErrCompacted)
		case errors.Is(err, rpctypes.ErrFutureRev):
			return nil, fmt.Errorf("revision %d: %w", rev, ErrFutureRevision)
		}
		return nil, mapErr(err)
	}
	return s.watch(ctx, rev, prefix, clientv3.WithPrefix()), nil
}

// watch streams the changes to key (with opts, a range) after revision rev; see Watch.
func (s *Store) watch(ctx context.Context, rev int64, key string, opts ...clientv3.OpOption) <-chan Batch {
	out := make(chan Batch, 16)
	go func() {
		defer close(out)
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		wc := s.cli.Watch(wctx, key, append(opts, clientv3.WithRev(rev+1), clientv3.WithPrevKV(), clientv3.WithProgressNotify())...)
		for resp := range wc {
			if err := resp.Err(); err != nil {
				send(ctx, out, Batch{Err: fmt.Errorf("watching from revision %d: %w", rev, err)})
				return
			}
			b := Batch{Revision: resp.Header.Revision, Events: s.events(resp.Events)}
			if len(resp.Events) > 0 {
				b.Revision = resp.Events[len(resp.Events)-1].Kv.ModRevision
			}
			if !send(ctx, out, b) {
				return
			}
		}
		send(ctx, out, Batch{Err: fmt.Errorf("watch closed: %w", ctx.Err())})
	}()
	return out
}

func send(ctx context.Context, out chan<- Batch, b Batch) bool {
	select {
	case out <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Store) events(evs []*clientv3.Event) []Event {
	out := make([]Event, 0, len(evs))
	for _, ev := range evs {
		if src, ok := parseStatusKey(string(ev.Kv.Key)); ok {
			e := Event{Revision: ev.Kv.ModRevision, Space: RegistrySpace(src), Deleted: ev.Type == mvccpb.DELETE}
			if st, err := decodeStatus(src, ev.Kv.Value); err == nil || e.Deleted {
				e.Status = st
				if e.Status == nil {
					e.Status = &SourceStatus{Source: src}
				}
				out = append(out, e)
			}
			continue
		}
		sp, key, err := ParseKey(string(ev.Kv.Key))
		if err != nil {
			continue
		}
		e := Event{Revision: ev.Kv.ModRevision, Space: sp, Key: key, Created: ev.IsCreate()}
		kv := ev.Kv
		if ev.Type == mvccpb.DELETE {
			e.Deleted = true
			kv = ev.PrevKv
		}
		if kv != nil {
			r, err := decodeKV(kv.Value, kv.ModRevision)
			if err != nil {
				s.log.Error("skipping undecodable resource", "key", string(ev.Kv.Key), "err", err)
				continue
			}
			e.Resource = r
		}
		out = append(out, e)
	}
	return out
}

// Revision returns the store's current revision, read linearizably (through the Raft
// leader): a node that cannot reach a quorum fails here.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, "/navarch/revision-probe", clientv3.WithCountOnly())
	if err != nil {
		return 0, mapErr(err)
	}
	return resp.Header.Revision, nil
}

// FormatRevision formats a revision as a ResourceVersion.
func FormatRevision(rev int64) string { return strconv.FormatInt(rev, 10) }

// WatchKeys calls changed whenever one of the resources k of the spaces sps is
// written or deleted after it was called, until ctx ends; it returns once the
// store's revision is known and watches on goroutines of its own. A watch that ends
// early (a compaction, a lost leader) is opened again after a pause, with a call to
// changed, as a change may have gone unseen.
func (s *Store) WatchKeys(ctx context.Context, k api.Key, changed func(), sps ...Space) {
	keys := make([]string, len(sps))
	for i, sp := range sps {
		keys[i] = sp.Key(k)
	}
	s.watchKeys(ctx, keys, false, func(api.Key) { changed() })
}

// WatchKind is WatchKeys for every resource of kind k (in every namespace) of the
// spaces sps: changed is given the key of the resource written or deleted, or a
// zero Key after a watch that ended early (any of them may have changed).
func (s *Store) WatchKind(ctx context.Context, k *api.Kind, changed func(api.Key), sps ...Space) {
	prefixes := make([]string, len(sps))
	for i, sp := range sps {
		prefixes[i] = sp.KindPrefix(k, "")
	}
	s.watchKeys(ctx, prefixes, true, changed)
}

// watchKeys watches each of keys (or, with prefix, the keys under each) from the
// store's current revision, calling changed as WatchKind describes.
func (s *Store) watchKeys(ctx context.Context, keys []string, prefix bool, changed func(api.Key)) {
	from, err := s.Revision(ctx)
	if err != nil {
		from = 0 // from whatever revision the watch starts at
	}
	for _, key := range keys {
		go func() {
			rev := from
			for {
				wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
				opts := []clientv3.OpOption{}
				if rev > 0 {
					opts = append(opts, clientv3.WithRev(rev+1))
				}
				if prefix {
					opts = append(opts, clientv3.WithPrefix())
				}
				for resp := range s.cli.Watch(wctx, key, opts...) {
					if resp.Err() != nil {
						break
					}
					for _, ev := range resp.Events {
						if _, k, err := ParseKey(string(ev.Kv.Key)); err == nil {
							changed(k)
						}
					}
				}
				cancel()
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				rev = 0
				changed(api.Key{})
			}
		}()
	}
}
