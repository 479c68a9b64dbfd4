// Command navarch is the navarch control plane and its CLI in one binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand: its name, a one-line summary, and what it does with the
// arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"server", "run a control-plane node", runServer},
		{"apply", "create or update configuration from files (-f)", runApply},
		{"diff", "show what applying files (-f) would change, as a unified diff; exit 1 if anything", runDiff},
		{"analyze", "report configuration that is valid but will not do what it says (-f to add documents; --local without a node)", runAnalyze},
		{"validate", "check configuration files (-f) as apply would, without a node", runValidate},
		{"get", "list or show configuration", runGet},
		{"delete", "delete configuration, by file (-f) or by kind and name", runDelete},
		{"edit", "edit a resource in $EDITOR and apply it (over the version read, as kubectl edit)", runEdit},
		{"registry", "list every service and endpoint the mesh knows; registry sync: keep a static inventory", runRegistry},
		{"wait", "wait until every node's proxies have a resource's configuration (or --revision's)", runWait},
		{"proxy-status", "list connected proxies and what they acknowledged", runProxyStatus},
		{"proxy-config", "show the xDS resources a proxy gets", runProxyConfig},
		{"describe", "explain a service as a proxy sees it (rules, routes, mTLS, its endpoints' policies), or a workload (describe service|workload)", runDescribe},
		{"members", "list the nodes of the cluster, or remove one (members remove <name>)", runMembers},
		{"status", "the cluster's health in one look: nodes, proxies, registry sources, CA, analysis; exit 1 on any problem", runStatus},
		{"leave", "make a node leave the cluster and stop", runLeave},
		{"snapshot", "save a backup of everything the cluster keeps (snapshot save <file>), or describe one (snapshot status <file>)", runSnapshot},
		{"bootstrap", "print an xDS bootstrap listing every live node (--format grpc|envoy)", runBootstrap},
		{"ca", "show, import or rotate the mesh's certificate authority (ca show|import|rotate)", runCA},
		{"token", "create, list or revoke join tokens for the VMs of a WorkloadGroup", runToken},
		{"credential", "create, list or delete gateway credentials (what a Gateway's credentialName names)", runCredential},
		{"agent", "on a workload: get its certificate with a join token and keep it renewed (agent certs)", runAgent},
		{"bench", "measure convergence, failover, churn, memory, apply or CSR throughput (BENCH.md)", runBench},
		{"dev", "try navarch out: dev cluster (local nodes), dev echo (a gRPC server), dev call (a proxyless gRPC client)", runDev},
		{"version", "print the versions of the CLI, of the cluster's nodes and of their proxies (--remote=false: the CLI's)", runVersion},
		{"completion", "print the shell completion script: source <(navarch completion bash) (or zsh)", runCompletion},
	}
}

// errUsage marks errors whose message is the usage text: printed without a prefix.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	if args[0] == "__complete" { // the completion script's helper, not listed
		runComplete(ctx, args[1:], stdout, stderr)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			}
			var status *exitStatus
			if errors.As(err, &status) {
				if status.err != nil {
					fmt.Fprintf(stderr, "error: %s\n", strings.TrimSpace(status.err.Error()))
				}
				return status.code
			}
			fmt.Fprintf(stderr, "error: %s\n", strings.TrimSpace(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(stderr, "error: unknown command %q; run 'navarch help'\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "navarch: a replicated service-mesh control plane that speaks Istio's configuration.")
	fmt.Fprintln(w, "\nUsage: navarch <command> [flags]\n\nCommands:")
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'navarch <command> -h' for a command's flags.")
}

// parseFlags parses args with flags allowed anywhere among the positional arguments
// (navarch get vs -n default reviews), and returns the positional ones.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if rest[0] == "--" {
			return append(positional, rest[1:]...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
