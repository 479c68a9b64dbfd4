package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/navarch/navarch/adapters/consul"
	"github.com/navarch/navarch/adapters/kubernetes"
)

// runAdapters starts the registry adapters the node is configured with. Their work
// runs on one node at a time: every node campaigns in each work's election (one per
// Consul datacenter, one per Kubernetes cluster), the winner syncs, and when it dies
// another takes over within the election's lease.
func (n *Node) runAdapters(ctx context.Context, g *errgroup.Group, p *parts) error {
	var reviewers tokenReviewers
	var metrics *kubernetes.Metrics
	for _, kcfg := range n.cfg.kubernetesClusters() {
		if metrics == nil {
			metrics = kubernetes.NewMetrics(n.reg)
		}
		kcfg.Metrics = metrics
		a, err := kubernetes.New(kcfg, p.store, n.cfg.Name, n.log)
		if err != nil {
			return fmt.Errorf("starting the Kubernetes adapter of cluster %s: %w", kcfg.ClusterID, err)
		}
		reviewers = append(reviewers, a)
		log := n.log.With("component", "kubernetes")
		g.Go(func() error { return p.store.RunElected(ctx, a.ElectionName(), n.cfg.Name, log, a.Run) })
		if kcfg.IstioConfig {
			g.Go(func() error { return p.store.RunElected(ctx, a.ConfigElectionName(), n.cfg.Name, log, a.RunConfig) })
		}
	}
	if len(reviewers) > 0 {
		// Pods get their certificates with their service-account tokens, through
		// every node.
		p.ca.SetTokenReviewer(reviewers)
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

// tokenReviewers asks each followed Kubernetes cluster in turn who a token belongs
// to: a pod's token is valid in its own cluster only. The identity is the same in
// every cluster (spiffe://<trust domain>/ns/<namespace>/sa/<name>), as Istio's
// namespace sameness has it.
type tokenReviewers []*kubernetes.Adapter

func (rs tokenReviewers) ReviewToken(ctx context.Context, token string) (namespace, serviceAccount, rejected string, err error) {
	var rejections []string
	var errs []error
	for _, r := range rs {
		ns, sa, rej, err := r.ReviewToken(ctx, token)
		switch {
		case err != nil:
			errs = append(errs, err)
		case rej != "":
			rejections = append(rejections, r.Source()+": "+rej)
		default:
			return ns, sa, "", nil
		}
	}
	if len(errs) > 0 {
		// A cluster that could not be asked may be the token's: not the caller's fault.
		return "", "", "", errors.Join(errs...)
	}
	if len(rs) == 1 {
		_, rej, _ := strings.Cut(rejections[0], ": ")
		return "", "", rej, nil
	}
	return "", "", strings.Join(rejections, "; "), nil
}
