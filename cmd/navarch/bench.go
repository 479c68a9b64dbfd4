package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/navarch/navarch/bench"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/node/devcluster"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: navarch bench convergence|failover|churn|memory|apply|csr|vm|watch [flags]")
	}
	// The load generator holds every simulated proxy's state and shares the machine's
	// cores with the nodes it measures: collecting garbage less often keeps its own
	// CPU off the figures (it may use a few GiB more). Nodes run with Go's default.
	debug.SetGCPercent(400)
	scenario := args[0]
	if !slices.Contains(scenarios, scenario) {
		return fmt.Errorf("unknown scenario %q: %s", scenario, strings.Join(scenarios, ", "))
	}
	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet("navarch bench "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Proxies, "proxies", cfg.Proxies, "simulated proxies")
	fs.IntVar(&cfg.Services, "services", cfg.Services, "services in the mesh")
	fs.IntVar(&cfg.Endpoints, "endpoints", cfg.Endpoints, "endpoints per service")
	fs.IntVar(&cfg.Rate, "rate", cfg.Rate, "churn: endpoint changes per second")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "churn and apply: how long to run")
	fs.IntVar(&cfg.Writers, "writers", cfg.Writers, "apply: concurrent writers; watch: changes to make")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "csr: concurrent clients; watch: API watches to open")
	fs.StringVar(&cfg.CSRTarget, "csr-target", cfg.CSRTarget, "csr, with --target: TLS gRPC address (host:15012) of the node to send CSRs to")
	fs.BoolVar(&cfg.Delta, "delta", cfg.Delta, "proxies use Delta xDS instead of SotW")
	fs.StringVar(&cfg.IstioVersion, "istio-version", "", "with --wildcard: the ISTIO_VERSION proxies send, as istio-agent's Envoy (istio-proxy) does, so they get Istio's telemetry filters")
	fs.BoolVar(&cfg.GRPCClients, "grpc-clients", false, "proxies use grpc-go's client instead of the load generator's own HTTP/2 streams (which cost the machine less CPU)")
	wildcard := fs.Bool("wildcard", false, "proxies subscribe as Envoy does (every listener and cluster) instead of as grpc-go does")
	fs.IntVar(&cfg.Classes, "classes", cfg.Classes, "spread proxies over this many label sets, each a proxy class of its own (an AuthorizationPolicy selects by the label)")
	fs.BoolVar(&cfg.UnselectedClasses, "unselected", false, "with --classes: select by nothing, so the label sets share one class")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on each wait")
	fs.IntVar(&cfg.Repeat, "repeat", 1, "convergence: make this many changes on the connected proxies, --settle apart (default 1s), and report the run with the median p99 and every run")
	fs.DurationVar(&cfg.Settle, "settle", 0, "convergence: wait this long after the proxies are connected before the change (e.g. to start a profiler on the nodes)")
	nodes := fs.Int("nodes", 3, "nodes of the local cluster the scenario starts (without --target)")
	fs.StringVar(&cfg.Consul, "consul", "", "churn: register services and change endpoints in this Consul agent (HTTP address); a local cluster is started with --consul-address")
	target := fs.String("target", "", "xDS servers to load (host:port,...), instead of starting a local cluster")
	apiAddr := fs.String("api", "", "with --target: a navarch node's API address, for scenarios that change configuration (https:// checked against $NAVARCH_CA_FILE)")
	token := fs.String("token-file", os.Getenv("NAVARCH_TOKEN_FILE"), "with --api: the admin token file")
	pids := fs.String("pids", "", "with --target: PIDs of the node processes (comma-separated), for their CPU and memory")
	out := fs.String("o", "", "output: text (default) or json")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's CPU profile to this file")
	keep := fs.String("dir", "", "directory for the local cluster (default: a temporary one, removed afterwards)")
	if _, err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *wildcard {
		cfg.Mode = bench.Wildcard
	}
	cfg.Progress = progressLine(stderr)
	if *target != "" {
		if err := useTargets(&cfg, *target, *apiAddr, *token, *pids); err != nil {
			return err
		}
	} else {
		cleanup, err := useLocalCluster(ctx, &cfg, *nodes, *keep, stderr)
		if err != nil {
			return err
		}
		defer cleanup()
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return runAndReport(ctx, scenario, cfg, *cpuProfile, *out, stdout, stderr)
}

// runAndReport runs the scenario, with the load generator's CPU profile when asked
// for, and prints its result (text or JSON) and the load generator's CPU time.
func runAndReport(ctx context.Context, scenario string, cfg bench.Config, cpuProfile, out string, stdout, stderr io.Writer) error {
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var self0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	result, err := runScenario(ctx, scenario, cfg)
	var self1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	fmt.Fprintf(stderr, "\r\033[Kload generator: %.1f CPU seconds\n", cpuSeconds(self1)-cpuSeconds(self0))
	fmt.Fprint(stderr, "\r\033[K")
	if err != nil {
		return err
	}
	if out == "json" {
		b, _ := json.Marshal(result)
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	printResult(stdout, scenario, result)
	return nil
}

// useTargets points the scenario at running xDS servers (and, for scenarios that
// change configuration, a node's API).
func useTargets(cfg *bench.Config, target, apiAddr, tokenFile, pids string) error {
	cfg.Targets = strings.Split(target, ",")
	if apiAddr != "" {
		tok := os.Getenv("NAVARCH_TOKEN")
		if tokenFile != "" {
			b, err := os.ReadFile(tokenFile)
			if err != nil {
				return err
			}
			tok = strings.TrimSpace(string(b))
		}
		cfg.API = client.New(apiAddr, tok)
		if f := os.Getenv("NAVARCH_CA_FILE"); f != "" { // an https:// --api
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if err := cfg.API.TrustPEM(b); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
	}
	for _, p := range strings.Split(pids, ",") {
		if pid, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
			cfg.PIDs = append(cfg.PIDs, pid)
		}
	}
	return nil
}

// useLocalCluster starts a local cluster of nodes for the scenario and points it there;
// cleanup stops the cluster.
func useLocalCluster(ctx context.Context, cfg *bench.Config, nodes int, dir string, stderr io.Writer) (cleanup func(), err error) {
	var extra []string
	if cfg.Consul != "" {
		extra = []string{"--consul-address", cfg.Consul}
	}
	c, cleanup, err := benchCluster(ctx, nodes, dir, stderr, extra...)
	if err != nil {
		return nil, err
	}
	for _, n := range c.Nodes() {
		cfg.Targets = append(cfg.Targets, n.XDS)
		cfg.TLSTargets = append(cfg.TLSTargets, n.XDSTLS)
		cfg.NodeAPIs = append(cfg.NodeAPIs, client.New(n.HTTP, c.Token()))
		cfg.PIDs = append(cfg.PIDs, n.PID)
	}
	cfg.API = client.New(c.Nodes()[0].HTTP, c.Token())
	cfg.CSRTarget = c.Nodes()[0].XDSTLS
	cfg.Kill = func(xds string) error {
		for _, n := range c.Nodes() {
			if n.XDS == xds {
				return c.Kill(n.Name)
			}
		}
		return fmt.Errorf("no node serves %s", xds)
	}
	return cleanup, nil
}

func cpuSeconds(r syscall.Rusage) float64 {
	return float64(r.Utime.Sec+r.Stime.Sec) + float64(r.Utime.Usec+r.Stime.Usec)/1e6
}

// scenarios are the names runScenario knows.
var scenarios = []string{"convergence", "failover", "churn", "memory", "apply", "csr", "vm", "watch"}

func runScenario(ctx context.Context, scenario string, cfg bench.Config) (any, error) {
	switch scenario {
	case "convergence":
		return bench.Convergence(ctx, cfg)
	case "failover":
		return bench.Failover(ctx, cfg)
	case "churn":
		return bench.Churn(ctx, cfg)
	case "memory":
		return bench.Memory(ctx, cfg)
	case "apply":
		return bench.Apply(ctx, cfg)
	case "csr":
		return bench.CSR(ctx, cfg)
	case "vm":
		return bench.VMs(ctx, cfg)
	case "watch":
		return bench.Watch(ctx, cfg)
	}
	return nil, fmt.Errorf("unknown scenario %q: %s", scenario, strings.Join(scenarios, ", "))
}

// benchCluster starts a local cluster for a scenario.
func benchCluster(ctx context.Context, nodes int, dir string, stderr io.Writer, extra ...string) (*devcluster.Cluster, func(), error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	temp := dir == ""
	if temp {
		if dir, err = os.MkdirTemp("", "navarch-bench-"); err != nil {
			return nil, nil, err
		}
	}
	fmt.Fprintf(stderr, "starting a local cluster of %d nodes in %s\n", nodes, dir)
	c, err := devcluster.Start(ctx, devcluster.Config{Binary: bin, Dir: dir, Nodes: nodes, ExtraArgs: append([]string{"--log-level", "warn"}, extra...)})
	if err != nil {
		return nil, nil, err
	}
	return c, func() {
		c.Stop()
		if temp {
			os.RemoveAll(dir)
		}
	}, nil
}

// progressLine rewrites one status line on stderr.
func progressLine(w io.Writer) func(string) {
	var last time.Time
	var lastKind string
	return func(line string) {
		// A line of a new kind ("converged: ..." after "proxies: ...") is always
		// shown; lines of one kind at most every 100 ms.
		kind, _, _ := strings.Cut(line, ":")
		if kind == lastKind && time.Since(last) < 100*time.Millisecond {
			return
		}
		last, lastKind = time.Now(), kind
		fmt.Fprintf(w, "\r\033[K%s", line)
	}
}

// printResult prints a result as aligned key: value lines.
func printResult(w io.Writer, scenario string, result any) {
	b, _ := json.Marshal(result)
	var m map[string]any
	json.Unmarshal(b, &m)
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "navarch bench %s\n", scenario)
	for _, k := range keys {
		v := m[k]
		switch n := v.(type) {
		case float64:
			if strings.HasSuffix(k, "bytes") || strings.HasSuffix(k, "_bytes") || k == "bytes_per_proxy" || k == "bytes_resent" {
				fmt.Fprintf(w, "  %-20s %s\n", k, humanBytes(int64(n)))
				continue
			}
			fmt.Fprintf(w, "  %-20s %.6g\n", k, n)
		case []any: // one line per element (convergence's runs)
			fmt.Fprintf(w, "  %s\n", k)
			for i, e := range n {
				fmt.Fprintf(w, "    %-3d %s\n", i+1, inlineResult(e))
			}
		default:
			fmt.Fprintf(w, "  %-20s %v\n", k, v)
		}
	}
}

// inlineResult renders an element of a result's list as key=value pairs.
func inlineResult(e any) string {
	m, ok := e.(map[string]any)
	if !ok {
		return fmt.Sprint(e)
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if f, ok := m[k].(float64); ok {
			parts = append(parts, fmt.Sprintf("%s=%.6g", k, f))
		} else {
			parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
		}
	}
	return strings.Join(parts, " ")
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
