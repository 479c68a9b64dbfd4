package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

const tokenUsage = "usage: navarch token create --workload-group <namespace/name> [--ttl 1h] | token list | token revoke <id>"

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(tokenUsage)
	}
	fs := flag.NewFlagSet("navarch token "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	out := fs.String("o", "", "output: text (default) or json")
	group := fs.String("workload-group", "", "create: the WorkloadGroup (namespace/name) whose VMs the token admits")
	ttl := fs.Duration("ttl", time.Hour, "create: how long the token is valid")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	switch {
	case args[0] == "create" && len(pos) == 0:
		if *group == "" {
			return errors.New("token create needs --workload-group <namespace/name>")
		}
		t, err := c.CreateToken(ctx, *group, *ttl)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(stdout, t)
		}
		fmt.Fprintln(stdout, t.Token)
		fmt.Fprintf(stderr, "join token %s for %s (WorkloadGroup %s), valid until %s.\nIt is shown only now: keep it (navarch agent run --token-file, or agent certs).\n",
			t.ID, t.Identity, t.WorkloadGroup, t.Expires.UTC().Format(time.RFC3339))
		return nil
	case args[0] == "list" && len(pos) == 0:
		ts, err := c.Tokens(ctx)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(stdout, ts)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tWORKLOAD GROUP\tIDENTITY\tEXPIRES\tSTATUS")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.WorkloadGroup, t.Identity, t.Expires.UTC().Format(time.RFC3339), t.Status)
		}
		return tw.Flush()
	case args[0] == "revoke" && len(pos) == 1:
		t, err := c.RevokeToken(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked join token %s (WorkloadGroup %s)\n", t.ID, t.WorkloadGroup)
		return nil
	}
	return errors.New(tokenUsage)
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
