package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
)

// The shell completion script: bash's complete asks navarch __complete for the
// words that fit, so that it always knows this build's commands, flags and kinds,
// and the resources the node holds.
const bashCompletion = `# navarch completion for bash; for zsh, first: autoload -U +X bashcompinit && bashcompinit
_navarch() {
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$(navarch __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
}
complete -o default -F _navarch navarch
`

// subcommands are the words that follow a command, for those that take one first.
var subcommands = map[string][]string{
	"agent":        {"certs", "run", "configure", "check"},
	"bench":        scenarios,
	"ca":           {"show", "import", "rotate"},
	"credential":   {"create", "list", "delete"},
	"describe":     {"service", "workload"},
	"dev":          {"cluster", "echo", "call"},
	"members":      {"remove"},
	"proxy-config": proxyConfigViews,
	"registry":     {"sync"},
	"snapshot":     {"save", "status"},
	"token":        {"create", "list", "revoke"},
}

// byKind are the commands whose first argument is a kind, then resource names.
var byKind = []string{"get", "delete", "edit", "wait"}

func runCompletion(_ context.Context, args []string, stdout, _ io.Writer) error {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		return errors.New("usage: navarch completion bash|zsh   (source <(navarch completion bash))")
	}
	_, err := io.WriteString(stdout, bashCompletion)
	return err
}

// runComplete prints the words that may come where the last of args is being typed
// (the words after "navarch"), one a line; the shell keeps those that begin with it.
func runComplete(ctx context.Context, args []string, stdout, _ io.Writer) error {
	for _, w := range complete(ctx, args) {
		fmt.Fprintln(stdout, w)
	}
	return nil
}

// flagLine is a flag in the flag package's usage: "  -name value".
var flagLine = regexp.MustCompile(`(?m)^  -(\S+)`)

// complete returns the words that may come where the last of words is typed.
func complete(ctx context.Context, words []string) []string {
	if len(words) <= 1 {
		var names []string
		for _, c := range commands() {
			names = append(names, c.name)
		}
		return names
	}
	cur, cmd := words[len(words)-1], words[0]
	var positional []string // the words before cur that are not flags
	for _, w := range words[1 : len(words)-1] {
		if !strings.HasPrefix(w, "-") {
			positional = append(positional, w)
		}
	}
	if strings.HasPrefix(cur, "-") {
		// The command's flags, from its own usage: run it with -h.
		var usage bytes.Buffer
		run(ctx, append(append([]string{cmd}, firstOrNone(subcommands[cmd], positional)...), "-h"), io.Discard, &usage)
		var out []string
		for _, m := range flagLine.FindAllStringSubmatch(usage.String(), -1) {
			if len(m[1]) == 1 {
				out = append(out, "-"+m[1]) // -f, -n, as kubectl's
			} else {
				out = append(out, "--"+m[1])
			}
		}
		return out
	}
	if subs, ok := subcommands[cmd]; ok && len(positional) == 0 {
		return subs
	}
	if cmd == "describe" && len(positional) > 0 {
		return registryNames(ctx, words, positional[0])
	}
	if !slices.Contains(byKind, cmd) {
		return nil
	}
	if len(positional) == 0 {
		kinds := []string{"all"}
		for _, k := range api.Kinds() {
			kinds = append(kinds, k.Plural, k.Singular)
			kinds = append(kinds, k.Short...)
		}
		return kinds
	}
	return resourceNames(ctx, words, positional[0])
}

// firstOrNone is the first positional word when the command takes a subcommand.
func firstOrNone(subs, positional []string) []string {
	if len(subs) > 0 && len(positional) > 0 {
		return positional[:1]
	}
	return nil
}

// resourceNames asks the node (as the command would: --server, the token, -n, -A)
// for the names of the resources of kind; none when it does not answer within a
// second.
func resourceNames(ctx context.Context, words []string, kind string) []string {
	k, ok := api.LookupKind(kind)
	if !ok {
		return nil
	}
	c, ns, all := completionClient(words)
	if c == nil {
		return nil
	}
	namespace := kindNamespace(k, ns)
	if all {
		namespace = ""
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rs, _, err := c.List(ctx, k.Plural, namespace)
	if err != nil {
		return nil
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Meta.Name)
	}
	return names
}

// registryNames asks the node for what `describe service` (host names) or
// `describe workload` (the names of the workloads of the namespace, -n) takes.
func registryNames(ctx context.Context, words []string, what string) []string {
	c, ns, _ := completionClient(words)
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	reg, err := c.Registry(ctx)
	if err != nil {
		return nil
	}
	var names []string
	for _, s := range reg.Services {
		switch what {
		case "service", "svc":
			names = append(names, s.Host)
		case "workload", "wl":
			for _, e := range s.Endpoints {
				if e.Namespace == namespaceOr(ns) {
					names = append(names, e.Name)
				}
			}
		}
	}
	for _, e := range reg.Unselected {
		if (what == "workload" || what == "wl") && e.Namespace == namespaceOr(ns) {
			names = append(names, e.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// completionClient is the client the command being completed would use (--server,
// the token), with its -n and -A; nil when there is none.
func completionClient(words []string) (c *client.Client, ns string, all bool) {
	var cf clientFlags
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf.register(fs)
	nsFlag := fs.String("n", "", "")
	allFlag := fs.Bool("A", false, "")
	// Only these flags: the command's others (-o json, -l ...) are not known here.
	for i, w := range words[1 : len(words)-1] {
		name, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		if !strings.HasPrefix(w, "-") || !slices.Contains([]string{"n", "A", "server", "token-file", "ca-file"}, name) {
			continue
		}
		if !hasValue && name != "A" && i+2 < len(words)-1 {
			value = words[i+2]
		}
		fs.Set(name, cmp.Or(value, "true"))
	}
	c, err := cf.client()
	if err != nil {
		return nil, "", false
	}
	return c, *nsFlag, *allFlag
}
