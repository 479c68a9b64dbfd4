package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/internal/version"
	"github.com/navarch/navarch/store"
)

// members describes every node: gossip's table joined with etcd's member list (read
// without quorum, so a cut-off node still answers).
func (n *Node) members(ctx context.Context, p *parts) ([]client.MemberInfo, error) {
	ms, err := p.store.Members(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*client.MemberInfo{}
	get := func(name string) *client.MemberInfo {
		if m := byName[name]; m != nil {
			return m
		}
		m := &client.MemberInfo{Name: name, Gossip: "-", Etcd: "-"}
		byName[name] = m
		return m
	}
	self := get(n.cfg.Name)
	self.Self = true
	self.XDS, self.XDSTLS, self.HTTP = n.advertised(n.XDSAddr()), n.advertised(n.tlsLis.Addr().String()), n.advertised(n.HTTPAddr())
	self.Proxies, self.Revision, self.XDSRevision = p.xds.Connections(), p.view.Revision(), p.xds.ServedRevision()
	self.Version, self.CertExpires = version.String(), n.certExpiry
	if n.cfg.Backups.Dir != "" {
		self.BackupInterval, self.LastBackup = int64(n.cfg.Backups.Interval/time.Second), n.backups.lastTime()
	}
	if n.dnsConn != nil {
		self.DNS, self.XDSName = n.advertised(n.dnsConn.LocalAddr().String()), n.cfg.XDSName
	}
	if n.gossip != nil {
		for _, pr := range n.gossip.Peers() {
			m := get(pr.Name)
			m.GossipAddr = pr.Addr
			switch {
			case pr.Alive:
				m.Gossip = "alive"
			case pr.Left:
				m.Gossip = "left"
			default:
				m.Gossip = "failed"
			}
			if !m.Self {
				m.XDS, m.XDSTLS, m.HTTP, m.Proxies, m.Revision = pr.Meta.XDS, pr.Meta.XDSTLS, pr.Meta.HTTP, pr.Meta.Proxies, pr.Meta.Revision
				m.DNS, m.Version = pr.Meta.DNS, pr.Meta.Version
				if pr.Meta.CertExpiry != 0 {
					m.CertExpires = time.Unix(pr.Meta.CertExpiry, 0)
				}
				m.BackupInterval = pr.Meta.BackupInterval
				if pr.Meta.LastBackup != 0 {
					m.LastBackup = time.Unix(pr.Meta.LastBackup, 0)
				}
			}
		}
	} else {
		self.Gossip = "alive"
	}
	leader := p.store.Leader()
	for _, em := range ms {
		name := em.Name
		if name == "" {
			name = nameByPeerURL(n, em)
		}
		m := get(name)
		m.EtcdID = strconv.FormatUint(em.ID, 16)
		if len(em.PeerURLs) > 0 {
			m.EtcdPeer = em.PeerURLs[0]
		}
		switch {
		case em.Learner:
			m.Etcd = "learner"
		case em.ID == leader:
			m.Etcd = "leader"
		default:
			m.Etcd = "follower"
		}
	}
	out := make([]client.MemberInfo, 0, len(byName))
	for _, m := range byName {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// nameByPeerURL names an etcd member that has not started yet by its peer URL, as
// gossip knows it.
func nameByPeerURL(n *Node, em store.Member) string {
	if n.gossip != nil {
		for _, pr := range n.gossip.Peers() {
			for _, u := range em.PeerURLs {
				if pr.Meta.EtcdPeer == u {
					return pr.Name
				}
			}
		}
	}
	return "(unstarted " + strconv.FormatUint(em.ID, 16) + ")"
}

func (n *Node) listMembers(w http.ResponseWriter, r *http.Request, p *parts) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	ms, err := n.members(ctx, p)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, ms)
}

// removeMember takes a node out of the cluster: its etcd member is removed (so the
// quorum no longer counts it) and gossip forgets it. It refuses to remove the node
// that answers; that node should leave (navarch leave) instead.
func (n *Node) removeMember(w http.ResponseWriter, r *http.Request, p *parts) {
	name := r.PathValue("name")
	if name == n.cfg.Name {
		writeError(w, http.StatusBadRequest, errors.New("a node does not remove itself; ask another node, or run navarch leave against this one"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	ms, err := n.members(ctx, p)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	for _, m := range ms {
		if m.Name != name {
			continue
		}
		if m.EtcdID != "" {
			id, _ := strconv.ParseUint(m.EtcdID, 16, 64)
			if err := p.store.RemoveMember(ctx, id); err != nil {
				writeError(w, statusOf(err), fmt.Errorf("removing %s from etcd: %w", name, err))
				return
			}
		}
		if err := p.store.DeleteNode(ctx, name); err != nil {
			n.log.Warn("forgetting a removed node", "node", name, "err", err)
		}
		if n.gossip != nil {
			n.gossip.forget(name)
		}
		n.log.Info("removed a node from the cluster", "node", name)
		writeJSON(w, http.StatusOK, map[string]string{"removed": name})
		return
	}
	writeError(w, http.StatusNotFound, fmt.Errorf("no node named %s", name))
}

// leave makes this node leave the cluster and stop.
func (n *Node) leave(w http.ResponseWriter, r *http.Request, p *parts) {
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if err := p.store.RemoveMember(ctx, p.store.ID()); err != nil {
		writeError(w, statusOf(err), fmt.Errorf("leaving: %w", err))
		return
	}
	if n.gossip != nil {
		n.gossip.leave() // tell the others before the answer, so that they see "left"
	}
	writeJSON(w, http.StatusOK, map[string]string{"left": n.cfg.Name})
	n.log.Info("left the cluster; stopping")
	n.stopOnce.Do(func() { close(n.stop) })
}

// snapshot streams a snapshot of this node's etcd member: a backup of everything
// the cluster keeps (`navarch snapshot save`; restored with --restore-from). The
// signing key of the CA in it stays encrypted with the key-encryption key.
func (n *Node) snapshot(w http.ResponseWriter, r *http.Request, p *parts) {
	rc, err := p.store.Backup(r.Context())
	if err != nil {
		writeError(w, statusOf(err), fmt.Errorf("snapshot: %w", err))
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	if _, err := io.Copy(w, rc); err != nil {
		n.log.Warn("sending a snapshot failed", "err", err) // the client sees a short body, which fails its digest
	}
}
