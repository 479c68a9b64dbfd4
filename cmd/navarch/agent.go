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

const agentUsage = "usage: navarch agent certs --token-file T --out DIR [--server host:15012,...] [--ca-file root.pem | --insecure-first-fetch] [--once] [--identity-check]"

// runAgent runs the workload side: `navarch agent certs` gets the workload's
// certificate with a join token and keeps it renewed.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "certs" {
		return errors.New(agentUsage)
	}
	cfg := agent.DefaultConfig()
	fs := flag.NewFlagSet("navarch agent certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("server", strings.Join(cfg.Servers, ","), "TLS gRPC addresses of navarch nodes (host:port,...), tried in turn")
	fs.StringVar(&cfg.TokenFile, "token-file", cfg.TokenFile, "file holding the join token (navarch token create)")
	fs.StringVar(&cfg.OutDir, "out", cfg.OutDir, "directory to write cert-chain.pem, key.pem and root-cert.pem to")
	fs.StringVar(&cfg.CAFile, "ca-file", cfg.CAFile, "PEM root(s) to verify the nodes with on the first fetch (navarch ca show -o pem)")
	fs.BoolVar(&cfg.InsecureFirstFetch, "insecure-first-fetch", cfg.InsecureFirstFetch, "without --ca-file, trust the first node that answers (its roots' fingerprints are logged: compare them with navarch ca show)")
	fs.StringVar(&cfg.ServerName, "server-name", cfg.ServerName, "name the nodes' certificates are verified for")
	fs.DurationVar(&cfg.TTL, "ttl", cfg.TTL, "certificate lifetime to ask for (0: the nodes' default)")
	once := fs.Bool("once", false, "fetch a certificate, write the files and exit")
	check := fs.Bool("identity-check", false, "check the files in --out (key matches, chains to root-cert.pem, not expired), print their identity and exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if pos, err := parseFlags(fs, args[1:]); err != nil {
		return err
	} else if len(pos) > 0 {
		return errors.New(agentUsage)
	}
	if *check {
		return identityCheck(stdout, cfg.OutDir)
	}
	cfg.Servers = nil
	for _, s := range strings.Split(*servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Servers = append(cfg.Servers, s)
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
