package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/navarch/navarch/agent"
)

const agentUsage = `usage: navarch agent certs --token-file T --out DIR [--server host:15012,...] [--ca-file root.pem | --insecure-first-fetch] [--once] [--identity-check]
       navarch agent run --token-file T --out DIR --group NAME --address IP [--label k=v]... [--network N] [--locality r/z/s] [--probe tcp:h:p|grpc:h:p|http://...] [certs flags]`

// runAgent runs the workload side: `navarch agent certs` gets the workload's
// certificate with a join token and keeps it renewed; `navarch agent run` does that
// and keeps the workload registered in its WorkloadGroup, with its probe's health.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "certs" && args[0] != "run") {
		return errors.New(agentUsage)
	}
	register := args[0] == "run"
	cfg := agent.DefaultConfig()
	fs := flag.NewFlagSet("navarch agent "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("server", strings.Join(cfg.Servers, ","), "TLS gRPC addresses of navarch nodes (host:port,...), tried in turn")
	fs.StringVar(&cfg.TokenFile, "token-file", cfg.TokenFile, "file holding the join token (navarch token create)")
	fs.StringVar(&cfg.OutDir, "out", cfg.OutDir, "directory to write cert-chain.pem, key.pem and root-cert.pem to")
	fs.StringVar(&cfg.CAFile, "ca-file", cfg.CAFile, "PEM root(s) to verify the nodes with on the first fetch (navarch ca show -o pem)")
	fs.BoolVar(&cfg.InsecureFirstFetch, "insecure-first-fetch", cfg.InsecureFirstFetch, "without --ca-file, trust the first node that answers (its roots' fingerprints are logged: compare them with navarch ca show)")
	fs.StringVar(&cfg.ServerName, "server-name", cfg.ServerName, "name the nodes' certificates are verified for")
	fs.DurationVar(&cfg.TTL, "ttl", cfg.TTL, "certificate lifetime to ask for (0: the nodes' default)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	var once, check *bool
	reg := agent.Registration{Labels: map[string]string{}}
	var probe *string
	var probeCfg agent.Probe
	if register {
		fs.StringVar(&reg.Group, "group", "", "WorkloadGroup (in the certificate's namespace) to register the workload in")
		fs.StringVar(&reg.Address, "address", "", "the workload's IP address, where the mesh reaches it")
		fs.Func("label", "label k=v added to the group's (repeatable)", func(v string) error {
			k, val, ok := strings.Cut(v, "=")
			if !ok || k == "" {
				return fmt.Errorf("--label %q: want key=value", v)
			}
			reg.Labels[k] = val
			return nil
		})
		fs.StringVar(&reg.Network, "network", "", "the workload's network")
		fs.StringVar(&reg.Locality, "locality", "", "the workload's locality, region/zone/subzone")
		probe = fs.String("probe", "", "readiness probe: tcp:host:port, grpc:host:port[/service] or an http:// URL (none: always ready)")
		fs.DurationVar(&probeCfg.Period, "probe-period", 10*time.Second, "time between probes")
		fs.DurationVar(&probeCfg.Timeout, "probe-timeout", time.Second, "timeout of one probe")
		fs.IntVar(&probeCfg.FailureThreshold, "probe-failures", 3, "consecutive failures that make the workload unready")
		fs.IntVar(&probeCfg.SuccessThreshold, "probe-successes", 1, "consecutive successes that make it ready again")
	} else {
		once = fs.Bool("once", false, "fetch a certificate, write the files and exit")
		check = fs.Bool("identity-check", false, "check the files in --out (key matches, chains to root-cert.pem, not expired), print their identity and exit")
	}
	if pos, err := parseFlags(fs, args[1:]); err != nil {
		return err
	} else if len(pos) > 0 {
		return errors.New(agentUsage)
	}
	if check != nil && *check {
		return identityCheck(stdout, cfg.OutDir)
	}
	cfg.Servers = nil
	for _, s := range strings.Split(*servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Servers = append(cfg.Servers, s)
		}
	}
	if probe != nil && *probe != "" {
		p, err := agent.ParseProbe(*probe)
		if err != nil {
			return err
		}
		p.Period, p.Timeout, p.FailureThreshold, p.SuccessThreshold = probeCfg.Period, probeCfg.Timeout, probeCfg.FailureThreshold, probeCfg.SuccessThreshold
		reg.Probe = p
	}
	if register {
		if err := reg.Validate(); err != nil {
			return err
		}
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	if register {
		// Registration reads the certificate files the certificate loop writes.
		rerr := make(chan error, 1)
		go func() { rerr <- a.Register(ctx, reg) }()
		err := a.Run(ctx)
		return errors.Join(err, <-rerr)
	}
	if !*once {
		return a.Run(ctx)
	}
	certs, err := a.Fetch(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s until %s in %s\n", certs.Identity, certs.Leaf().NotAfter.UTC().Format(time.RFC3339), cfg.OutDir)
	return nil
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
