package node

import (
	"context"
	"net"
	"sync"

	"github.com/navarch/navarch/internal/wait"
)

// Load spreading. Istio never moves a proxy once connected, so after a node restarts
// its peers keep the load it had. Every RebalanceInterval a node compares its proxies
// with its fair share (gossip carries every node's count) and, when it holds more than
// the share plus a margin, closes the connections of the excess, newest first. Envoy
// (whose bootstrap lists every node) reconnects through its cluster's load balancer,
// which picks any node; grpc-go reconnects through its target's address list, whose
// order the xDS DNS name shuffles. The margin keeps nodes from trading proxies back and
// forth.
const (
	rebalanceMargin   = 0.25 // fraction of the share tolerated above it
	rebalanceMinExtra = 5    // proxies tolerated above the share on small clusters
)

// excessProxies returns how many proxies this node should shed, given its own count
// and the counts of every running node (its own included).
func excessProxies(mine int, all []int) int {
	if len(all) < 2 {
		return 0
	}
	total := 0
	for _, n := range all {
		total += n
	}
	share := (total + len(all) - 1) / len(all)
	allowed := share + max(rebalanceMinExtra, int(float64(share)*rebalanceMargin))
	if mine <= allowed {
		return 0
	}
	return mine - share
}

// rebalance runs the load-spreading loop until ctx ends.
func (n *Node) rebalance(ctx context.Context, p *parts, conns *connTracker) {
	if n.cfg.RebalanceInterval <= 0 {
		return
	}
	wait.Every(ctx, n.cfg.RebalanceInterval, func() {
		mine := p.xds.Connections()
		all := []int{mine}
		for _, pr := range n.gossip.Peers() {
			if pr.Name != n.cfg.Name && pr.Alive && pr.Meta.State == stateRunning {
				all = append(all, pr.Meta.Proxies)
			}
		}
		excess := excessProxies(mine, all)
		if excess == 0 {
			return
		}
		closed := 0
		for _, addr := range p.xds.Shed(excess) {
			if conns.close(addr) {
				closed++
			}
		}
		n.log.Info("spreading load: asked proxies to reconnect elsewhere", "proxies", mine, "nodes", all, "closed", closed)
	})
}

// connTracker is a listener that remembers its open connections by remote address,
// so that load spreading can close a proxy's connection.
type connTracker struct {
	net.Listener
	mu    sync.Mutex
	conns map[string]net.Conn
}

func trackConns(l net.Listener) *connTracker {
	return &connTracker{Listener: l, conns: map[string]net.Conn{}}
}

func (t *connTracker) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: t}
	t.mu.Lock()
	t.conns[c.RemoteAddr().String()] = tc
	t.mu.Unlock()
	return tc, nil
}

func (t *connTracker) close(remote string) bool {
	t.mu.Lock()
	c := t.conns[remote]
	t.mu.Unlock()
	if c == nil {
		return false
	}
	return c.Close() == nil
}

type trackedConn struct {
	net.Conn
	t    *connTracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c.RemoteAddr().String())
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}
