package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/navarch/navarch/agent"
)

const agentUsage = `usage: navarch agent certs --token-file T --out DIR [--server host:15012,...] [--ca-file root.pem | --insecure-first-fetch] [--once] [--identity-check] [--status-addr 127.0.0.1:15020] [--config F]
       navarch agent run --token-file T --out DIR --group NAME --address IP [--label k=v]... [--network N] [--locality r/z/s] [--probe tcp:h:p|grpc:h:p|http(s)://...|exec:cmd] [--probe-from-group] [--dns-addr 127.0.0.1:15053 [--dns-upstream h:p,...] [--dns-resolv-conf F]] [certs flags]
       navarch agent check [--timeout 1s] tcp:h:p|grpc:h:p[/service]|http(s)://...|exec:cmd
       navarch agent configure --workload-group <namespace/name> --out DIR [--dir /etc/navarch] [--address IP] [--dns-addr 127.0.0.1:15053] [--status-addr 127.0.0.1:15020]`

// runAgent runs the workload side: `navarch agent certs` gets the workload's
// certificate with a join token and keeps it renewed; `navarch agent run` does that
// and keeps the workload registered in its WorkloadGroup, with its probe's health.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "configure" {
		return runAgentConfigure(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "check" {
		return runAgentCheck(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "certs" && args[0] != "run") {
		return errors.New(agentUsage)
	}
	inv, err := parseAgentArgs(args[0], args[1:], stderr)
	if err != nil {
		return err
	}
	if inv.identityCheck {
		return identityCheck(stdout, inv.cfg.OutDir)
	}
	cfg, reg, register := inv.cfg, inv.reg, inv.reg != nil
	log, err := newLogger(stderr, inv.logLevel, inv.logFormat)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	if inv.statusAddr != "" && !inv.once {
		lis, err := net.Listen("tcp", inv.statusAddr)
		if err != nil {
			return fmt.Errorf("agent: --status-addr: %w", err)
		}
		srv := &http.Server{Handler: a.StatusHandler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(lis)
		defer srv.Close()
		log.Info("status server listening", "addr", lis.Addr().String())
	}
	if register {
		if reg.DNS != nil {
			if err := reg.DNS.Start(log); err != nil {
				return err
			}
			defer reg.DNS.Close()
		}
		// Registration reads the certificate files the certificate loop writes.
		rerr := make(chan error, 1)
		go func() { rerr <- a.Register(ctx, *reg) }()
		err := a.Run(ctx)
		return errors.Join(err, <-rerr)
	}
	if !inv.once {
		return a.Run(ctx)
	}
	certs, err := a.Fetch(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s until %s in %s\n", certs.Identity, certs.Leaf().NotAfter.UTC().Format(time.RFC3339), cfg.OutDir)
	return nil
}

// agentInvocation is what `navarch agent certs` or `run` was asked to do.
type agentInvocation struct {
	cfg                 agent.Config
	reg                 *agent.Registration // run only
	once, identityCheck bool                // certs only
	logLevel, logFormat string
	statusAddr          string
}

// parseAgentArgs reads the flags of `navarch agent <mode>` (certs or run), then the
// --config file's for those not given, and checks them.
func parseAgentArgs(mode string, args []string, stderr io.Writer) (*agentInvocation, error) {
	register := mode == "run"
	inv := &agentInvocation{cfg: agent.DefaultConfig()}
	cfg := &inv.cfg
	fs := flag.NewFlagSet("navarch agent "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("server", strings.Join(cfg.Servers, ","), "TLS gRPC addresses of navarch nodes (host:port,...), tried in turn")
	fs.StringVar(&cfg.TokenFile, "token-file", cfg.TokenFile, "file holding the join token (navarch token create)")
	fs.StringVar(&cfg.OutDir, "out", cfg.OutDir, "directory to write cert-chain.pem, key.pem and root-cert.pem to")
	fs.StringVar(&cfg.CAFile, "ca-file", cfg.CAFile, "PEM root(s) to verify the nodes with on the first fetch (navarch ca show -o pem)")
	fs.BoolVar(&cfg.InsecureFirstFetch, "insecure-first-fetch", cfg.InsecureFirstFetch, "without --ca-file, trust the first node that answers (its roots' fingerprints are logged: compare them with navarch ca show)")
	fs.StringVar(&cfg.ServerName, "server-name", cfg.ServerName, "name the nodes' certificates are verified for")
	fs.DurationVar(&cfg.TTL, "ttl", cfg.TTL, "certificate lifetime to ask for (0: the nodes' default)")
	fs.StringVar(&inv.statusAddr, "status-addr", "", "where to serve the agent's status over HTTP (127.0.0.1:15020, istio-agent's port): /healthz/ready, /debug/status, /metrics (none: no status server)")
	fs.StringVar(&inv.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&inv.logFormat, "log-format", "text", "log format: text or json")
	reg := agent.Registration{Labels: map[string]string{}}
	var probe string
	var probeCfg agent.Probe
	// The flags of run only. A config file written for run (agent configure's
	// agent.yaml) also serves certs, which ignores them.
	runFS := fs
	if !register {
		runFS = flag.NewFlagSet("", flag.ContinueOnError)
	}
	runFS.StringVar(&reg.Group, "group", "", "WorkloadGroup (in the certificate's namespace) to register the workload in")
	runFS.StringVar(&reg.Address, "address", "", "the workload's IP address, where the mesh reaches it")
	runFS.Var(repeatable(func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("--label %q: want key=value", v)
		}
		reg.Labels[k] = val
		return nil
	}), "label", "label k=v added to the group's (repeatable)")
	dnsAddr := runFS.String("dns-addr", "", "where the DNS proxy listens, UDP and TCP (127.0.0.1:15053, as istio-agent's): it answers the mesh's host names from the node's name table and passes other names on (none: no DNS proxy)")
	dnsUpstream := runFS.String("dns-upstream", "", "resolvers (host:port,...) the DNS proxy passes names it does not know to (default: --dns-resolv-conf's nameservers)")
	dnsDomain := runFS.String("dns-domain", "cluster.local", "the mesh's DNS suffix, the nodes' --domain (istio-agent's DOMAIN_SUFFIX): Kubernetes services under svc.<domain> are also answered by their short names")
	resolvConf := runFS.String("dns-resolv-conf", "/etc/resolv.conf", "the resolver configuration the DNS proxy follows: its nameservers are the upstreams (unless --dns-upstream), and a mesh name with its first search domain appended is answered as an alias of the name")
	runFS.StringVar(&reg.Network, "network", "", "the workload's network")
	runFS.StringVar(&reg.Locality, "locality", "", "the workload's locality, region/zone/subzone")
	runFS.StringVar(&probe, "probe", "", "readiness probe: tcp:host:port, grpc:host:port[/service], an http:// or https:// URL, or exec:command args, quoted as a shell quotes words (none: always ready)")
	runFS.BoolVar(&reg.ProbeFromGroup, "probe-from-group", false, "follow the WorkloadGroup's probe as it changes (the --probe flags are the probe until the group arrives; what navarch agent configure writes)")
	runFS.DurationVar(&probeCfg.Period, "probe-period", 10*time.Second, "time between probes")
	runFS.DurationVar(&probeCfg.Timeout, "probe-timeout", time.Second, "timeout of one probe")
	runFS.IntVar(&probeCfg.FailureThreshold, "probe-failures", 3, "consecutive failures that make the workload unready")
	runFS.IntVar(&probeCfg.SuccessThreshold, "probe-successes", 1, "consecutive successes that make it ready again")
	runFS.DurationVar(&probeCfg.InitialDelay, "probe-initial-delay", 0, "time before the first probe (the workload is unready until it passes)")
	runFS.Var(repeatable(func(v string) error {
		k, val, ok := strings.Cut(v, ":")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return fmt.Errorf("--probe-header %q: want \"Name: value\"", v)
		}
		if probeCfg.Header == nil {
			probeCfg.Header = http.Header{}
		}
		probeCfg.Header.Add(k, strings.TrimSpace(val))
		return nil
	}), "probe-header", "header \"Name: value\" sent with an http(s) probe (repeatable)")
	if !register {
		fs.BoolVar(&inv.once, "once", false, "fetch a certificate, write the files and exit")
		fs.BoolVar(&inv.identityCheck, "identity-check", false, "check the files in --out (key matches, chains to root-cert.pem, not expired), print their identity and exit")
	}
	configFile := fs.String("config", "", "YAML file of flag values, keyed by flag name (what navarch agent configure writes); flags on the command line win")
	if pos, err := parseFlags(fs, args); err != nil {
		return nil, err
	} else if len(pos) > 0 {
		return nil, errors.New(agentUsage)
	}
	if err := applyConfigFile(fs, *configFile, func(key string) bool { return runFS != fs && runFS.Lookup(key) != nil }); err != nil {
		return nil, err
	}
	cfg.Servers = nil
	for _, s := range strings.Split(*servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Servers = append(cfg.Servers, s)
		}
	}
	if !register {
		return inv, nil
	}
	if probe != "" {
		p, err := agent.ParseProbe(probe)
		if err != nil {
			return nil, err
		}
		p.Period, p.Timeout, p.FailureThreshold, p.SuccessThreshold = probeCfg.Period, probeCfg.Timeout, probeCfg.FailureThreshold, probeCfg.SuccessThreshold
		p.InitialDelay, p.Header = probeCfg.InitialDelay, probeCfg.Header
		reg.Probe = p
	}
	if *dnsAddr != "" {
		reg.DNS = &agent.DNS{Addr: *dnsAddr, Domain: *dnsDomain}
		for _, u := range strings.Split(*dnsUpstream, ",") {
			if u = strings.TrimSpace(u); u != "" {
				if _, _, err := net.SplitHostPort(u); err != nil {
					return nil, fmt.Errorf("agent: --dns-upstream must be host:port,..., got %q", u)
				}
				reg.DNS.Upstreams = append(reg.DNS.Upstreams, u)
			}
		}
		servers, search, err := agent.ResolvConf(*resolvConf)
		if err != nil && len(reg.DNS.Upstreams) == 0 {
			return nil, fmt.Errorf("agent: the DNS proxy's upstreams: %w (give --dns-upstream)", err)
		}
		if len(reg.DNS.Upstreams) == 0 {
			reg.DNS.Upstreams = servers
		}
		reg.DNS.Search = search
	}
	if err := reg.Validate(); err != nil {
		return nil, err
	}
	inv.reg = &reg
	return inv, nil
}

// identityCheck prints what the certificate files of dir hold, and fails unless they
// are usable now.
func identityCheck(w io.Writer, dir string) error {
	if dir == "" {
		return errors.New("--identity-check needs --out")
	}
	c, err := agent.Load(dir)
	if err != nil {
		return err
	}
	leaf := c.Leaf()
	fmt.Fprintf(w, "identity:  %s\nexpires:   %s\n", c.Identity, leaf.NotAfter.UTC().Format(time.RFC3339))
	for _, r := range c.Roots {
		fmt.Fprintf(w, "root:      %s  sha256 %s\n", r.Subject, agent.Fingerprint(r))
	}
	if !c.Valid(time.Now()) {
		return fmt.Errorf("the certificate in %s is not valid now (valid %s to %s)", dir, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// runAgentCheck runs a readiness probe once: `navarch agent check
// grpc:127.0.0.1:9080` exits 0 when the workload's gRPC health service says
// SERVING. It is what a WorkloadGroup's exec probe runs for a gRPC health check,
// which Istio's WorkloadGroup has no probe of its own for:
// probe: {exec: {command: [navarch, agent, check, "grpc:127.0.0.1:9080"]}}.
func runAgentCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch agent check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", time.Second, "how long the check may take")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New(agentUsage)
	}
	p, err := agent.ParseProbe(pos[0])
	if err != nil {
		return err
	}
	p.Timeout = *timeout
	if err := p.Check(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}
