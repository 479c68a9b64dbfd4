package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
)

// errDiffers is runDiff's answer when applying the documents would change
// something: exit status 1, as kubectl diff's, with nothing more on stderr.
var errDiffers = &exitStatus{code: 1}

// exitStatus is an error that sets the CLI's exit status; with err nil it prints
// nothing.
type exitStatus struct {
	code int
	err  error
}

func (e *exitStatus) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitStatus) Unwrap() error { return e.err }

// runDiff prints what applying the documents would change, as kubectl diff does: a
// unified diff of each resource as the node holds it and as it would be, in YAML,
// for those the node says would be created or configured. The node checks the
// documents first (apply --dry-run): invalid ones are an error. Exit status 0: no
// change; 1: changes; 2: an error.
func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch diff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	var docs docFlags
	docs.register(fs, "to compare with what the node holds")
	ns := fs.String("n", "", "namespace of the documents, as for apply")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if !docs.given() {
		return &exitStatus{code: 2, err: errors.New("diff needs -f <file|dir|->")}
	}
	changed, err := diffFiles(ctx, &cf, &docs, *ns, stdout, stderr)
	switch {
	case err != nil:
		return &exitStatus{code: 2, err: err}
	case changed:
		return errDiffers
	}
	return nil
}

// diffFiles prints the diffs of the documents of files and reports whether there
// were any.
func diffFiles(ctx context.Context, cf *clientFlags, docs *docFlags, ns string, stdout, stderr io.Writer) (bool, error) {
	in, err := docs.read()
	if err != nil {
		return false, err
	}
	c, err := cf.client()
	if err != nil {
		return false, err
	}
	resp, err := c.DryRunApply(ctx, ns, in)
	if err != nil {
		return false, err
	}
	printSkipped(stderr, resp.Skipped)
	wouldChange := map[string]bool{}
	for _, r := range resp.Results {
		if r.Action != "unchanged" {
			wouldChange[r.Kind+"/"+r.Namespace+"/"+r.Name] = true
		}
	}
	changed := false
	for _, f := range in {
		rs, _, err := api.Decode(f.Source, []byte(f.Data), ns)
		if err != nil {
			return false, err // the node took them: only a different build decodes otherwise
		}
		for _, r := range rs {
			if !wouldChange[r.Kind.Name+"/"+r.Meta.Namespace+"/"+r.Meta.Name] {
				continue
			}
			live, err := c.Get(ctx, r.Kind.Plural, r.Meta.Namespace, r.Meta.Name)
			if err != nil && !client.IsNotFound(err) {
				return false, err
			}
			d, err := resourceDiff(live, r)
			if err != nil {
				return false, err
			}
			if d != "" {
				changed = true
				fmt.Fprint(stdout, d)
			}
		}
	}
	return changed, nil
}

// resourceDiff is the unified diff from live (nil: none) to r, as YAML without the
// metadata the store keeps (resourceVersion, generation, creation time); "" when
// they are the same.
func resourceDiff(live, r *api.Resource) (string, error) {
	name := fmt.Sprintf("%s.%s %s/%s", r.Kind.Singular, r.Kind.Group, r.Meta.Namespace, r.Meta.Name)
	from, fromName := []string(nil), "/dev/null"
	if live != nil {
		var err error
		if from, err = diffLines(live); err != nil {
			return "", err
		}
		fromName = "live " + name
	}
	to, err := diffLines(r)
	if err != nil {
		return "", err
	}
	hunks := unifiedDiff(from, to, 3)
	if len(hunks) == 0 {
		return "", nil
	}
	return "--- " + fromName + "\n+++ applied " + name + "\n" + strings.Join(hunks, ""), nil
}

// diffLines is r as YAML lines, without the metadata the store keeps.
func diffLines(r *api.Resource) ([]string, error) {
	r = r.Clone()
	r.Meta.ResourceVersion, r.Meta.Generation, r.Meta.CreationTimestamp = "", 0, nil
	b, err := r.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if b, err = yaml.JSONToYAML(b); err != nil {
		return nil, err
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines, nil
}

// unifiedDiff returns the hunks ("@@ -a,b +c,d @@" and their lines) that turn a into
// b, each with up to n lines of context; the lines end with "\n". It diffs by the
// longest common subsequence, which is fine for one resource's few hundred lines.
func unifiedDiff(a, b []string, n int) []string {
	// lcs[i][j] is the length of the longest common subsequence of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		line string
		ai   int // lines of a and b before this one
		bi   int
	}
	var ops []op
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, op{' ', a[i], i, j})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i], i, j})
			i++
		default:
			ops = append(ops, op{'+', b[j], i, j})
			j++
		}
	}
	var hunks []string
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		// A hunk: from n lines before this change to n lines after the last change
		// that is within 2n lines of the one before it.
		start, end := max(0, k-n), k
		for m := k; m < len(ops); m++ {
			if ops[m].kind != ' ' {
				end = m
			} else if m-end > 2*n {
				break
			}
		}
		end = min(len(ops), end+n+1)
		var body strings.Builder
		na, nb := 0, 0
		for _, o := range ops[start:end] {
			body.WriteByte(o.kind)
			body.WriteString(o.line)
			if o.kind != '+' {
				na++
			}
			if o.kind != '-' {
				nb++
			}
		}
		hunks = append(hunks, fmt.Sprintf("@@ -%s +%s @@\n", hunkRange(ops[start].ai, na), hunkRange(ops[start].bi, nb))+body.String())
		k = end
	}
	return hunks
}

// hunkRange is a hunk header's range of count lines after the first lines (0-based
// start): "start+1,count", or "start,0" for none, as diff -u writes it.
func hunkRange(first, count int) string {
	if count == 0 {
		return fmt.Sprintf("%d,0", first)
	}
	return fmt.Sprintf("%d,%d", first+1, count)
}
