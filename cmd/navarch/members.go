package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
)

func runMembers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch members", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	out := fs.String("o", "", "output: table (default) or json")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		if pos[0] != "remove" || len(pos) != 2 {
			return errors.New("usage: navarch members [remove <name>]")
		}
		if err := c.RemoveMember(ctx, pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s\n", pos[1])
		return nil
	}
	ms, err := c.Members(ctx)
	if err != nil {
		return err
	}
	if *out == "json" {
		b, _ := json.MarshalIndent(ms, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tGOSSIP\tETCD\tXDS\tPROXIES\tREVISION\tVERSION")
	for _, m := range ms {
		name := m.Name
		if m.Self {
			name += " *"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", name, m.Gossip, m.Etcd, dash(m.XDS), m.Proxies, m.Revision, dash(m.Version))
	}
	return tw.Flush()
}

func runLeave(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch leave", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if len(c.Servers()) != 1 {
		return errors.New("leave: name the one node to leave with --server")
	}
	if err := c.Leave(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "the node left the cluster and is stopping")
	return nil
}
