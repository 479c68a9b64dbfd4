package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/navarch/navarch/client"
)

// caWarning is how long before its end the CA's signing certificate is a problem.
const caWarning = 30 * 24 * time.Hour

// clusterStatus is what navarch status reports (its -o json).
type clusterStatus struct {
	Members  []client.MemberInfo `json:"members"`
	Proxies  int                 `json:"proxies"`
	Rejected int                 `json:"proxies_rejecting"`
	Services int                 `json:"services"`
	// Endpoints counts the services' endpoints.
	Endpoints int                    `json:"endpoints"`
	Sources   []client.SourceListing `json:"sources,omitempty"`
	// CAExpires is when the signing certificate ends (workload certificates cannot
	// outlive it).
	CAExpires   time.Time `json:"ca_expires"`
	TrustDomain string    `json:"trust_domain"`
	Errors      int       `json:"analysis_errors"`
	Warnings    int       `json:"analysis_warnings"`
	// Problems says what is wrong, one line each; none when the cluster is healthy.
	Problems []string `json:"problems"`
}

// runStatus reports the health of the whole cluster in one look, as an operator
// checks it before and after a change: every node alive and voting under an etcd
// leader, all on one build; the proxies of every node, and those rejecting their configuration;
// registry sources that went stale; the CA's signing certificate near its end;
// configuration that analysis finds wrong. Exit status 1 when anything is wrong,
// each problem on a line of its own, for scripts and monitoring; 2 when the
// cluster could not be asked. The read-only token (--read-token-file) is enough.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	out := fs.String("o", "", "output: text (default) or json")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	st, err := gatherStatus(ctx, c)
	if err != nil {
		return &exitStatus{code: 2, err: err} // cannot tell: not the same as unhealthy
	}
	if *out == "json" {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printStatus(stdout, st)
	}
	if len(st.Problems) > 0 {
		return &exitStatus{code: 1}
	}
	return nil
}

// gatherStatus asks the cluster, through c, for what status reports.
func gatherStatus(ctx context.Context, c *client.Client) (*clusterStatus, error) {
	st := &clusterStatus{Problems: []string{}}
	problem := func(format string, args ...any) { st.Problems = append(st.Problems, fmt.Sprintf(format, args...)) }
	ms, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	st.Members = ms
	leader := false
	for _, m := range ms {
		switch {
		case m.Gossip != "alive" && m.Gossip != "-":
			problem("node %s is %s (gossip)", m.Name, m.Gossip)
		case m.Etcd == "learner":
			problem("node %s is an etcd learner, still catching up", m.Name)
		case m.Etcd == "-":
			problem("node %s has no etcd member", m.Name)
		}
		leader = leader || m.Etcd == "leader"
		if msg := backupProblem(m, time.Now()); msg != "" && m.Gossip != "failed" && m.Gossip != "left" {
			problem("%s", msg)
		}
		if left := time.Until(m.CertExpires); !m.CertExpires.IsZero() && left < caWarning {
			problem("node %s's cluster certificate ends in %s (%s): move the nodes to a cluster CA that lasts longer (docs/cluster.md)",
				m.Name, shortDuration(left), m.CertExpires.Format(time.DateOnly))
		}
	}
	if !leader {
		problem("no etcd leader: the cluster takes no writes")
	}
	builds := map[string][]string{}
	for _, m := range ms {
		if m.Version != "" {
			builds[m.Version] = append(builds[m.Version], m.Name)
		}
	}
	if len(builds) > 1 {
		var each []string
		for v, names := range builds {
			each = append(each, v+" on "+strings.Join(names, ", "))
		}
		sort.Strings(each)
		problem("the nodes run %d builds (%s): finish the rolling upgrade", len(builds), strings.Join(each, "; "))
	}

	nodes, silent := membersProxies(ctx, c, ms)
	for _, s := range silent {
		problem("the proxies of %s could not be listed", s)
	}
	for _, n := range nodes {
		for _, p := range n.proxies {
			st.Proxies++
			var rejected []string
			for typ, ts := range p.Types {
				if ts.Nacked != "" && ts.Nacked == ts.Sent {
					rejected = append(rejected, typ+": "+ts.NackError)
				}
			}
			if len(rejected) > 0 {
				st.Rejected++
				sort.Strings(rejected)
				problem("proxy %s on %s rejects its configuration (%s)", p.ID, n.name, strings.Join(rejected, "; "))
			}
		}
	}

	reg, err := c.Registry(ctx)
	if err != nil {
		return nil, err
	}
	st.Services, st.Sources = len(reg.Services), reg.Sources
	for _, s := range reg.Services {
		st.Endpoints += len(s.Endpoints)
	}
	for _, s := range reg.Sources {
		if s.Stale {
			problem("registry source %s is stale, its last entries kept: %s", s.Source, s.Error)
		}
	}

	ca, err := c.CA(ctx)
	if err != nil {
		return nil, err
	}
	st.TrustDomain = ca.TrustDomain
	if len(ca.Chain) > 0 {
		st.CAExpires = ca.Chain[0].NotAfter
		if left := time.Until(st.CAExpires); left < caWarning {
			problem("the CA's signing certificate ends in %s (%s): import or rotate one (docs/ca.md)", shortDuration(left), st.CAExpires.Format(time.DateOnly))
		}
	}

	an, err := c.Analyze(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	for _, m := range an.Messages {
		switch m.Level {
		case "Error":
			st.Errors++
		case "Warning":
			st.Warnings++
		}
	}
	if st.Errors > 0 {
		problem("configuration analysis finds %d error(s): navarch analyze", st.Errors)
	}
	return st, nil
}

func printStatus(w io.Writer, st *clusterStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tGOSSIP\tETCD\tPROXIES\tREVISION\tVERSION\tLAST BACKUP")
	for _, m := range st.Members {
		name := m.Name
		if m.Self {
			name += " *"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", name, m.Gossip, m.Etcd, m.Proxies, m.Revision, dash(m.Version), backupAge(m, time.Now()))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nproxies:   %d connected, %d rejecting their configuration\n", st.Proxies, st.Rejected)
	fmt.Fprintf(w, "registry:  %d services, %d endpoints", st.Services, st.Endpoints)
	for _, s := range st.Sources {
		state := "synced"
		if s.Stale {
			state = "stale"
		}
		fmt.Fprintf(w, "; %s %s", s.Source, state)
	}
	fmt.Fprintln(w)
	if !st.CAExpires.IsZero() {
		fmt.Fprintf(w, "ca:        %s, signing certificate valid until %s\n", st.TrustDomain, st.CAExpires.Format(time.DateOnly))
	}
	fmt.Fprintf(w, "analysis:  %d errors, %d warnings\n", st.Errors, st.Warnings)
	if len(st.Problems) == 0 {
		fmt.Fprintln(w, "\nhealthy")
		return
	}
	fmt.Fprintln(w, "\nproblems:")
	for _, p := range st.Problems {
		fmt.Fprintf(w, "- %s\n", p)
	}
}

// backupProblem says what is wrong with a node's scheduled backups at now: none
// saved, or the newest older than two intervals and the minute a failed one waits
// to be tried again. "" when all is well or the node saves none.
func backupProblem(m client.MemberInfo, now time.Time) string {
	if m.BackupInterval <= 0 {
		return ""
	}
	every := time.Duration(m.BackupInterval) * time.Second
	switch {
	case m.LastBackup.IsZero():
		return fmt.Sprintf("node %s has saved no backup yet (every %s, --backup-dir): its log says why", m.Name, every)
	case now.Sub(m.LastBackup) > 2*every+time.Minute:
		return fmt.Sprintf("node %s's newest backup is %s old (every %s, --backup-dir): its log says why", m.Name, shortDuration(now.Sub(m.LastBackup)), every)
	}
	return ""
}

// backupAge is how long ago a node saved its newest scheduled backup: "-" for a
// node that saves none (no --backup-dir), "none yet" before its first.
func backupAge(m client.MemberInfo, now time.Time) string {
	switch {
	case m.BackupInterval <= 0:
		return "-"
	case m.LastBackup.IsZero():
		return "none yet"
	}
	return shortDuration(now.Sub(m.LastBackup)) + " ago"
}
