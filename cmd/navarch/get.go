package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
)

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	ns := fs.String("n", "", "namespace (default \"default\")")
	all := fs.Bool("A", false, "every namespace")
	out := fs.String("o", "", "output: table (default), yaml, json, name, or jsonpath=<template> as kubectl's (jsonpath='{.items[*].metadata.name}')")
	source := fs.String("source", "", "read the configuration a source mirrors instead of what was applied (a Kubernetes cluster's Istio resources: kubernetes.<cluster id>.config)")
	selector := fs.String("l", "", "only resources whose labels match this selector, as kubectl's (app=reviews,tier!=db, env in (a,b), !canary)")
	var watch bool
	fs.BoolVar(&watch, "w", false, "after listing, print every change until interrupted, each with its event (ADDED, MODIFIED, DELETED); one kind")
	fs.BoolVar(&watch, "watch", false, "the same as -w")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("get needs a kind: all, %s", strings.Join(api.KindNames(), ", "))
	}
	var kinds []*api.Kind // "vs,dr" names several, as kubectl takes them
	for _, name := range strings.Split(pos[0], ",") {
		if name == "all" {
			kinds = append(kinds, api.Kinds()...)
			continue
		}
		k, ok := api.LookupKind(name)
		if !ok {
			return fmt.Errorf("unknown kind %q; known: all, %s", name, strings.Join(api.KindNames(), ", "))
		}
		kinds = append(kinds, k)
	}
	if len(pos) > 1 && len(kinds) != 1 {
		return fmt.Errorf("get %s: give one kind with names", pos[0])
	}
	namespace := namespaceOr(*ns)
	if *all {
		namespace = ""
	}
	sel, err := labels.Parse(*selector)
	if err != nil {
		return fmt.Errorf("-l %q: %w", *selector, err)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if watch {
		if len(kinds) != 1 {
			return fmt.Errorf("get -w %s: give one kind", pos[0])
		}
		kns := namespace
		if namespace != "" {
			kns = kindNamespace(kinds[0], *ns)
		}
		return watchResources(ctx, stdout, c, *source, kinds[0], kns, pos[1:], sel, *out)
	}
	var items []*api.Resource
	if len(pos) > 1 {
		for _, name := range pos[1:] {
			r, err := c.GetFrom(ctx, *source, kinds[0].Plural, kindNamespace(kinds[0], *ns), name)
			if err != nil {
				return err
			}
			items = append(items, r)
		}
	} else {
		for _, k := range kinds {
			kns := namespace
			if namespace != "" {
				kns = kindNamespace(k, *ns)
			}
			rs, _, err := c.ListSelection(ctx, client.Selection{Kind: k.Plural, Namespace: kns, Source: *source, LabelSelector: sel.String()})
			if err != nil {
				return err
			}
			items = append(items, rs...)
		}
	}
	items = slices.DeleteFunc(items, func(r *api.Resource) bool { return !sel.Matches(labels.Set(r.Meta.Labels)) })
	return printResources(stdout, items, *out, namespace == "", len(pos) > 1)
}

func printResources(w io.Writer, items []*api.Resource, format string, withNamespace, single bool) error {
	if tmpl, ok := strings.CutPrefix(format, "jsonpath="); ok {
		return printJSONPath(w, listOrOne(items, single), tmpl)
	}
	switch format {
	case "", "table", "wide":
		if len(items) == 0 {
			fmt.Fprintln(w, "No resources found.")
			return nil
		}
		return printTable(w, items, withNamespace)
	case "name":
		for _, r := range items {
			fmt.Fprintf(w, "%s.%s/%s\n", r.Kind.Singular, r.Kind.Group, r.Meta.Name)
		}
		return nil
	case "json":
		b, err := json.MarshalIndent(listOrOne(items, single), "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(w, string(b))
		return nil
	case "yaml":
		for i, r := range items {
			b, err := r.MarshalJSON()
			if err != nil {
				return err
			}
			y, err := yaml.JSONToYAML(b)
			if err != nil {
				return err
			}
			if i > 0 {
				fmt.Fprintln(w, "---")
			}
			w.Write(y)
		}
		return nil
	}
	return errors.New("-o must be table, yaml, json, name or jsonpath=<template>")
}

// listOrOne is what -o json prints: the resource asked for by name, else a List of
// the items, as kubectl prints them.
func listOrOne(items []*api.Resource, single bool) any {
	if single && len(items) == 1 {
		return items[0]
	}
	return map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
}

// printJSONPath prints v through a JSONPath template, as kubectl's -o jsonpath
// does (client-go's jsonpath; a template without braces is taken as one
// expression: .spec.hosts is {.spec.hosts}).
func printJSONPath(w io.Writer, v any, tmpl string) error {
	if !strings.Contains(tmpl, "{") {
		tmpl = "{" + tmpl + "}"
	}
	jp := jsonpath.New("out")
	if err := jp.Parse(tmpl); err != nil {
		return fmt.Errorf("-o jsonpath: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var data any
	if err := json.Unmarshal(b, &data); err != nil {
		return err
	}
	if err := jp.Execute(w, data); err != nil {
		return fmt.Errorf("-o jsonpath: %w", err)
	}
	return nil
}

func printTable(w io.Writer, items []*api.Resource, withNamespace bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	header := "KIND\tNAME\tSUMMARY\tAGE"
	if withNamespace {
		header = "KIND\tNAMESPACE\tNAME\tSUMMARY\tAGE"
	}
	fmt.Fprintln(tw, header)
	for _, r := range items {
		age := "-"
		if t := r.Meta.CreationTimestamp; t != nil {
			age = shortDuration(time.Since(*t))
		}
		if withNamespace {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind.Name, r.Meta.Namespace, r.Meta.Name, summary(r), age)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Kind.Name, r.Meta.Name, summary(r), age)
		}
	}
	return tw.Flush()
}

func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
