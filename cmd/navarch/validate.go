package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/navarch/navarch/api"
)

// runValidate checks files as apply would, with no node: what a CI job runs before
// applying (istioctl validate's counterpart).
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var docs docFlags
	docs.register(fs, "to check")
	ns := fs.String("n", "", "namespace of the documents, as for apply")
	strict := fs.Bool("warnings-as-errors", false, "exit non-zero when a valid document is warned of")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if !docs.given() {
		return errors.New("validate needs -f <file|dir|->")
	}
	in, err := docs.read()
	if err != nil {
		return err
	}
	var errs []error
	warnings := 0
	for _, f := range in {
		rs, skipped, err := api.Decode(f.Source, []byte(f.Data), *ns)
		printSkipped(stderr, skipped)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rs {
			ws := api.Warnings(r)
			for _, w := range ws {
				fmt.Fprintf(stderr, "Warning: %s: %v\n", f.Source, w)
			}
			warnings += len(ws)
		}
		fmt.Fprintf(stdout, "%s: %d resources valid\n", f.Source, len(rs))
	}
	return errors.Join(append(errs, warningsError(*strict, warnings))...)
}
