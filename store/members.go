package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is one etcd member of the cluster.
type Member struct {
	ID        uint64
	Name      string // empty until the member has started
	PeerURLs  []string
	ClientURL []string
	Learner   bool
}

// Members lists the etcd members as this member knows them. The read is serializable,
// so it answers without a quorum.
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	resp, err := s.cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return nil, mapErr(err)
	}
	return members(resp.Members), nil
}

// ID returns this member's etcd id.
func (s *Store) ID() uint64 { return uint64(s.etcd.Server.MemberID()) }

// Leader returns the etcd id of the Raft leader this member follows, 0 when it knows
// of none (it cannot reach a quorum).
func (s *Store) Leader() uint64 { return uint64(s.etcd.Server.Leader()) }

// IsLearner reports whether this member is a learner, not yet a voting member.
func (s *Store) IsLearner() bool { return s.etcd.Server.IsLearner() }

// RemoveMember removes a member from the cluster. etcd refuses while the removal
// would leave too few members it has heard from recently (a member that just joined
// or restarted counts only after a few seconds); this retries until ctx ends.
func (s *Store) RemoveMember(ctx context.Context, id uint64) (err error) {
	if id == s.ID() {
		s.leaving.Store(true) // etcd stops once it applies the removal: no error
		defer func() {
			if err != nil {
				s.leaving.Store(false)
			}
		}()
	}
	for {
		_, err = s.cli.MemberRemove(ctx, id)
		if err != nil && id == s.ID() && s.etcd.Server.Cluster().Member(types.ID(id)) == nil {
			// A member that removes itself stops as soon as it applies the removal,
			// and its answer to the request may be lost with it ("server stopped").
			return nil
		}
		if err == nil || !(errors.Is(err, rpctypes.ErrUnhealthy) || errors.Is(err, rpctypes.ErrGRPCUnhealthy) || leaderless(err)) {
			return mapErr(err)
		}
		select {
		case <-ctx.Done():
			return mapErr(err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// AdvertisePeerURL makes the cluster's record of this member's peer URL url: a
// member restarted from its data dir at another address (a replaced host, a new
// IP) tells the others where it is now, as etcd's runbook has an operator do with
// `etcdctl member update`. The update needs a quorum; it is retried until ctx ends.
// It reports whether the record changed.
func (s *Store) AdvertisePeerURL(ctx context.Context, url string) (bool, error) {
	self := s.etcd.Server.Cluster().Member(s.etcd.Server.MemberID())
	if self == nil {
		return false, errors.New("this member is not in the cluster")
	}
	if len(self.PeerURLs) == 1 && self.PeerURLs[0] == url {
		return false, nil
	}
	for {
		_, err := s.cli.MemberUpdate(ctx, uint64(self.ID), []string{url})
		if err == nil {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, mapErr(err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Remote is an etcd client of other members of a cluster, for the operations a node
// runs before its own member is up: joining, and promoting itself.
type Remote struct {
	cli *clientv3.Client
}

// DialRemote connects to the members' client URLs with the cluster's TLS credentials;
// the client's own errors go to log.
func DialRemote(endpoints []string, tlsCfg *tls.Config, log *slog.Logger) (*Remote, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		Logger:      newEtcdLogger(log, "error", nil),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	return &Remote{cli: cli}, nil
}

// Close closes the client.
func (r *Remote) Close() error { return r.cli.Close() }

// Members lists the cluster's members.
func (r *Remote) Members(ctx context.Context) ([]Member, error) {
	resp, err := r.cli.MemberList(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	return members(resp.Members), nil
}

// AddLearner adds a member with peerURL as a learner and returns its id and the
// members after the addition (the new one with an empty name).
func (r *Remote) AddLearner(ctx context.Context, peerURL string) (uint64, []Member, error) {
	resp, err := r.cli.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return 0, nil, fmt.Errorf("adding a learner at %s: %w", peerURL, mapErr(err))
	}
	return resp.Member.ID, members(resp.Members), nil
}

// ErrLearnerNotReady means the learner has not caught up with the leader yet.
var ErrLearnerNotReady = errors.New("learner not caught up yet")

// Promote makes a caught-up learner a voting member.
func (r *Remote) Promote(ctx context.Context, id uint64) error {
	_, err := r.cli.MemberPromote(ctx, id)
	if err != nil && strings.Contains(err.Error(), "not in sync with leader") {
		return ErrLearnerNotReady
	}
	return mapErr(err)
}

// RemoveMember removes a member from the cluster.
func (r *Remote) RemoveMember(ctx context.Context, id uint64) error {
	_, err := r.cli.MemberRemove(ctx, id)
	return mapErr(err)
}

func members(ms []*etcdserverpb.Member) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURL: m.ClientURLs, Learner: m.IsLearner})
	}
	return out
}
