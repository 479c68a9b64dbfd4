package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
)

// watchResources prints the resources of kind k in namespace ns (all when empty),
// only those named names if any and those whose labels sel matches, as ADDED
// events, then every change, as kubectl get --watch --output-watch-events does,
// until ctx ends. When the stream ends otherwise (its node stopped or lost its
// quorum), it goes on through the next node c was given, from the last revision
// seen (bookmarks keep it recent while nothing changes), so that no change is
// missed or shown twice; if etcd no longer keeps that revision (the stream was
// down for longer than the five minutes of history kept), it lists again and shows
// what changed meanwhile, as a Kubernetes informer relists. Given one node, the end
// of the stream is an error.
func watchResources(ctx context.Context, w io.Writer, c *client.Client, source string, k *api.Kind, ns string, names []string, sel labels.Selector, format string) error {
	p, err := newEventPrinter(w, format, ns == "")
	if err != nil {
		return err
	}
	// The node selects by labels (nodes of older builds do not: skip selects again).
	wt := &watcher{c: c, sel: client.Selection{Kind: k.Plural, Namespace: ns, Source: source, LabelSelector: sel.String(), Bookmarks: true}, p: p, shown: map[api.Key]*api.Resource{},
		skip: func(r *api.Resource) bool {
			return (len(names) > 0 && !slices.Contains(names, r.Meta.Name)) || !sel.Matches(labels.Set(r.Meta.Labels))
		}}
	// List first, so that the table's columns fit what there is now.
	items, rev, err := c.ListSelection(ctx, wt.sel)
	if err != nil {
		return err
	}
	events, err := c.Watch(ctx, wt.sel, strconv.FormatInt(rev, 10))
	if err != nil {
		return err
	}
	items = slices.DeleteFunc(items, wt.skip)
	for _, r := range items {
		p.fit(client.WatchAdded, r)
	}
	for _, r := range items {
		if err := wt.show(client.WatchAdded, r); err != nil {
			return err
		}
	}
	for {
		ev, ok := <-events
		if !ok {
			return nil // ctx ended: interrupted
		}
		if ev.Type == client.WatchError {
			if len(c.Servers()) == 1 || ctx.Err() != nil {
				return fmt.Errorf("watching %s: %s", k.Plural, ev.Error)
			}
			c.Failover()
			if events, rev, err = wt.resume(ctx, rev); err != nil {
				return fmt.Errorf("watching %s again after %s: %w", k.Plural, ev.Error, err)
			}
			continue
		}
		if rv, err := strconv.ParseInt(ev.ResourceVersion(), 10, 64); err == nil {
			rev = max(rev, rv) // where to resume from
		}
		if ev.Type == client.WatchBookmark {
			continue
		}
		r, err := ev.Resource()
		if err != nil {
			return fmt.Errorf("watching %s: %w", k.Plural, err)
		}
		if err := wt.event(ev.Type, r); err != nil {
			return err
		}
	}
}

// watcher is what watchResources has shown, and how it shows more.
type watcher struct {
	c     *client.Client
	sel   client.Selection
	p     *eventPrinter
	skip  func(*api.Resource) bool
	shown map[api.Key]*api.Resource // what the output holds now
}

// event shows a watch event of type typ for r, as a watch with a selector in
// Kubernetes does: a resource that comes to match is ADDED, one that stops
// matching is DELETED, one that never matched is not shown.
func (wt *watcher) event(typ string, r *api.Resource) error {
	was, is := wt.shown[r.Key()] != nil, !wt.skip(r) && typ != client.WatchDeleted
	switch {
	case !was && !is:
		return nil
	case !was:
		typ = client.WatchAdded
	case !is:
		typ = client.WatchDeleted
	}
	return wt.show(typ, r)
}

// show prints an event of type typ for r and records what the output holds.
func (wt *watcher) show(typ string, r *api.Resource) error {
	if typ == client.WatchDeleted {
		delete(wt.shown, r.Key())
	} else {
		wt.shown[r.Key()] = r
	}
	b, err := r.MarshalJSON()
	if err != nil {
		return err
	}
	return wt.p.print(client.WatchEvent{Type: typ, Object: b}, r)
}

// resume watches again after revision rev; when etcd no longer keeps it, it lists
// again, shows what changed since what was shown, and watches from the list. It
// returns the events and the revision they follow.
func (wt *watcher) resume(ctx context.Context, rev int64) (<-chan client.WatchEvent, int64, error) {
	events, err := wt.c.Watch(ctx, wt.sel, strconv.FormatInt(rev, 10))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusGone {
		return events, rev, err
	}
	items, rev, err := wt.c.ListSelection(ctx, wt.sel)
	if err != nil {
		return nil, 0, err
	}
	if events, err = wt.c.Watch(ctx, wt.sel, strconv.FormatInt(rev, 10)); err != nil {
		return nil, 0, err
	}
	listed := map[api.Key]bool{}
	for _, r := range items {
		listed[r.Key()] = true
		typ := client.WatchModified
		if old := wt.shown[r.Key()]; old != nil && old.Meta.ResourceVersion == r.Meta.ResourceVersion {
			continue
		}
		if err := wt.event(typ, r); err != nil {
			return nil, 0, err
		}
	}
	for key, r := range wt.shown {
		if !listed[key] {
			if err := wt.show(client.WatchDeleted, r); err != nil {
				return nil, 0, err
			}
		}
	}
	return events, rev, nil
}

// eventPrinter prints watch events in one of get's formats: table rows with an
// EVENT column (the columns widen as longer values come, since the rows are printed
// as they arrive), JSON lines ({"type":..., "object":...}), YAML documents, or
// "EVENT kind/name".
type eventPrinter struct {
	w             io.Writer
	format        string
	withNamespace bool
	widths        []int
	header        bool
}

func newEventPrinter(w io.Writer, format string, withNamespace bool) (*eventPrinter, error) {
	switch format {
	case "", "table", "wide", "json", "yaml", "name":
		return &eventPrinter{w: w, format: format, withNamespace: withNamespace}, nil
	}
	return nil, errors.New("-o must be table, yaml, json or name")
}

func (p *eventPrinter) print(ev client.WatchEvent, r *api.Resource) error {
	switch p.format {
	case "json", "yaml":
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if p.format == "json" {
			_, err = fmt.Fprintf(p.w, "%s\n", b)
			return err
		}
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "---\n%s", b)
		return err
	case "name":
		_, err := fmt.Fprintf(p.w, "%s %s.%s/%s\n", ev.Type, r.Kind.Singular, r.Kind.Group, r.Meta.Name)
		return err
	}
	if !p.header {
		p.header = true
		if err := p.row(p.headerCells()); err != nil {
			return err
		}
	}
	return p.row(p.cells(ev.Type, r))
}

func (p *eventPrinter) headerCells() []string {
	if p.withNamespace {
		return []string{"EVENT", "KIND", "NAMESPACE", "NAME", "SUMMARY", "AGE"}
	}
	return []string{"EVENT", "KIND", "NAME", "SUMMARY", "AGE"}
}

func (p *eventPrinter) cells(typ string, r *api.Resource) []string {
	age := "-"
	if t := r.Meta.CreationTimestamp; t != nil {
		age = shortDuration(time.Since(*t))
	}
	if p.withNamespace {
		return []string{typ, r.Kind.Name, r.Meta.Namespace, r.Meta.Name, summary(r), age}
	}
	return []string{typ, r.Kind.Name, r.Meta.Name, summary(r), age}
}

// fit widens the table's columns for the row of an event of type typ for r, before
// it is printed.
func (p *eventPrinter) fit(typ string, r *api.Resource) {
	p.widen(p.headerCells())
	p.widen(p.cells(typ, r))
	p.widen([]string{client.WatchModified}) // the longest event type
}

func (p *eventPrinter) widen(cells []string) {
	if p.widths == nil {
		p.widths = make([]int, len(cells))
	}
	for i, c := range cells {
		p.widths[i] = max(p.widths[i], len(c))
	}
}

// row prints cells padded to the widest value each column has had.
func (p *eventPrinter) row(cells []string) error {
	p.widen(cells)
	var b strings.Builder
	for i, c := range cells {
		if i == len(cells)-1 {
			b.WriteString(c)
			break
		}
		fmt.Fprintf(&b, "%-*s   ", p.widths[i], c)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(p.w, b.String())
	return err
}
