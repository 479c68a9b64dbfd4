package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/navarch/navarch/client"
)

const describeUsage = `usage: navarch describe service <host> [-n namespace] [--generator grpc|envoy] [--labels k=v,...] [-o json]
       navarch describe workload <name|address> [-n namespace] [--source source] [-o json]`

// runDescribe explains a service as a proxy of a namespace sees it, or a workload,
// as istioctl's `x describe` does: for a service, the DestinationRule and
// VirtualService the proxy takes, whether it talks mTLS to each port and why, and
// the policies the service's endpoints serve under; for a workload, the services it
// serves and how, and the policies that apply to it.
func runDescribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(describeUsage)
	}
	workload := false
	switch args[0] {
	case "service", "svc":
	case "workload", "wl":
		workload = true
	default:
		return errors.New(describeUsage)
	}
	fs := flag.NewFlagSet("navarch describe "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	ns := fs.String("n", "", "namespace of the workload, or of the proxy that sees the service and of a short host name (default \"default\")")
	generator := fs.String("generator", "grpc", "service: the proxy's kind, grpc (proxyless) or envoy")
	labels := fs.String("labels", "", "service: the proxy's labels, k=v,k2=v2 (what workload selectors match)")
	source := fs.String("source", "", "workload: its registry source, where several have one of that name (vm, kubernetes.<id>, consul.<dc>, ...)")
	out := fs.String("o", "", "output: text (default) or json")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New(describeUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q := url.Values{"namespace": {namespaceOr(*ns)}}
	if workload {
		q.Set("workload", pos[0])
		if *source != "" {
			q.Set("source", *source)
		}
	} else {
		q.Set("host", pos[0])
		q.Set("generator", *generator)
		if *labels != "" {
			q.Set("labels", *labels)
		}
	}
	raw, err := c.Raw(ctx, "/debug/describe?"+q.Encode())
	if err != nil {
		return err
	}
	if *out == "json" {
		_, err = stdout.Write(raw)
		return err
	}
	if workload {
		var d client.WorkloadDescription
		if err := json.Unmarshal(raw, &d); err != nil {
			return err
		}
		writeWorkloadDescription(stdout, &d)
		return nil
	}
	var d client.ServiceDescription
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	writeDescription(stdout, &d)
	return nil
}

// writeWorkloadDescription prints a workload description for people.
func writeWorkloadDescription(w io.Writer, d *client.WorkloadDescription) {
	wl := d.Workload
	source := wl.Source
	if wl.Stale {
		source += ", stale"
	}
	fmt.Fprintf(w, "Workload: %s/%s (%s, %s)\n", wl.Namespace, wl.Name, d.Origin, source)
	fmt.Fprintf(w, "   Address: %s%s, %s\n", wl.Address, portSuffix(wl.Ports), health(wl))
	fmt.Fprintf(w, "   Labels: %s\n", dash(labelPairs(wl.Labels)))
	fmt.Fprintf(w, "   Service account: %s   Locality: %s   Network: %s\n", dash(wl.ServiceAccount), dash(wl.Locality), dash(wl.Network))
	if len(d.Services) == 0 {
		fmt.Fprintln(w, "Services: none selects it")
	}
	for _, s := range d.Services {
		fmt.Fprintf(w, "Service: %s\n", s.Host)
		for _, p := range s.Ports {
			fmt.Fprintf(w, "   Port %s %d/%s: served on %d, mTLS %s (%s)\n", p.Name, p.Number, p.Protocol, p.Target, p.MTLS, peerAuthFrom(p.MTLSFrom))
		}
		fmt.Fprintf(w, "   DestinationRule: %s   VirtualService: %s (as a client in %s takes them)\n", dash(s.DestinationRule), dash(s.VirtualService), wl.Namespace)
	}
	fmt.Fprintf(w, "mTLS: %s on ports no policy names (%s)\n", d.MTLS, peerAuthFrom(d.MTLSFrom))
	var authz []string
	for _, p := range d.Authorization {
		authz = append(authz, fmt.Sprintf("%s/%s (%s)", p.Namespace, p.Name, p.Action))
	}
	fmt.Fprintf(w, "AuthorizationPolicies: %s\n", dash(strings.Join(authz, ", ")))
	fmt.Fprintf(w, "Sidecar: %s\n", dash(d.Sidecar))
	for _, g := range d.Gateways {
		fmt.Fprintf(w, "Gateway: %s\n", g.Gateway)
		for _, s := range g.Servers {
			var how []string
			if s.TLS != "" {
				how = append(how, "TLS "+s.TLS)
			}
			switch {
			case s.LeftOut != "":
				how = append(how, "left out: "+s.LeftOut)
			case s.Bind != "":
				how = append(how, fmt.Sprintf("listens on %s port %d", s.Bind, s.Listen))
			default:
				how = append(how, fmt.Sprintf("listens on %d", s.Listen))
			}
			fmt.Fprintf(w, "   Server %d/%s%s: hosts %s, %s\n", s.Port, s.Protocol, prefixedName(s.Name), strings.Join(s.Hosts, ", "), strings.Join(how, ", "))
		}
	}
	for _, m := range d.Messages {
		fmt.Fprintf(w, "%s [%s] (%s %s/%s) %s\n", m.Level, m.Code, m.Kind, m.Namespace, m.Name, m.Message)
	}
}

// prefixedName is " (name)", or "" for no name.
func prefixedName(name string) string {
	if name == "" {
		return ""
	}
	return " (" + name + ")"
}

// writeDescription prints a service description for people.
func writeDescription(w io.Writer, d *client.ServiceDescription) {
	s := d.Service
	source := s.Source
	if s.Stale {
		source += ", stale"
	}
	fmt.Fprintf(w, "Service: %s (%s, %s)\n", s.Host, s.Origin, source)
	fmt.Fprintf(w, "   As seen by: %s\n", d.Proxy)
	for _, p := range d.Ports {
		fmt.Fprintf(w, "   Port %s %d/%s: %s\n      %s\n", p.Name, p.Number, p.Protocol, p.TLS, p.Reason)
	}
	healthy := 0
	for _, e := range s.Endpoints {
		if e.Healthy {
			healthy++
		}
	}
	fmt.Fprintf(w, "   Endpoints: %d, %d healthy\n", len(s.Endpoints), healthy)
	for _, e := range s.Endpoints {
		fmt.Fprintf(w, "      %s%s %s %s\n", e.Address, portSuffix(e.Ports), health(e), dash(labelPairs(e.Labels)))
	}
	if r := d.DestinationRule; r != nil {
		fmt.Fprintf(w, "DestinationRule: %s/%s for %q\n", r.Namespace, r.Name, r.Host)
		for _, sub := range r.Subsets {
			fmt.Fprintf(w, "   Subset %s (%s): %s\n", sub.Name, dash(labelPairs(sub.Labels)), plural(sub.Endpoints, "endpoint"))
		}
		var policy []string
		if r.LoadBalancer != "" {
			policy = append(policy, "load balancer "+r.LoadBalancer)
		}
		if r.TLS != "" {
			policy = append(policy, "tls "+r.TLS)
		}
		if r.ConnectionPool {
			policy = append(policy, "connection pool")
		}
		if r.OutlierDetection {
			policy = append(policy, "outlier detection")
		}
		if len(policy) > 0 {
			fmt.Fprintf(w, "   Traffic policy: %s\n", strings.Join(policy, ", "))
		}
	} else {
		fmt.Fprintln(w, "DestinationRule: none")
	}
	if vs := d.VirtualService; vs != nil {
		fmt.Fprintf(w, "VirtualService: %s/%s (hosts %s)\n", vs.Namespace, vs.Name, strings.Join(vs.Hosts, ", "))
		writeRoutes(w, "   ", vs.HTTP)
		if vs.TCP > 0 || vs.TLS > 0 {
			fmt.Fprintf(w, "   %s, %s\n", plural(vs.TCP, "TCP route"), plural(vs.TLS, "TLS route"))
		}
	} else {
		fmt.Fprintln(w, "VirtualService: none (every request to the service, with Istio's default retries)")
	}
	if len(d.Gateways) == 0 {
		fmt.Fprintln(w, "Exposed on gateways: none")
	} else {
		fmt.Fprintln(w, "Exposed on gateways:")
	}
	for _, g := range d.Gateways {
		at := "no registered gateway workload"
		if len(g.Addresses) > 0 {
			at = "at " + strings.Join(g.Addresses, ", ")
		}
		fmt.Fprintf(w, "   %s port %d/%s, hosts %s (VirtualService %s), %s\n", g.Gateway, g.Port, g.Protocol, strings.Join(g.Hosts, ", "), g.VirtualService, at)
		writeRoutes(w, "      ", g.Routes)
	}
	fmt.Fprintln(w, "Endpoints' policies:")
	if len(d.Inbound) == 0 {
		fmt.Fprintln(w, "   (no endpoints)")
	}
	for _, in := range d.Inbound {
		var modes []string
		for _, p := range d.Ports {
			modes = append(modes, fmt.Sprintf("%s on %d", in.MTLS[p.Number], p.Number))
		}
		from := "no PeerAuthentication"
		if len(in.PeerAuthentications) > 0 {
			from = "PeerAuthentication " + strings.Join(in.PeerAuthentications, ", ")
		}
		fmt.Fprintf(w, "   %s:\n      mTLS %s (%s)\n", strings.Join(in.Endpoints, ", "), strings.Join(modes, ", "), from)
		var authz []string
		for _, p := range in.Authorization {
			authz = append(authz, fmt.Sprintf("%s/%s (%s)", p.Namespace, p.Name, p.Action))
		}
		fmt.Fprintf(w, "      AuthorizationPolicies: %s\n", dash(strings.Join(authz, ", ")))
	}
	for _, e := range d.Errors {
		fmt.Fprintf(w, "Warning: %s\n", e)
	}
	for _, m := range d.Messages {
		fmt.Fprintf(w, "%s [%s] (%s %s/%s) %s\n", m.Level, m.Code, m.Kind, m.Namespace, m.Name, m.Message)
	}
}

// writeRoutes prints HTTP routes, each line indented.
func writeRoutes(w io.Writer, indent string, routes []client.RouteDescription) {
	for i, r := range routes {
		name := strconv.Itoa(i + 1)
		if r.Name != "" {
			name += " " + r.Name
		}
		fmt.Fprintf(w, "%sHTTP route %s: match %s\n", indent, name, strings.Join(orAny(r.Match), " OR "))
		for _, dst := range r.Destinations {
			to := dst.Host
			if dst.Port != 0 {
				to += ":" + strconv.Itoa(int(dst.Port))
			}
			if dst.Subset != "" {
				to += " subset " + dst.Subset
			}
			fmt.Fprintf(w, "%s   %s%% %s\n", indent, strconv.FormatFloat(dst.Percent, 'f', -1, 64), to)
		}
		if len(r.Also) > 0 {
			fmt.Fprintf(w, "%s   also: %s\n", indent, strings.Join(r.Also, ", "))
		}
	}
}

func orAny(match []string) []string {
	if len(match) == 0 {
		return []string{"any"}
	}
	return slices.Clone(match)
}

// plural is n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// peerAuthFrom says which PeerAuthentication ("ns/name") a mode comes from.
func peerAuthFrom(policy string) string {
	if policy == "" {
		return "no PeerAuthentication"
	}
	return "PeerAuthentication " + policy
}
