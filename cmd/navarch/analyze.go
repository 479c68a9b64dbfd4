package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/node"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/registry/analyze"
	"github.com/navarch/navarch/store"
)

// runAnalyze reports configuration that is valid but will not do what it says
// (istioctl analyze's counterpart): the node's configuration and registry, with the
// documents of -f applied on top, or, with --local, those documents alone.
func runAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch analyze", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	var docs docFlags
	docs.register(fs, "to analyze as if applied")
	ns := fs.String("n", "", "namespace of the documents, as for apply")
	local := fs.Bool("local", false, "analyze the documents of -f alone, without a node")
	domain := fs.String("domain", "cluster.local", "with --local: the DNS suffix short host names resolve under")
	out := fs.String("o", "", "output: text (default) or json")
	failAt := fs.String("failure-threshold", "Error", "exit non-zero when a message is at this level or above (Info, Warning, Error)")
	showAt := fs.String("output-threshold", "Info", "print only messages at this level or above")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out != "" && *out != "text" && *out != "json" {
		return fmt.Errorf("-o %s: the output is text or json", *out)
	}
	failLevel, err := analyze.ParseLevel(*failAt)
	if err != nil {
		return fmt.Errorf("--failure-threshold: %w", err)
	}
	showLevel, err := analyze.ParseLevel(*showAt)
	if err != nil {
		return fmt.Errorf("--output-threshold: %w", err)
	}
	if *local && !docs.given() {
		return errors.New("analyze --local needs -f <file|dir|->")
	}
	var in []client.File
	if docs.given() {
		if in, err = docs.read(); err != nil {
			return err
		}
	}
	var resp *client.AnalyzeResponse
	if *local {
		resp, err = analyzeLocal(in, *ns, *domain, stderr)
	} else {
		var c *client.Client
		if c, err = cf.client(); err != nil {
			return err
		}
		resp, err = c.Analyze(ctx, *ns, in)
	}
	if err != nil {
		return err
	}

	var shown []client.AnalysisMessage
	failing := 0
	for _, m := range resp.Messages {
		level, err := analyze.ParseLevel(m.Level)
		if err != nil {
			return fmt.Errorf("the node sent a message of %w", err)
		}
		if level >= showLevel {
			shown = append(shown, m)
		}
		if level >= failLevel {
			failing++
		}
	}
	if *out == "json" {
		if shown == nil {
			shown = []client.AnalysisMessage{}
		}
		if err := printJSON(stdout, shown); err != nil {
			return err
		}
	} else {
		for _, m := range shown {
			fmt.Fprintf(stdout, "%s [%s] (%s %s/%s) %s\n", m.Level, m.Code, m.Kind, m.Namespace, m.Name, m.Message)
		}
		if len(shown) == 0 {
			fmt.Fprintln(stdout, "No issues found.")
		}
	}
	if failing > 0 {
		return fmt.Errorf("analysis found %d issue(s) at level %s or above", failing, failLevel)
	}
	return nil
}

// analyzeLocal analyzes files as if they were everything a node held.
func analyzeLocal(files []client.File, ns, domain string, stderr io.Writer) (*client.AnalyzeResponse, error) {
	var entries []store.Entry
	var errs []error
	for _, f := range files {
		rs, skipped, err := api.Decode(f.Source, []byte(f.Data), ns)
		printSkipped(stderr, skipped)
		errs = append(errs, err)
		for _, r := range rs {
			entries = append(entries, store.Entry{Space: store.ConfigSpace, Resource: r})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	resp := node.Analysis(registry.NewSnapshot(entries, 0, domain))
	return &resp, nil
}
