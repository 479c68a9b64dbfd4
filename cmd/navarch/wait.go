package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/xds"
)

// runWait waits until the proxies of every node have taken a configuration
// revision: a resource's (its resourceVersion) or --revision's. istioctl x wait
// is its counterpart.
func runWait(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch wait", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	ns := fs.String("n", "", "namespace of the resource (default \"default\")")
	rev := fs.Int64("revision", 0, "wait for this configuration revision instead of a resource's")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	switch {
	case *rev > 0 && len(pos) == 0:
	case *rev == 0 && len(pos) == 2:
		k, ok := api.LookupKind(pos[0])
		if !ok {
			return fmt.Errorf("unknown kind %q; known: %s", pos[0], strings.Join(api.KindNames(), ", "))
		}
		r, err := c.Get(ctx, k.Plural, kindNamespace(k, *ns), pos[1])
		if err != nil {
			return err
		}
		if *rev, err = strconv.ParseInt(r.Meta.ResourceVersion, 10, 64); err != nil {
			return fmt.Errorf("%s: resourceVersion %q: %w", r, r.Meta.ResourceVersion, err)
		}
	default:
		return errors.New("wait needs a kind and a name, or --revision")
	}
	return waitSynced(ctx, c, *rev, *timeout, stdout)
}

// waitSynced polls every live node of the cluster until each proxy connected to
// any of them has taken revision rev (xds.ProxyStatus.Synced) and says so on
// out, or fails after timeout naming the proxies that have not.
func waitSynced(ctx context.Context, c *client.Client, rev int64, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last syncCount
	for {
		// A count the deadline cut short (no node answered) does not replace one
		// that said where the proxies are.
		if n := countSynced(ctx, c, rev); n.nodes > 0 || last.nodes == 0 {
			last = n
		}
		if last.nodes > 0 && last.synced == last.total {
			fmt.Fprintf(out, "revision %d taken by %d of %d proxies (%d nodes%s)\n", rev, last.synced, last.total, last.nodes, last.silentNote())
			return nil
		}
		select {
		case <-ctx.Done():
			if last.nodes == 0 {
				return fmt.Errorf("revision %d: no node answered in %v: %s", rev, timeout, strings.Join(last.silent, "; "))
			}
			return fmt.Errorf("revision %d: taken by %d of %d proxies after %v; not by %s%s", rev, last.synced, last.total, timeout,
				strings.Join(last.behind, ", "), last.silentNote())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// syncCount is what the nodes said of their proxies.
type syncCount struct {
	synced, total int
	nodes         int      // nodes that answered
	behind        []string // the first few proxies not synced, with why
	// silent are the nodes that did not answer: a node that died (and gossip has
	// not yet marked failed) has no proxies left, so they are not waited for.
	silent []string
}

func (n syncCount) silentNote() string {
	if len(n.silent) == 0 {
		return ""
	}
	return "; not answering: " + strings.Join(n.silent, ", ")
}

// countSynced asks every live node for its proxies (clusterProxies).
func countSynced(ctx context.Context, c *client.Client, rev int64) syncCount {
	var n syncCount
	nodes, silent := clusterProxies(ctx, c)
	n.silent = silent
	for _, node := range nodes {
		n.nodes++
		for _, p := range node.proxies {
			n.total++
			if p.Synced >= rev {
				n.synced++
			} else if len(n.behind) < 5 {
				n.behind = append(n.behind, behind(p, node.name))
			}
		}
	}
	return n
}

// nodeProxies are the proxies connected to one node.
type nodeProxies struct {
	name    string // "" when the answering node could not list the members
	api     *client.Client
	proxies []xds.ProxyStatus
}

// clusterProxies asks every live node for its connected proxies (the answering node
// alone when it cannot list members); silent names the nodes that did not answer,
// with why.
func clusterProxies(ctx context.Context, c *client.Client) (nodes []nodeProxies, silent []string) {
	members, err := c.Members(ctx)
	if err != nil {
		members = nil
	}
	return membersProxies(ctx, c, members)
}

// membersProxies is clusterProxies for members already listed through c; with none,
// it asks c's node alone.
func membersProxies(ctx context.Context, c *client.Client, members []client.MemberInfo) (nodes []nodeProxies, silent []string) {
	asked := []nodeProxies{{api: c}}
	if len(members) > 0 {
		asked = nil
		for _, m := range members {
			if m.HTTP != "" && (m.Gossip == "alive" || m.Gossip == "-") {
				asked = append(asked, nodeProxies{name: m.Name, api: c.At(m.HTTP)})
			}
		}
	}
	for _, node := range asked {
		raw, err := node.api.Raw(ctx, "/debug/proxies")
		if err == nil {
			err = json.Unmarshal(raw, &node.proxies)
		}
		if err != nil {
			silent = append(silent, fmt.Sprintf("%s (%v)", cmp.Or(node.name, "the node"), err))
			continue
		}
		nodes = append(nodes, node)
	}
	return nodes, silent
}

// behind says where a proxy that has not taken a revision is, and why if it
// rejected something.
func behind(p xds.ProxyStatus, node string) string {
	s := p.ID
	if node != "" {
		s += " on " + node
	}
	types := make([]string, 0, len(p.Types))
	for t := range p.Types {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		if ts := p.Types[t]; ts.Nacked != "" && ts.Nacked == ts.Sent {
			return fmt.Sprintf("%s (rejected %s: %s)", s, t, ts.NackError)
		}
	}
	return s
}
