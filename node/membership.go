package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/navarch/navarch/internal/wait"
)

// Gossip states a node advertises about its etcd member.
const (
	stateForming = "forming" // waiting for --bootstrap-expect nodes
	stateJoining = "joining" // adding itself to a running cluster
	stateRunning = "running" // its etcd member is up
	stateLeft    = "left"    // it left the cluster on purpose
)

// nodeMeta is what a node tells the others about itself by gossip. memberlist limits
// it to 512 bytes, hence the short keys.
type nodeMeta struct {
	XDS        string `json:"x,omitempty"`
	XDSTLS     string `json:"t,omitempty"`
	HTTP       string `json:"h,omitempty"`
	EtcdPeer   string `json:"p,omitempty"`
	EtcdClient string `json:"c,omitempty"`
	DNS        string `json:"d,omitempty"`
	State      string `json:"s,omitempty"`
	Proxies    int    `json:"n,omitempty"`
	Revision   int64  `json:"r,omitempty"`
	Version    string `json:"v,omitempty"` // the build (version.String)
	CertExpiry int64  `json:"e,omitempty"` // Unix seconds: when the node's cluster certificate ends
	// BackupInterval is the node's --backup-interval in seconds (0: no scheduled
	// backups), LastBackup when it saved its newest (Unix seconds).
	BackupInterval int64 `json:"bi,omitempty"`
	LastBackup     int64 `json:"b,omitempty"`
}

// peer is another node as gossip knows it.
type peer struct {
	Name    string
	Addr    string
	Alive   bool
	Left    bool // left gracefully, as opposed to failed
	Meta    nodeMeta
	Changed time.Time
}

// membership is this node's gossip: memberlist, encrypted with the cluster's gossip
// key, and the table of every node it has heard of.
type membership struct {
	log  *slog.Logger
	ml   *memberlist.Memberlist
	self string

	mu      sync.Mutex
	meta    nodeMeta
	peers   map[string]*peer
	changed chan struct{} // signalled on every change of the table
	// moved holds the new addresses of nodes whose names arrived from another
	// address while their old one was alive (see NotifyConflict).
	moved map[string]string
}

// newMembership starts gossip, encrypted with keys[0] and decrypting with any of keys.
func newMembership(name, bind, advertise string, keys [][]byte, meta nodeMeta, logger *slog.Logger) (*membership, error) {
	m := &membership{log: logger.With("component", "gossip"), self: name, meta: meta, peers: map[string]*peer{},
		changed: make(chan struct{}, 1), moved: map[string]string{}}
	host, port, err := splitAddr(bind)
	if err != nil {
		return nil, fmt.Errorf("gossip address: %w", err)
	}
	cfg := memberlist.DefaultLANConfig()
	cfg.Name = name
	cfg.BindAddr, cfg.BindPort = host, port
	cfg.AdvertiseAddr, cfg.AdvertisePort = host, port
	if advertise != "" {
		if cfg.AdvertiseAddr, cfg.AdvertisePort, err = splitAddr(advertise); err != nil {
			return nil, fmt.Errorf("gossip advertise address: %w", err)
		}
	}
	if cfg.Keyring, err = memberlist.NewKeyring(keys, keys[0]); err != nil {
		return nil, fmt.Errorf("gossip keys: %w", err)
	}
	cfg.GossipVerifyIncoming, cfg.GossipVerifyOutgoing = true, true
	cfg.Delegate = m
	cfg.Events = m
	cfg.Conflict = m
	// A node restarted at another address (a replaced host) takes its name back as
	// soon as the others have declared its old address dead (its refutation of that
	// death comes at once); memberlist's default refuses the new address for good.
	cfg.DeadNodeReclaimTime = time.Nanosecond
	// Failures should be noticed within seconds on a LAN; memberlist's LAN defaults
	// (1 s probes, suspicion multiplier 4) are kept.
	cfg.Logger = log.New(&slogWriter{m.log}, "", 0)
	ml, err := memberlist.Create(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting gossip on %s: %w", bind, err)
	}
	m.ml = ml
	return m, nil
}

// NotifyConflict is memberlist's ConflictDelegate: a node's name arrived from another
// address than the one on record, which is not yet dead (a node restarted at another
// address before its old one was found failed). The new address is remembered, and
// gossiped with as soon as the old one is declared dead (NotifyLeave), which is
// when memberlist lets the name move (DeadNodeReclaimTime).
func (m *membership) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name == m.self {
		return // the others hold an old address of this node: they will come to it
	}
	m.mu.Lock()
	m.moved[existing.Name] = other.Address()
	m.mu.Unlock()
}

// rejoinMoved gossips with the new address of a node whose old one gossip has just
// declared dead, if it heard of one (NotifyConflict).
func (m *membership) rejoinMoved(n *memberlist.Node) {
	m.mu.Lock()
	addr, ok := m.moved[n.Name]
	delete(m.moved, n.Name)
	m.mu.Unlock()
	if !ok || addr == n.Address() {
		return
	}
	go func() { // not from within memberlist's callback
		m.log.Info("gossiping with a node at its new address", "node", n.Name, "old", n.Address(), "new", addr)
		if _, err := m.ml.Join([]string{addr}); err != nil {
			m.log.Warn("gossiping with a node at its new address", "node", n.Name, "addr", addr, "err", err)
		}
	}()
}

func splitAddr(a string) (string, int, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return h, port, err
}

// joinLoop tries to join the gossip through addrs until some other node is alive, or
// ctx ends. It keeps trying: the peers may not have started yet.
func (m *membership) joinLoop(ctx context.Context, addrs []string) {
	if len(addrs) == 0 {
		return
	}
	for ctx.Err() == nil {
		if m.ml.NumMembers() > 1 {
			return
		}
		if _, err := m.ml.Join(addrs); err != nil {
			m.log.Debug("joining gossip", "peers", addrs, "err", err)
		}
		if !wait.Sleep(ctx, 500*time.Millisecond) {
			return
		}
	}
}

// setMeta changes what this node gossips about itself.
func (m *membership) setMeta(update func(*nodeMeta)) {
	m.mu.Lock()
	before := m.meta
	update(&m.meta)
	same := before == m.meta
	m.mu.Unlock()
	if !same {
		if err := m.ml.UpdateNode(time.Second); err != nil {
			m.log.Debug("gossiping new metadata", "err", err)
		}
	}
}

// Peers returns every node gossip has heard of, this one included, by name.
func (m *membership) Peers() []peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]peer, 0, len(m.peers))
	for _, p := range m.peers {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// forget drops a node from the table (after it was removed from the cluster).
func (m *membership) forget(name string) {
	m.mu.Lock()
	delete(m.peers, name)
	m.mu.Unlock()
}

// Changes signals after the table changed. Signals coalesce.
func (m *membership) Changes() <-chan struct{} { return m.changed }

// leave tells the others this node is leaving, then stops gossip. Its metadata says
// so first: memberlist's leave notification does not tell a leave from a failure.
func (m *membership) leave() {
	m.setMeta(func(meta *nodeMeta) { meta.State = stateLeft })
	if err := m.ml.Leave(2 * time.Second); err != nil {
		m.log.Warn("leaving gossip", "err", err)
	}
	m.shutdown()
}

func (m *membership) shutdown() { _ = m.ml.Shutdown() }

func (m *membership) update(n *memberlist.Node, alive bool) {
	p := &peer{Name: n.Name, Addr: n.Address(), Alive: alive, Left: n.State == memberlist.StateLeft, Changed: time.Now()}
	if len(n.Meta) > 0 {
		if err := json.Unmarshal(n.Meta, &p.Meta); err != nil {
			m.log.Warn("undecodable gossip metadata", "node", n.Name, "err", err)
		}
	}
	m.mu.Lock()
	if old := m.peers[n.Name]; old != nil && !alive && len(n.Meta) == 0 {
		p.Meta = old.Meta
	}
	p.Left = p.Left || (!alive && p.Meta.State == stateLeft)
	m.peers[n.Name] = p
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// memberlist.EventDelegate.

func (m *membership) NotifyJoin(n *memberlist.Node) { m.update(n, true) }
func (m *membership) NotifyLeave(n *memberlist.Node) {
	m.update(n, false)
	m.rejoinMoved(n)
}
func (m *membership) NotifyUpdate(n *memberlist.Node) { m.update(n, true) }

// memberlist.Delegate: only node metadata is used; no user messages or state.

func (m *membership) NodeMeta(limit int) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, _ := json.Marshal(m.meta)
	if len(b) > limit {
		m.log.Error("gossip metadata over the limit", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}
func (m *membership) NotifyMsg([]byte)                           {}
func (m *membership) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (m *membership) LocalState(join bool) []byte                { return nil }
func (m *membership) MergeRemoteState(buf []byte, join bool)     {}

// slogWriter feeds memberlist's log lines ("[WARN] memberlist: ...") into slog.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(line, "[ERR]"):
		w.log.Error(line)
	case strings.Contains(line, "[WARN]"):
		w.log.Warn(line)
	default:
		w.log.Debug(line)
	}
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
