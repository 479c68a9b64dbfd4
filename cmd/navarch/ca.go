package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/navarch/navarch/client"
)

const caUsage = "usage: navarch ca show [-o text|json|pem] | ca import --cert ca-cert.pem --key ca-key.pem [--chain cert-chain.pem] --root root-cert.pem | ca rotate [--finish]"

func runCA(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(caUsage)
	}
	fs := flag.NewFlagSet("navarch ca "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	out := fs.String("o", "text", "output: text, json, or pem (the trust bundle)")
	var run func(c *client.Client) (*client.CAInfo, error)
	switch args[0] {
	case "show":
		run = func(c *client.Client) (*client.CAInfo, error) { return c.CA(ctx) }
	case "import":
		files := importFlags(fs)
		run = func(c *client.Client) (*client.CAInfo, error) {
			req, err := files.read()
			if err != nil {
				return nil, err
			}
			return c.ImportCA(ctx, req)
		}
	case "rotate":
		finish := fs.Bool("finish", false, "end the rotation: drop the old root from the trust bundle (once every workload has renewed)")
		run = func(c *client.Client) (*client.CAInfo, error) { return c.RotateCA(ctx, *finish) }
	default:
		return errors.New(caUsage)
	}
	if pos, err := parseFlags(fs, args[1:]); err != nil {
		return err
	} else if len(pos) > 0 {
		return errors.New(caUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	info, err := run(c)
	if err != nil {
		return err
	}
	switch *out {
	case "json":
		b, _ := json.MarshalIndent(info, "", "  ")
		fmt.Fprintln(stdout, string(b))
	case "pem":
		fmt.Fprint(stdout, info.TrustBundle)
	default:
		printCA(stdout, info)
	}
	return nil
}

// caFiles are the flags of ca import: Istio's cacerts files.
type caFiles struct{ dir, cert, key, chain, root string }

func importFlags(fs *flag.FlagSet) *caFiles {
	f := &caFiles{}
	fs.StringVar(&f.dir, "dir", "", "directory holding Istio's cacerts files (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem)")
	fs.StringVar(&f.cert, "cert", "", "the intermediate's certificate (ca-cert.pem)")
	fs.StringVar(&f.key, "key", "", "its private key (ca-key.pem)")
	fs.StringVar(&f.chain, "chain", "", "its chain up to the root (cert-chain.pem), if there are intermediates in between")
	fs.StringVar(&f.root, "root", "", "the root certificate (root-cert.pem)")
	return f
}

func (f *caFiles) read() (client.CAImportRequest, error) {
	if f.dir != "" {
		for _, p := range []struct {
			path *string
			name string
		}{{&f.cert, "ca-cert.pem"}, {&f.key, "ca-key.pem"}, {&f.chain, "cert-chain.pem"}, {&f.root, "root-cert.pem"}} {
			if *p.path == "" {
				*p.path = filepath.Join(f.dir, p.name)
			}
		}
	}
	if f.cert == "" || f.key == "" || f.root == "" {
		return client.CAImportRequest{}, errors.New("ca import needs --cert, --key and --root (or --dir)")
	}
	var req client.CAImportRequest
	for _, p := range []struct {
		path     string
		dst      *string
		optional bool
	}{{f.cert, &req.Cert, false}, {f.key, &req.Key, false}, {f.chain, &req.Chain, true}, {f.root, &req.Root, false}} {
		if p.path == "" {
			continue
		}
		b, err := os.ReadFile(p.path)
		if err != nil {
			if p.optional && f.dir != "" && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return req, err
		}
		*p.dst = string(b)
	}
	return req, nil
}

// printCA prints the CA for people: fingerprints and expiry, never a key.
func printCA(w io.Writer, info *client.CAInfo) {
	fmt.Fprintf(w, "trust domain:  %s\n", info.TrustDomain)
	fmt.Fprintf(w, "signer:        %s (since %s)\n", info.Source, info.Updated.UTC().Format(time.RFC3339))
	if info.Rotating {
		fmt.Fprintf(w, "rotation:      in progress: %d roots trusted; finish with navarch ca rotate --finish once workloads have renewed\n", len(info.Roots))
	}
	fmt.Fprintf(w, "certificates:  %s by default, at most %s\n", info.CertTTL, info.MaxCertTTL)
	fmt.Fprintf(w, "kek id:        %s\n", info.KEKID)
	for i, r := range info.Roots {
		label := "root"
		if i > 0 {
			label = "previous root"
		}
		printCert(w, label, r)
	}
	for _, c := range info.Chain {
		printCert(w, "intermediate", c)
	}
}

func printCert(w io.Writer, label string, c client.CertInfo) {
	fmt.Fprintf(w, "%s:\n  subject:     %s\n", label, c.Subject)
	if c.Issuer != c.Subject {
		fmt.Fprintf(w, "  issuer:      %s\n", c.Issuer)
	}
	fmt.Fprintf(w, "  expires:     %s (%s)\n", c.NotAfter.UTC().Format(time.RFC3339), untilText(time.Until(c.NotAfter)))
	fmt.Fprintf(w, "  sha256:      %s\n", c.SHA256)
}

// untilText says how far away a time is, in days when it is days away.
func untilText(d time.Duration) string {
	switch {
	case d <= 0:
		return "expired"
	case d >= 48*time.Hour:
		return fmt.Sprintf("in %d days", int(d.Hours()/24))
	}
	return "in " + d.Round(time.Minute).String()
}
