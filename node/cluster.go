package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/navarch/navarch/adapters/vm"
	"github.com/navarch/navarch/internal/ports"
	"github.com/navarch/navarch/internal/wait"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
	"github.com/navarch/navarch/xds"
)

// resolveEtcdAddrs fills in the etcd listen addresses: free loopback ports for a dev
// node, the advertise host with etcd's usual ports otherwise.
func (n *Node) resolveEtcdAddrs() error {
	for _, a := range []struct {
		addr *string
		port string
	}{{&n.cfg.EtcdClientAddr, "2379"}, {&n.cfg.EtcdPeerAddr, "2380"}} {
		if *a.addr != "" {
			continue
		}
		if n.cfg.Dev {
			free, err := ports.Loopback()
			if err != nil {
				return err
			}
			*a.addr = free
			continue
		}
		*a.addr = net.JoinHostPort(n.advertiseHost(), a.port)
	}
	return nil
}

// advertiseHost is the host other nodes reach this one at.
func (n *Node) advertiseHost() string {
	for _, a := range []string{n.cfg.GossipAdvertise, n.cfg.GossipAddr} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" && !net.ParseIP(h).IsUnspecified() {
			return h
		}
	}
	return "127.0.0.1"
}

// advertised turns a bound address into one others can dial (0.0.0.0 -> advertise host).
func (n *Node) advertised(addr string) string {
	h, p, err := net.SplitHostPort(addr)
	if err != nil || (h != "" && !net.ParseIP(h).IsUnspecified()) {
		return addr
	}
	return net.JoinHostPort(n.advertiseHost(), p)
}

func (n *Node) peerURL() string   { return "https://" + n.advertised(n.cfg.EtcdPeerAddr) }
func (n *Node) clientURL() string { return "https://" + n.advertised(n.cfg.EtcdClientAddr) }

// storeConfig is the etcd configuration of this node; the caller sets how the member
// starts (InitialCluster, Join).
func (n *Node) storeConfig() store.Config {
	c := n.cfg.Store
	c.Name = n.cfg.Name
	c.DataDir = filepath.Join(n.cfg.DataDir, "etcd")
	c.ClientURL, c.PeerURL = n.clientURL(), n.peerURL()
	c.ListenClientAddr, c.ListenPeerAddr = n.cfg.EtcdClientAddr, n.cfg.EtcdPeerAddr
	c.ClusterToken = n.secrets.token
	c.TLS = n.tlsFiles
	if n.cfg.Dev {
		// One member on one host: no disk to protect, no network to wait for.
		c.UnsafeNoFsync = true
		c.HeartbeatMs, c.ElectionMs = 10, 100
	}
	return c
}

// start brings the node's etcd member up (forming, joining or rejoining a cluster, as
// the data dir and configuration say) and creates the parts that run on it.
func (n *Node) start(ctx context.Context) (*parts, error) {
	if n.gossip != nil {
		go n.gossip.joinLoop(ctx, n.cfg.Join)
	}
	st, learner, err := n.openStore(ctx)
	if err != nil {
		return nil, err
	}
	if learner != nil {
		n.setPhase("catching up as an etcd learner")
		err := n.promote(ctx, learner)
		learner.remote.Close()
		if err != nil {
			st.Close()
			return nil, err
		}
	}
	if n.gossip != nil {
		n.gossip.setMeta(func(m *nodeMeta) { m.State = stateRunning })
		go n.rejoinGossip(ctx, st)
		go n.advertisePeerURL(ctx, st)
	}
	p := &parts{store: st}
	p.view = registry.NewView(st, n.cfg.Domain, n.log)
	xcfg := n.cfg.XDS
	xcfg.TrustDomain = n.cfg.CA.TrustDomain // servers' certificates are checked against the mesh's
	p.oidc = xds.NewIssuerDiscovery(p.view, &http.Client{}, n.log)
	p.xds = xds.NewServer(xcfg, p.oidc, n.metrics, n.log)
	p.vm = vm.NewRegistrar(st, vm.Config{Node: n.cfg.Name, Grace: n.cfg.AutoRegistrationGrace, OnLeaseAtRisk: p.xds.EndRegistered, Metrics: vm.NewMetrics(n.reg),
		Groups: store.Layered{St: st, Spaces: n.cfg.configSpaces()}}, n.log)
	p.xds.SetRegistrar(vmRegistrar{p.vm})
	p.grpc = grpc.NewServer(xdsServerOptions()...)
	discovery.RegisterAggregatedDiscoveryServiceServer(p.grpc, p.xds)
	if err := n.secureParts(p); err != nil {
		st.Close()
		return nil, err
	}
	n.parts.Store(p)
	n.setPhase("loading the store")
	return p, nil
}

// rejoinGossip records this node's gossip address in etcd and, if gossip has no other
// node yet (a restart without --join, or after the --join node died), joins the
// nodes etcd knows of.
func (n *Node) rejoinGossip(ctx context.Context, st *store.Store) {
	self := n.cfg.GossipAdvertise
	if self == "" {
		self = n.cfg.GossipAddr
	}
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := st.PutNode(wctx, n.cfg.Name, self)
		cancel()
		if err == nil {
			break
		}
		if !wait.Sleep(ctx, time.Second) {
			return
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	known, err := st.Nodes(rctx)
	cancel()
	if err != nil {
		n.log.Warn("reading the nodes etcd knows", "err", err)
		return
	}
	var addrs []string
	for name, addr := range known {
		if name != n.cfg.Name {
			addrs = append(addrs, addr)
		}
	}
	n.gossip.joinLoop(ctx, addrs)
}

// advertisePeerURL brings the cluster's record of this node's etcd peer address up
// to date: a node restarted from its data dir at another address would otherwise
// keep being sent to at the old one.
func (n *Node) advertisePeerURL(ctx context.Context, st *store.Store) {
	changed, err := st.AdvertisePeerURL(ctx, n.peerURL())
	switch {
	case err != nil && ctx.Err() == nil:
		n.log.Warn("updating this member's etcd peer address", "peer_url", n.peerURL(), "err", err)
	case changed:
		n.log.Info("this member's etcd peer address updated", "peer_url", n.peerURL())
	}
}

// learner is an etcd member this node added as a learner, to promote once caught up.
type learner struct {
	id     uint64
	remote *store.Remote
}

// openStore starts the etcd member: as itself when the data dir holds one, as one of
// the founders of a new cluster, or as a learner joining a running one.
func (n *Node) openStore(ctx context.Context) (*store.Store, *learner, error) {
	cfg := n.storeConfig()
	if memberExists(cfg.DataDir) && n.cfg.ForceNewCluster {
		return n.forceNewCluster(ctx, cfg)
	}
	if !memberExists(cfg.DataDir) && n.cfg.RestoreFrom != "" {
		if err := n.restore(ctx, cfg); err != nil {
			return nil, nil, err
		}
	} else if n.cfg.RestoreFrom != "" {
		n.log.Info("--restore-from ignored: the data dir holds a member", "data_dir", cfg.DataDir)
	}
	if memberExists(cfg.DataDir) || n.gossip == nil {
		n.setPhase("starting etcd")
		st, err := store.Open(cfg, n.log)
		return st, nil, err
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var lastErr string
	for {
		st, l, done, err := n.tryFormOrJoin(ctx, cfg)
		if done {
			return st, l, err
		}
		if err != nil {
			n.setPhase("joining the cluster failed (retrying): " + err.Error())
			if err.Error() != lastErr { // the same reason every half second says nothing new
				n.log.Warn("joining the cluster failed; retrying", "err", err)
				lastErr = err.Error()
			}
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-n.gossip.Changes():
		case <-tick.C:
		}
	}
}

// forceNewCluster starts the member of the data dir as the only member of a new
// cluster (--force-new-cluster). Two things guard it: it is refused while gossip
// sees another running node (aloneFor), and it takes effect once per data dir: a
// marker file records it, and a later start with the flag (left in a unit file, say)
// starts the member as it is.
func (n *Node) forceNewCluster(ctx context.Context, cfg store.Config) (*store.Store, *learner, error) {
	marker := filepath.Join(n.cfg.DataDir, "forced-new-cluster")
	if _, err := os.Stat(marker); err == nil {
		n.log.Warn("--force-new-cluster ignored: this data dir started a new cluster already; remove the marker to force again", "marker", marker)
		n.setPhase("starting etcd")
		st, err := store.Open(cfg, n.log)
		return st, nil, err
	}
	if err := n.aloneFor(ctx, "--force-new-cluster"); err != nil {
		return nil, nil, err
	}
	members, err := store.RecordedMembers(cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("--force-new-cluster: %w", err)
	}
	if err := n.noRecordedMemberAnswers(ctx, members, "--force-new-cluster"); err != nil {
		return nil, nil, err
	}
	cfg.ForceNewCluster = true
	n.setPhase("forcing a new cluster")
	n.log.Warn("starting a new cluster of this member alone, with what its data dir holds (--force-new-cluster); other nodes join it with empty data dirs")
	st, err := store.Open(cfg, n.log)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+" navarch server --force-new-cluster\n"), 0o600); err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("recording the forced new cluster: %w", err)
	}
	return st, nil, nil
}

// restore creates the member's data dir from the snapshot --restore-from names: a
// new cluster of one, which starts with everything the snapshot held.
func (n *Node) restore(ctx context.Context, cfg store.Config) error {
	if err := n.aloneFor(ctx, "--restore-from"); err != nil {
		return err
	}
	info, err := store.InspectSnapshot(n.cfg.RestoreFrom)
	if err != nil {
		return err
	}
	members, err := store.SnapshotMembers(n.cfg.RestoreFrom)
	if err != nil {
		return fmt.Errorf("--restore-from: %w", err)
	}
	if err := n.noRecordedMemberAnswers(ctx, members, "--restore-from"); err != nil {
		return err
	}
	n.setPhase("restoring " + n.cfg.RestoreFrom)
	if err := store.RestoreSnapshot(n.cfg.RestoreFrom, cfg, n.log); err != nil {
		return err
	}
	n.log.Warn("started a new cluster of this node from a snapshot; other nodes join it with empty data dirs",
		"snapshot", n.cfg.RestoreFrom, "revision", info.Revision, "keys", info.Keys)
	return nil
}

// aloneFor refuses what flag asks (a new cluster from this node's data) while
// gossip sees another node running: a second cluster beside a live one would split
// the mesh's configuration in two. It listens for aloneWait first (live nodes that
// knew this one gossip to it even when --join names no live node), and stops
// listening as soon as it hears of a running node.
func (n *Node) aloneFor(ctx context.Context, flag string) error {
	if n.gossip == nil {
		return nil
	}
	n.setPhase(flag + ": checking that no other node runs")
	deadline := time.NewTimer(aloneWait)
	defer deadline.Stop()
	for {
		for _, p := range n.gossip.Peers() {
			if p.Name != n.cfg.Name && p.Alive && p.Meta.State == stateRunning {
				return fmt.Errorf("%s refused: node %s (%s) is running; a new cluster beside it would split the mesh's configuration", flag, p.Name, p.Addr)
			}
		}
		select {
		case <-n.gossip.Changes():
		case <-deadline.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// noRecordedMemberAnswers refuses what flag asks while the etcd of another of the
// members (those the data dir, or the snapshot, records) answers at its peer URL
// over the cluster's TLS. It backs aloneFor, which hears of running nodes by gossip
// within aloneWait only: a slow host, gossip that has not yet told the others this
// node is back, or a --join that names none of them must not let a second cluster
// start beside a live one.
func (n *Node) noRecordedMemberAnswers(ctx context.Context, members []store.Member, flag string) error {
	tlsCfg, err := clientTLS(n.tlsFiles)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	n.setPhase(flag + ": checking that no other member's etcd answers")
	answered := make(chan string, len(members))
	var wg sync.WaitGroup
	for _, m := range members {
		if m.Name == n.cfg.Name {
			continue
		}
		for _, u := range m.PeerURLs {
			wg.Go(func() {
				if store.PeerAnswers(ctx, u, tlsCfg) == nil {
					answered <- fmt.Sprintf("%s (%s)", cmp.Or(m.Name, strconv.FormatUint(m.ID, 16)), u)
				}
			})
		}
	}
	wg.Wait()
	close(answered)
	if who, ok := <-answered; ok {
		return fmt.Errorf("%s refused: node %s answers as a member of this cluster; a new cluster beside it would split the mesh's configuration", flag, who)
	}
	return nil
}

// aloneWait is how long aloneFor listens for running nodes: a few of memberlist's
// gossip and probe rounds.
const aloneWait = 5 * time.Second

// tryFormOrJoin looks at what gossip knows and, if it can, starts the member. done is
// false when it has to wait for more nodes, or joining failed (err) and is retried.
func (n *Node) tryFormOrJoin(ctx context.Context, cfg store.Config) (st *store.Store, l *learner, done bool, err error) {
	var running, forming []peer
	for _, p := range n.gossip.Peers() {
		switch {
		case !p.Alive:
		case p.Meta.State == stateRunning:
			running = append(running, p)
		case p.Meta.State == stateForming:
			forming = append(forming, p)
		}
	}
	if len(running) > 0 {
		st, l, err = n.joinRunning(ctx, cfg, running)
		return st, l, err == nil, err
	}
	if n.cfg.BootstrapExpect == 0 || len(forming) < n.cfg.BootstrapExpect {
		n.setPhase(fmt.Sprintf("waiting for nodes: %d of %d seen (forming a cluster needs --bootstrap-expect nodes; joining one needs a running member)",
			len(forming), n.cfg.BootstrapExpect))
		return nil, nil, false, nil
	}
	var founders []string
	for _, p := range forming {
		founders = append(founders, p.Name+"="+p.Meta.EtcdPeer)
	}
	sort.Strings(founders)
	cfg.InitialCluster = strings.Join(founders, ",")
	n.setPhase("forming a cluster of " + cfg.InitialCluster)
	n.log.Info("forming a new cluster", "members", cfg.InitialCluster)
	st, err = store.Open(cfg, n.log)
	return st, nil, true, err
}

// joinRunning adds this node, which has no etcd data, to the running cluster: as a
// learner, to be promoted once caught up. If the running members already list its
// peer URL, as a member that never started, it starts as that member (a founder
// slower than the others, or a learner an earlier attempt added); as a member that
// has run, it lost its data, and that member is replaced.
func (n *Node) joinRunning(ctx context.Context, cfg store.Config, running []peer) (*store.Store, *learner, error) {
	var endpoints []string
	names := map[string]string{cfg.PeerURL: cfg.Name}
	for _, p := range n.gossip.Peers() {
		names[p.Meta.EtcdPeer] = p.Name
	}
	for _, p := range running {
		endpoints = append(endpoints, p.Meta.EtcdClient)
	}
	tlsCfg, err := clientTLS(cfg.TLS)
	if err != nil {
		return nil, nil, err
	}
	remote, err := store.DialRemote(endpoints, tlsCfg, n.log)
	if err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	members, err := remote.Members(rctx)
	if err != nil {
		remote.Close()
		return nil, nil, err
	}
	var l *learner
	switch m := memberAt(members, cfg.PeerURL); {
	case m != nil && m.Name == "" && m.Learner:
		// Added as a learner by an earlier attempt that did not get to start it.
		l = &learner{id: m.ID, remote: remote}
		cfg.Join = true
	case m != nil && m.Name == "":
		// A founder slower to start than the others: its member waits for it.
		remote.Close()
	default:
		if m != nil {
			// This node's member has run before, but the data dir that held it is
			// empty (a replaced disk, a wiped directory): etcd does not take a member
			// back without its log. Remove it and join afresh, as etcd's runbook says.
			n.log.Warn("this node's etcd member lost its data; replacing it", "member", fmt.Sprintf("%x", m.ID), "data_dir", cfg.DataDir)
			if err = remote.RemoveMember(rctx, m.ID); err != nil {
				remote.Close()
				return nil, nil, fmt.Errorf("removing this node's old member %x: %w", m.ID, err)
			}
		} else if old := memberNamed(members, cfg.Name); old != nil {
			remote.Close()
			return nil, nil, fmt.Errorf("the cluster has a member named %s already, at %s: if that was this node at an earlier address, take it out with `navarch members remove %s`; otherwise give this node another --name",
				cfg.Name, strings.Join(old.PeerURLs, ","), cfg.Name)
		}
		n.setPhase("joining the cluster through " + strings.Join(endpoints, ","))
		var id uint64
		if id, members, err = remote.AddLearner(rctx, cfg.PeerURL); err != nil {
			remote.Close()
			return nil, nil, err
		}
		l = &learner{id: id, remote: remote}
		cfg.Join = true
	}
	var initial []string
	for _, m := range members {
		for _, u := range m.PeerURLs {
			name := m.Name
			if name == "" {
				name = names[u]
			}
			if name == "" {
				return nil, nil, fmt.Errorf("member %x at %s has no name yet and gossip does not know it", m.ID, u)
			}
			initial = append(initial, name+"="+u)
		}
	}
	sort.Strings(initial)
	cfg.InitialCluster = strings.Join(initial, ",")
	n.log.Info("joining a running cluster", "members", cfg.InitialCluster, "learner", l != nil)
	st, err := store.Open(cfg, n.log)
	if err != nil && l != nil {
		l.remote.Close()
	}
	return st, l, err
}

// memberAt returns the member with peer URL peerURL, or nil.
func memberAt(members []store.Member, peerURL string) *store.Member {
	for i, m := range members {
		if slices.Contains(m.PeerURLs, peerURL) {
			return &members[i]
		}
	}
	return nil
}

// memberNamed returns the started member called name, or nil.
func memberNamed(members []store.Member, name string) *store.Member {
	for i, m := range members {
		if m.Name == name {
			return &members[i]
		}
	}
	return nil
}

// promote makes this node's learner member a voter once it has caught up.
func (n *Node) promote(ctx context.Context, l *learner) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := l.remote.Promote(pctx, l.id)
		cancel()
		if err == nil {
			n.log.Info("promoted from learner to voting member")
			return nil
		}
		if !errors.Is(err, store.ErrLearnerNotReady) {
			n.log.Debug("promoting", "err", err)
		}
		if !wait.Sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// memberExists reports whether dir holds an etcd member (a restart, not a first start).
func memberExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "member", "wal"))
	return err == nil
}

// advertiseLoad keeps this node's gossip metadata current: connected proxies and
// store revision, which `navarch members` shows and load spreading uses.
func (n *Node) advertiseLoad(ctx context.Context, p *parts) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		proxies, rev := p.xds.Connections(), p.view.Revision()
		n.gossip.setMeta(func(m *nodeMeta) { m.Proxies, m.Revision = proxies, rev })
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// leaveCluster removes this node's etcd member and leaves the gossip.
func (n *Node) leaveCluster(ctx context.Context, p *parts) {
	if err := p.store.RemoveMember(ctx, p.store.ID()); err != nil {
		n.log.Warn("removing this node's etcd member", "err", err)
	} else {
		n.log.Info("left the cluster")
	}
	if n.gossip != nil {
		n.gossip.leave()
	}
}
