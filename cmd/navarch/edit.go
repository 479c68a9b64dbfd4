package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
)

const editHeader = `# Edit the resource below and save it to apply it; lines beginning with '#' are
# ignored, and an empty file cancels the edit. It is applied only over the
# resourceVersion shown: if the resource changes meanwhile, nothing is written.
#
`

// runEdit opens a resource in an editor and applies what is saved, as kubectl edit
// does: $NAVARCH_EDITOR, else $EDITOR, else vi, run by sh so that it may carry
// arguments ("code --wait"). The write is a compare-and-swap on the resourceVersion
// read. Invalid YAML or configuration opens the editor again with the error on
// top; saving it unchanged gives up, keeping the file. Exit status 0: applied, or
// nothing changed; 1: not applied.
func runEdit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch edit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	ns := fs.String("n", "", "namespace (default \"default\")")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errors.New("usage: navarch edit <kind> <name> [-n namespace]")
	}
	k, ok := api.LookupKind(pos[0])
	if !ok {
		return fmt.Errorf("unknown kind %q; known: %s", pos[0], strings.Join(api.KindNames(), ", "))
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	live, err := c.Get(ctx, k.Plural, kindNamespace(k, *ns), pos[1])
	if err != nil {
		return err
	}
	b, err := live.MarshalJSON()
	if err != nil {
		return err
	}
	original, err := yaml.JSONToYAML(b)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "navarch-edit-*.yaml")
	if err != nil {
		return err
	}
	path := f.Name()
	f.Close()
	keep := false
	defer func() {
		if !keep {
			os.Remove(path)
		}
	}()

	content, problem := original, ""
	for {
		header := editHeader
		if problem != "" {
			header = "# " + strings.ReplaceAll(strings.TrimSpace(problem), "\n", "\n# ") + "\n#\n" + editHeader
		}
		if err := os.WriteFile(path, append([]byte(header), content...), 0o600); err != nil {
			return err
		}
		if err := runEditor(ctx, path, stderr); err != nil {
			return err
		}
		saved, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		edited := stripComments(saved)
		switch {
		case len(bytes.TrimSpace(edited)) == 0 || bytes.Equal(edited, stripComments(original)):
			fmt.Fprintln(stdout, "Edit cancelled, no changes made.")
			return nil
		case problem != "" && bytes.Equal(edited, stripComments(content)):
			keep = true
			return fmt.Errorf("%s (your changes are in %s)", strings.TrimSpace(problem), path)
		}
		content = edited
		name, err := applyEdited(ctx, c, live, edited)
		if err == nil {
			fmt.Fprintf(stdout, "%s edited\n", name)
			return nil
		}
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == 409 { // the resource changed: editing again cannot fix it
			keep = true
			return fmt.Errorf("%w (your changes are in %s; edit the resource again)", err, path)
		}
		problem = err.Error()
	}
}

// applyEdited applies the edited YAML of live, which must still be that resource,
// and returns its name as kubectl prints it.
func applyEdited(ctx context.Context, c *client.Client, live *api.Resource, edited []byte) (string, error) {
	rs, _, err := api.Decode("edited", edited, live.Meta.Namespace)
	if err != nil {
		return "", err
	}
	if len(rs) != 1 || rs[0].Key() != live.Key() {
		return "", fmt.Errorf("the file must hold %s alone: its kind, namespace and name cannot change", live.Key())
	}
	resp, err := c.Apply(ctx, live.Meta.Namespace, []client.File{{Source: "edited", Data: string(edited)}})
	if err != nil {
		return "", err
	}
	return resultName(resp.Results[0]), nil
}

// runEditor edits path with the user's editor, on the terminal's stdin and stdout.
func runEditor(ctx context.Context, path string, stderr io.Writer) error {
	editor := os.Getenv("NAVARCH_EDITOR")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", editor+` "$1"`, "sh", path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the editor (%s) failed: %w", editor, err)
	}
	return nil
}

// stripComments drops the lines that begin with '#'.
func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("#")) {
			out = append(out, line...)
		}
	}
	return out
}
