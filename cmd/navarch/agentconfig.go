package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/agent"
	"github.com/navarch/navarch/api"
)

const agentConfigureUsage = `usage: navarch agent configure --workload-group <namespace/name> --out DIR [--dir /etc/navarch] [--ttl 1h] [--address IP] [--source S] [API flags]`

// runAgentConfigure writes what a VM of a WorkloadGroup needs to join the mesh, as
// istioctl's "x workload entry configure" does for istio-agent: a join token of the
// group, the mesh's roots, and agent.yaml, the flags of `navarch agent run` (the
// nodes' TLS addresses, the group, the group's readiness probe). It talks to the
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
	if *address != "" {
		values["address"] = *address
	}
	if *dnsAddr != "" {
		if _, _, err := net.SplitHostPort(*dnsAddr); err != nil {
			return fmt.Errorf("--dns-addr must be host:port, got %q", *dnsAddr)
		}
		values["dns-addr"] = *dnsAddr
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
// `navarch agent run`, keyed by flag name; none for no probe. Hosts default to
// 127.0.0.1, the timings to Kubernetes' defaults (as the agent's own). An error
// names the field below spec.probe.
func probeFlags(p *networking.ReadinessProbe) (map[string]any, error) {
	values := map[string]any{}
	if p == nil {
		return values, nil
	}
	host := func(h string) string {
		if h == "" {
			return "127.0.0.1"
		}
		return h
	}
	port := func(field string, port uint32) (string, error) {
		if port == 0 || port > 65535 {
			return "", fmt.Errorf(".%s.port: must be 1-65535, got %d", field, port)
		}
		return strconv.Itoa(int(port)), nil
	}
	switch m := p.GetHealthCheckMethod().(type) {
	case *networking.ReadinessProbe_TcpSocket:
		pt, err := port("tcpSocket", m.TcpSocket.GetPort())
		if err != nil {
			return nil, err
		}
		values["probe"] = "tcp:" + net.JoinHostPort(host(m.TcpSocket.GetHost()), pt)
	case *networking.ReadinessProbe_HttpGet:
		h := m.HttpGet
		pt, err := port("httpGet", h.GetPort())
		if err != nil {
			return nil, err
		}
		scheme := strings.ToLower(h.GetScheme())
		switch scheme {
		case "":
			scheme = "http"
		case "http", "https":
		default:
			return nil, fmt.Errorf(".httpGet.scheme: must be HTTP or HTTPS, got %q", h.GetScheme())
		}
		path := h.GetPath()
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		values["probe"] = scheme + "://" + net.JoinHostPort(host(h.GetHost()), pt) + path
		var headers []string
		for i, hd := range h.GetHttpHeaders() {
			if hd.GetName() == "" || strings.ContainsAny(hd.GetName(), ": \t\r\n") || strings.ContainsAny(hd.GetValue(), "\r\n") {
				return nil, fmt.Errorf(".httpGet.httpHeaders[%d]: not a valid header: %q: %q", i, hd.GetName(), hd.GetValue())
			}
			headers = append(headers, hd.GetName()+": "+hd.GetValue())
		}
		if len(headers) > 0 {
			values["probe-header"] = headers
		}
	case *networking.ReadinessProbe_Exec:
		cmd := m.Exec.GetCommand()
		if len(cmd) == 0 {
			return nil, errors.New(".exec.command: must name a command")
		}
		values["probe"] = "exec:" + agent.QuoteCommand(cmd)
	default:
		return nil, errors.New(": names no check Istio takes (httpGet, tcpSocket or exec)")
	}
	seconds := func(n, def int32) string {
		if n <= 0 {
			n = def
		}
		return (time.Duration(n) * time.Second).String()
	}
	values["probe-period"] = seconds(p.GetPeriodSeconds(), 10)
	values["probe-timeout"] = seconds(p.GetTimeoutSeconds(), 1)
	values["probe-initial-delay"] = (time.Duration(max(p.GetInitialDelaySeconds(), 0)) * time.Second).String()
	failures := p.GetFailureThreshold()
	if failures <= 0 {
		failures = 3
	}
	values["probe-failures"] = int(failures)
	values["probe-successes"] = int(max(p.GetSuccessThreshold(), 1))
	return values, nil
}
