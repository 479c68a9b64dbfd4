package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/agent"
	"github.com/navarch/navarch/api"
)

const agentConfigureUsage = `usage: navarch agent configure --workload-group <namespace/name> --out DIR [--dir /etc/navarch] [--ttl 1h] [--address IP] [--dns-addr H:P] [--status-addr H:P] [--source S] [API flags]`

// runAgentConfigure writes what a VM of a WorkloadGroup needs to join the mesh, as
// istioctl's "x workload entry configure" does for istio-agent: a join token of the
// group, the mesh's roots, and agent.yaml, the flags of `navarch agent run` (the
// nodes' TLS addresses, the group, the group's readiness probe, which the agent
// then follows as it changes). It talks to the
// admin API; the files go to the VM, into --dir.
func runAgentConfigure(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch agent configure", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	group := fs.String("workload-group", "", "the WorkloadGroup (namespace/name) the VM joins")
	out := fs.String("out", "", "directory to write join-token, root.pem and agent.yaml to")
	vmDir := fs.String("dir", "/etc/navarch", "directory the files will be in on the VM (the paths agent.yaml names)")
	ttl := fs.Duration("ttl", time.Hour, "how long the join token is valid (the agent needs it only for its first certificate)")
	address := fs.String("address", "", "the VM's IP address (else give --address to navarch agent run)")
	dnsAddr := fs.String("dns-addr", "", "where the agent's DNS proxy for the mesh's names is to listen on the VM (127.0.0.1:15053; istioctl's --capture-dns); none: no DNS proxy")
	statusAddr := fs.String("status-addr", "", "where the agent is to serve its status on the VM (127.0.0.1:15020); none: no status server")
	source := fs.String("source", "", "read the WorkloadGroup from the configuration a source mirrors (a Kubernetes cluster's Istio resources: kubernetes.<cluster id>.config) instead of what was applied")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 || *group == "" || *out == "" {
		return errors.New(agentConfigureUsage)
	}
	ns, name, ok := strings.Cut(*group, "/")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("--workload-group %q: want namespace/name", *group)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	res, err := c.GetFrom(ctx, *source, api.WorkloadGroup.Name, ns, name)
	if err != nil {
		return err // it names the WorkloadGroup
	}
	values, err := probeFlags(res.Spec.(*networking.WorkloadGroup).GetProbe())
	if err != nil {
		return fmt.Errorf("WorkloadGroup %s: spec.probe%w", *group, err)
	}
	members, err := c.Members(ctx)
	if err != nil {
		return err
	}
	var servers []string
	for _, m := range members {
		if m.XDSTLS != "" && (m.Gossip == "alive" || m.Self) {
			servers = append(servers, m.XDSTLS)
		}
	}
	info, err := c.CA(ctx)
	if err != nil {
		return err
	}
	token, err := c.CreateToken(ctx, *group, *ttl)
	if err != nil {
		return err
	}
	values["server"] = servers
	values["token-file"] = filepath.Join(*vmDir, "join-token")
	values["ca-file"] = filepath.Join(*vmDir, "root.pem")
	values["out"] = filepath.Join(*vmDir, "certs")
	values["group"] = name
	values["probe-from-group"] = true
	if *address != "" {
		values["address"] = *address
	}
	if *dnsAddr != "" {
		if _, _, err := net.SplitHostPort(*dnsAddr); err != nil {
			return fmt.Errorf("--dns-addr must be host:port, got %q", *dnsAddr)
		}
		values["dns-addr"] = *dnsAddr
	}
	if *statusAddr != "" {
		if _, _, err := net.SplitHostPort(*statusAddr); err != nil {
			return fmt.Errorf("--status-addr must be host:port, got %q", *statusAddr)
		}
		values["status-addr"] = *statusAddr
	}
	body, err := yaml.Marshal(values)
	if err != nil {
		return err
	}
	run := "navarch agent run --config " + filepath.Join(*vmDir, "agent.yaml")
	if *address == "" {
		run += " --address <this VM's IP>"
	}
	header := fmt.Sprintf("# %s\n# for a VM of WorkloadGroup %s; flags on the command line win.\n", run, *group)
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"join-token", token.Token + "\n", 0o600},
		{"root.pem", info.TrustBundle, 0o644},
		{"agent.yaml", header + string(body), 0o644},
	} {
		if err := os.WriteFile(filepath.Join(*out, f.name), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote join-token, root.pem and agent.yaml to %s: copy them to %s on the VM.\n", *out, *vmDir)
	fmt.Fprintf(stderr, "join token %s for %s, valid until %s (needed only for the first certificate).\n",
		token.ID, token.Identity, token.Expires.UTC().Format(time.RFC3339))
	return nil
}

// probeFlags turns a WorkloadGroup's readiness probe into the probe flags of
// `navarch agent run`, keyed by flag name; none for no probe. The translation is
// the agent's own (agent.GroupProbe), which names the field below spec.probe in an
// error.
func probeFlags(p *networking.ReadinessProbe) (map[string]any, error) {
	probe, err := agent.GroupProbe(p)
	if err != nil {
		return nil, err
	}
	values := map[string]any{}
	if probe == nil {
		return values, nil
	}
	values["probe"] = probe.String()
	if len(probe.Header) > 0 {
		var headers []string
		for _, name := range slices.Sorted(maps.Keys(probe.Header)) {
			for _, v := range probe.Header[name] {
				headers = append(headers, name+": "+v)
			}
		}
		values["probe-header"] = headers
	}
	values["probe-period"] = probe.Period.String()
	values["probe-timeout"] = probe.Timeout.String()
	values["probe-initial-delay"] = probe.InitialDelay.String()
	values["probe-failures"] = probe.FailureThreshold
	values["probe-successes"] = probe.SuccessThreshold
	return values, nil
}
