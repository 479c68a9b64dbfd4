package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
)

func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch apply", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	var docs docFlags
	docs.register(fs, "to apply")
	ns := fs.String("n", "", "namespace of the documents: those that name none go there, and naming another is an error (default: what each names, else \"default\")")
	dryRun := fs.Bool("dry-run", false, "have the node check the documents and say what applying them would do, writing nothing")
	wait := fs.Bool("wait", false, "wait until every node's proxies have the configuration applied (navarch wait)")
	timeout := fs.Duration("timeout", 30*time.Second, "with --wait, how long to wait")
	strict := fs.Bool("warnings-as-errors", false, "exit non-zero when the node warns of a resource, as kubectl does (what was applied stays applied; use with --dry-run to check first)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if !docs.given() {
		return errors.New("apply needs -f <file|dir|->")
	}
	in, err := docs.read()
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	apply, suffix := c.Apply, ""
	if *dryRun {
		apply, suffix = c.DryRunApply, " (dry run)"
	}
	resp, err := apply(ctx, *ns, in)
	if err != nil {
		return err
	}
	printSkipped(stderr, resp.Skipped)
	warnings := 0
	for _, r := range resp.Results {
		for _, w := range r.Warnings {
			fmt.Fprintf(stderr, "Warning: %s: %s\n", resultName(r), w)
		}
		warnings += len(r.Warnings)
		fmt.Fprintf(stdout, "%s %s%s\n", resultName(r), r.Action, suffix)
	}
	if *wait && !*dryRun {
		if err := waitSynced(ctx, c, resp.Revision, *timeout, stdout); err != nil {
			return err
		}
	}
	return warningsError(*strict, warnings)
}

// warningsError is the error of --warnings-as-errors: nil unless strict and
// there were warnings.
func warningsError(strict bool, warnings int) error {
	if !strict || warnings == 0 {
		return nil
	}
	return fmt.Errorf("%d warning(s), which --warnings-as-errors makes an error", warnings)
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch delete", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	var docs docFlags
	docs.register(fs, "naming what to delete")
	ns := fs.String("n", "", "namespace of the resources named, or of the documents of -f, which must then name no other (default \"default\")")
	wait := fs.Bool("wait", false, "wait until every node's proxies no longer have what was deleted (navarch wait)")
	timeout := fs.Duration("timeout", 30*time.Second, "with --wait, how long to wait")
	selector := fs.String("l", "", "with a kind and no names: delete the resources of the namespace whose labels match this selector, as kubectl's")
	all := fs.Bool("all", false, "with a kind and no names: delete every resource of that kind in the namespace")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var resp *client.ApplyResponse
	switch {
	case docs.given() && len(pos) == 0:
		in, err := docs.read()
		if err != nil {
			return err
		}
		if resp, err = c.DeleteFiles(ctx, *ns, in); err != nil {
			return err
		}
	case !docs.given() && (len(pos) >= 2 || len(pos) == 1 && (*selector != "" || *all)):
		k, ok := api.LookupKind(pos[0])
		if !ok {
			return fmt.Errorf("unknown kind %q; known: %s", pos[0], strings.Join(api.KindNames(), ", "))
		}
		names := pos[1:]
		if len(names) == 0 {
			if names, err = selectNames(ctx, c, k, kindNamespace(k, *ns), *selector); err != nil {
				return err
			}
			if len(names) == 0 {
				fmt.Fprintln(stdout, "No resources found.")
				return nil
			}
		} else if *selector != "" || *all {
			return errors.New("delete: give names, or -l or --all, not both")
		}
		resp = &client.ApplyResponse{}
		for _, name := range names {
			r, err := c.Delete(ctx, k.Plural, kindNamespace(k, *ns), name)
			if err != nil {
				return err
			}
			resp.Results = append(resp.Results, r.Results...)
			resp.Revision = max(resp.Revision, r.Revision)
		}
	default:
		return errors.New("delete needs -f <file|dir|->, or a kind and one or more names (or -l <selector>, or --all)")
	}
	printSkipped(stderr, resp.Skipped)
	var failed []string
	for _, r := range resp.Results {
		if r.Error != "" {
			failed = append(failed, r.Error)
			continue
		}
		fmt.Fprintf(stdout, "%s %s\n", resultName(r), r.Action)
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	if *wait && resp.Revision > 0 {
		return waitSynced(ctx, c, resp.Revision, *timeout, stdout)
	}
	return nil
}

func namespaceOr(ns string) string {
	if ns == "" {
		return api.DefaultNamespace
	}
	return ns
}

// kindNamespace is the namespace -n ns names for resources of kind k: the mesh
// config lives in istio-system whatever the default is.
func kindNamespace(k *api.Kind, ns string) string {
	if k == api.MeshConfig && ns == "" {
		return api.MeshConfigNamespace
	}
	return namespaceOr(ns)
}

// resultName prints a resource the way kubectl does: virtualservice.networking.istio.io/reviews.
func resultName(r client.Result) string {
	name := strings.ToLower(r.Kind)
	if k, ok := api.LookupKind(r.Kind); ok {
		name = k.Singular + "." + k.Group
	}
	return name + "/" + r.Name
}

func printSkipped(w io.Writer, skipped []api.Skipped) {
	for _, s := range skipped {
		fmt.Fprintf(w, "skipped %s: %s %s %s: %s\n", s.Source, s.APIVersion, s.Kind, s.Name, s.Reason)
	}
}

// selectNames lists the names of the resources of kind k in namespace ns whose
// labels match selector (all of them when it is empty).
func selectNames(ctx context.Context, c *client.Client, k *api.Kind, ns, selector string) ([]string, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, fmt.Errorf("-l %q: %w", selector, err)
	}
	rs, _, err := c.List(ctx, k.Plural, ns)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range rs {
		if sel.Matches(labels.Set(r.Meta.Labels)) {
			names = append(names, r.Meta.Name)
		}
	}
	return names, nil
}
