package node

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/navarch/navarch/adapters/consul"
	"github.com/navarch/navarch/adapters/kubernetes"
)

// runAdapters starts the registry adapters the node is configured with. Their work
// runs on one node at a time: every node campaigns in each work's election (one per
// Consul datacenter, one per Kubernetes cluster), the winner syncs, and when it dies
// another takes over within the election's lease.
func (n *Node) runAdapters(ctx context.Context, g *errgroup.Group, p *parts) error {
	if n.cfg.Kubernetes.Enabled() {
		kcfg := n.cfg.Kubernetes
		kcfg.Domain = n.cfg.Domain
		a, err := kubernetes.New(kcfg, p.store, n.cfg.Name, n.log)
		if err != nil {
			return fmt.Errorf("starting the Kubernetes adapter: %w", err)
		}
		// Pods get their certificates with their service-account tokens, through
		// every node.
		p.ca.SetTokenReviewer(a)
		log := n.log.With("component", "kubernetes")
		g.Go(func() error { return p.store.RunElected(ctx, a.ElectionName(), n.cfg.Name, log, a.Run) })
	}
	if !n.cfg.Consul.Enabled() {
		return nil
	}
	a, err := consul.New(n.cfg.Consul, p.store, n.cfg.Name, n.log)
	if err != nil {
		return fmt.Errorf("starting the Consul adapter: %w", err)
	}
	log := n.log.With("component", "consul")
	g.Go(func() error {
		dcs, err := a.Datacenters(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consul: %w", err)
		}
		for _, dc := range dcs {
			g.Go(func() error { return p.store.RunElected(ctx, dc.ElectionName(), n.cfg.Name, log, dc.Run) })
		}
		return nil
	})
	return nil
}
