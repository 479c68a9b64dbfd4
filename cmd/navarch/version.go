package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/navarch/navarch/internal/version"
)

// versions is what `navarch version` reports, as `istioctl version` does: the
// CLI's build, the builds the cluster's nodes run (each with its nodes), and the
// releases its connected proxies run (each with how many).
type versions struct {
	Client       string         `json:"client"`
	ControlPlane []versionCount `json:"control_plane,omitempty"`
	DataPlane    []versionCount `json:"data_plane,omitempty"`
}

// versionCount is one version and who runs it.
type versionCount struct {
	Version string   `json:"version"`
	Nodes   []string `json:"nodes,omitempty"`
	Proxies int      `json:"proxies,omitempty"`
}

// runVersion prints the CLI's version and, unless --remote=false, those of the
// cluster's nodes and of their proxies.
func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	remote := fs.Bool("remote", true, "also ask the cluster for the versions of its nodes and proxies")
	out := fs.String("o", "", "output: text (default) or json")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	v := versions{Client: version.String()}
	var remoteErr error
	if *remote {
		remoteErr = v.fetch(ctx, cf, stderr)
	}
	if *out == "json" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return remoteErr
	}
	if !*remote {
		fmt.Fprintln(stdout, "navarch", v.Client)
		return nil
	}
	fmt.Fprintf(stdout, "client version: %s\n", v.Client)
	if remoteErr != nil {
		return remoteErr
	}
	var cp, dp []string
	for _, c := range v.ControlPlane {
		cp = append(cp, fmt.Sprintf("%s (%s)", c.Version, strings.Join(c.Nodes, ", ")))
	}
	for _, c := range v.DataPlane {
		n := "1 proxy"
		if c.Proxies != 1 {
			n = fmt.Sprintf("%d proxies", c.Proxies)
		}
		dp = append(dp, fmt.Sprintf("%s (%s)", c.Version, n))
	}
	fmt.Fprintf(stdout, "control plane version: %s\n", strings.Join(cp, ", "))
	fmt.Fprintf(stdout, "data plane version: %s\n", cmp.Or(strings.Join(dp, ", "), "none (no proxies connected)"))
	return nil
}

// fetch asks the cluster for its nodes' builds and its proxies' releases; nodes
// that do not answer are named on stderr.
func (v *versions) fetch(ctx context.Context, cf clientFlags, stderr io.Writer) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	members, err := c.Members(ctx)
	if err != nil {
		return fmt.Errorf("control plane version: %w", err)
	}
	byBuild := map[string][]string{}
	for _, m := range members {
		if m.Gossip == "alive" || m.Gossip == "-" {
			byBuild[cmp.Or(m.Version, "unknown")] = append(byBuild[cmp.Or(m.Version, "unknown")], m.Name)
		}
	}
	if len(byBuild) == 0 {
		return errors.New("control plane version: no live node listed")
	}
	for b, nodes := range byBuild {
		slices.Sort(nodes)
		v.ControlPlane = append(v.ControlPlane, versionCount{Version: b, Nodes: nodes})
	}
	slices.SortFunc(v.ControlPlane, func(a, b versionCount) int { return strings.Compare(a.Version, b.Version) })
	nodes, silent := membersProxies(ctx, c, members)
	for _, s := range silent {
		fmt.Fprintf(stderr, "warning: not counted: the proxies of %s\n", s)
	}
	proxies := map[string]int{}
	for _, n := range nodes {
		for _, p := range n.proxies {
			proxies[cmp.Or(proxyVersion(p), "unknown")]++
		}
	}
	for r, n := range proxies {
		v.DataPlane = append(v.DataPlane, versionCount{Version: r, Proxies: n})
	}
	slices.SortFunc(v.DataPlane, func(a, b versionCount) int { return cmp.Or(b.Proxies-a.Proxies, strings.Compare(a.Version, b.Version)) })
	return nil
}
