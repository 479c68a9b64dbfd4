package kubernetes

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// InCluster is the Kubeconfig value that reads the API server's address and the
// service account's token from the pod navarch runs in.
const InCluster = "in-cluster"

// Config is how the adapter reaches a Kubernetes cluster and names what it finds.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file (its current context is used), or
	// InCluster. Empty: the adapter is off.
	Kubeconfig string
	// ClusterID names the cluster: the registry source is "kubernetes.<ClusterID>"
	// and the election "kubernetes/<ClusterID>".
	ClusterID string
	// Network is the network of the cluster's pods that name none themselves (label
	// topology.istio.io/network), as Istio's per-cluster network; empty: none.
	Network string
	// Domain is the cluster's DNS domain: a Service's host is
	// <name>.<namespace>.svc.<Domain>. The node sets it to its own --domain.
	Domain string
	// DiscoverySelectors are label selectors of namespaces (Kubernetes' selector
	// syntax: "env=prod,tier in (web,api)"), as Istio's discoverySelectors: only the
	// Services, pods and EndpointSlices of namespaces matching one of them are
	// followed. None: every namespace.
	DiscoverySelectors []string
	// SystemNamespace is the namespace whose topology.istio.io/network label is the
	// network of the cluster's pods when Network is empty, as Istio reads it from its
	// own namespace.
	SystemNamespace string
	// IstioConfig mirrors the cluster's Istio configuration (VirtualServices and the
	// other kinds navarch serves, stored as Istio's custom resources) into navarch's
	// configuration, beside what navarch apply writes (Adapter.RunConfig).
	IstioConfig bool
	// TokenAudiences are the audiences a service-account token presented to the CA
	// must be for (Istio's: istio-ca).
	TokenAudiences []string
	// Coalesce and CoalesceMax batch the cluster's changes into one write: a write
	// follows Coalesce of quiet, or CoalesceMax after the first change.
	Coalesce, CoalesceMax time.Duration
	// StatusInterval is how often the source's status is refreshed, and a full
	// re-sync done, while nothing changes.
	StatusInterval time.Duration
	// Metrics count the changes the informers see; nil: not counted.
	Metrics *Metrics
}

// DefaultConfig returns the configuration of `navarch server` without --kube flags:
// off until Kubeconfig is set.
func DefaultConfig() Config {
	return Config{
		ClusterID:       "kubernetes",
		Domain:          "cluster.local",
		SystemNamespace: "istio-system",
		// istio-agent asks its kubelet for a token of this audience.
		TokenAudiences: []string{"istio-ca"},
		// A rollout changes pods within tens of milliseconds of each other; 50 ms of
		// quiet gathers them into one write.
		Coalesce:       50 * time.Millisecond,
		CoalesceMax:    200 * time.Millisecond,
		StatusInterval: time.Minute,
	}
}

// Enabled reports whether the adapter should run.
func (c *Config) Enabled() bool { return c.Kubeconfig != "" }

// Validate checks the configuration without side effects. A configuration without a
// Kubeconfig is valid (the adapter is off).
func (c *Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if msgs := validation.IsDNS1123Label(c.ClusterID); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("kubernetes: cluster id %q: %s", c.ClusterID, strings.Join(msgs, "; ")))
	}
	if c.Network != "" {
		if msgs := validation.IsValidLabelValue(c.Network); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("kubernetes: network %q: %s", c.Network, strings.Join(msgs, "; ")))
		}
	}
	if _, err := c.selectors(); err != nil {
		errs = append(errs, err)
	}
	if msgs := validation.IsDNS1123Label(c.SystemNamespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("kubernetes: system namespace %q: %s", c.SystemNamespace, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Subdomain(c.Domain); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("kubernetes: domain %q: %s", c.Domain, strings.Join(msgs, "; ")))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"coalesce", c.Coalesce}, {"coalesce max", c.CoalesceMax}, {"status interval", c.StatusInterval}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("kubernetes: %s must be positive, got %s", d.name, d.v))
		}
	}
	if c.CoalesceMax < c.Coalesce {
		errs = append(errs, errors.New("kubernetes: coalesce max must not be less than coalesce"))
	}
	return errors.Join(errs...)
}

// selectors parses DiscoverySelectors; nil when there are none (every namespace is
// followed).
func (c *Config) selectors() ([]labels.Selector, error) {
	var out []labels.Selector
	for _, s := range c.DiscoverySelectors {
		sel, err := labels.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: discovery selector %q: %w", s, err)
		}
		out = append(out, sel)
	}
	return out, nil
}
