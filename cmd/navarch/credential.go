package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
)

const credentialUsage = "usage: navarch credential create <name> [-n namespace] --cert cert.pem --key key.pem [--ca ca.pem] | credential list | credential delete <name> [-n namespace]"

// runCredential manages gateway credentials: the TLS key pairs a Gateway server's
// credentialName names (Istio's Kubernetes Secrets; kubectl create secret tls).
func runCredential(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(credentialUsage)
	}
	fs := flag.NewFlagSet("navarch credential "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	ns := fs.String("n", api.DefaultNamespace, "namespace of the credential: the gateway's")
	cert := fs.String("cert", "", "create: PEM certificate chain (tls.crt)")
	key := fs.String("key", "", "create: PEM private key of the certificate (tls.key)")
	caFile := fs.String("ca", "", "create: PEM CA certificates that client certificates must chain to (ca.crt), for MUTUAL servers")
	out := fs.String("o", "", "output: text (default) or json")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	switch {
	case args[0] == "create" && len(pos) == 1:
		if *cert == "" || *key == "" {
			return errors.New("credential create needs --cert and --key")
		}
		req := client.CredentialRequest{Namespace: *ns, Name: pos[0]}
		for _, f := range []struct {
			path string
			into *string
		}{{*cert, &req.Cert}, {*key, &req.Key}, {*caFile, &req.CA}} {
			if f.path == "" {
				continue
			}
			b, err := os.ReadFile(f.path)
			if err != nil {
				return err
			}
			*f.into = string(b)
		}
		info, err := c.PutCredential(ctx, req)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(stdout, info)
		}
		fmt.Fprintf(stdout, "credential %s/%s stored: %s, valid until %s\n", info.Namespace, info.Name, info.Subject, info.NotAfter.UTC().Format(time.RFC3339))
		return nil
	case args[0] == "list" && len(pos) == 0:
		list, err := c.Credentials(ctx)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tSUBJECT\tDNS NAMES\tNOT AFTER\tCA")
		for _, i := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", i.Namespace, i.Name, i.Subject, strings.Join(i.DNSNames, ","), i.NotAfter.UTC().Format(time.RFC3339), i.HasCA)
		}
		return tw.Flush()
	case args[0] == "delete" && len(pos) == 1:
		if err := c.DeleteCredential(ctx, *ns, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "credential %s/%s deleted\n", *ns, pos[0])
		return nil
	}
	return errors.New(credentialUsage)
}
