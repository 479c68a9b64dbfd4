package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/internal/wait"
	"github.com/navarch/navarch/xds"
)

// healthType is the type URL of Istio's health reports on an xDS stream.
const healthType = "type.googleapis.com/istio.v1.HealthInformation"

// Registration is what the agent registers its workload as, in the WorkloadGroup
// its join token is for: the node builds a WorkloadEntry from the group's template
// with these (Istio's auto-registration, adapters/vm).
type Registration struct {
	// Group is the WorkloadGroup's name; its namespace is the certificate's.
	Group string
	// Address is the workload's IP address, where the mesh reaches it.
	Address string
	// Labels are added to (and override) the group's.
	Labels map[string]string
	// Network and Locality ("region/zone/subzone") place the workload.
	Network, Locality string
	// Probe, when set, is the workload's readiness check: the agent reports its
	// result, and a failing workload is taken out of load balancing.
	Probe *Probe
	// ProbeFromGroup has the agent follow its WorkloadGroup's probe: the
	// registration stream subscribes to the group, and each change of its probe
	// replaces Probe (a group without one: none, always healthy). Probe is what the
	// workload is checked with until the group arrives (`navarch agent configure`
	// writes the group's probe as it was then).
	ProbeFromGroup bool
	// DNS, when set, is the agent's DNS proxy: the registration stream asks for
	// the workload's name table (with istio-agent's DNS_CAPTURE metadata, so that
	// ServiceEntries without addresses come with those allocated to them) and
	// keeps the proxy's table current.
	DNS *DNS
}

// Validate checks the registration without side effects.
func (r *Registration) Validate() error {
	var errs []error
	if r.Group == "" {
		errs = append(errs, errors.New("agent: --group (the WorkloadGroup to register in) must be set"))
	}
	if net.ParseIP(r.Address) == nil {
		errs = append(errs, fmt.Errorf("agent: --address must be the workload's IP address, got %q", r.Address))
	}
	if r.Locality != "" && strings.Count(r.Locality, "/") > 2 {
		errs = append(errs, fmt.Errorf("agent: --locality must be region[/zone[/subzone]], got %q", r.Locality))
	}
	if r.Probe != nil {
		if err := r.Probe.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Register keeps the workload registered until ctx ends: it holds an xDS stream
// (ADS over TLS, 15012) to one node at a time, authenticated with the certificate in
// OutDir (which Run keeps current), asking to be registered in the group
// (AUTO_REGISTER_GROUP), and reports the probe's results on it. The registration
// lasts while the stream does, and a grace period after: when the node goes away
// the agent reconnects to the next one, which takes the registration over. It may
// run beside Run, in another goroutine: it shares nothing with it but the files.
func (a *Agent) Register(ctx context.Context, reg Registration) error {
	if err := reg.Validate(); err != nil {
		return err
	}
	probes := newProber(ctx)
	probes.set(reg.Probe, true)
	a.reg.update(func(r *registrationStatus) { r.registering, r.probe = true, reg.Probe.String() })
	var last probeResult
	select {
	case last = <-probes.health: // the first report says how the workload is registered
	case <-ctx.Done():
		return nil
	}
	a.reg.update(func(r *registrationStatus) { r.health = last })
	backoff := a.cfg.RetryMin
	next := 0 // the node to try; Run has its own
	for ctx.Err() == nil {
		certs, err := Load(a.cfg.OutDir)
		if err != nil || !certs.Valid(time.Now()) {
			a.log.Debug("waiting for a certificate to register with", "err", err)
			if !wait.Sleep(ctx, a.cfg.RetryMin) {
				break
			}
			continue
		}
		server := a.cfg.Servers[next%len(a.cfg.Servers)]
		start := time.Now()
		last, err = a.holdRegistration(ctx, server, certs, reg, last, probes)
		a.reg.update(func(r *registrationStatus) {
			r.server, r.lastErr = "", ""
			if err != nil {
				r.lastErr = err.Error()
			}
		})
		if ctx.Err() != nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			backoff = a.cfg.RetryMin // the stream lasted: a fresh failure
		}
		a.log.Warn("registration stream ended; trying the next node", "server", server, "in", backoff, "err", err)
		next++
		if !wait.Sleep(ctx, backoff) {
			break
		}
		backoff = min(2*backoff, a.cfg.RetryMax)
	}
	return nil
}

// holdRegistration holds one registration stream to server until it fails or ctx
// ends, sending each health change (and, with ProbeFromGroup, setting the group's
// probe on probes); it returns the last health it knew of.
func (a *Agent) holdRegistration(ctx context.Context, server string, certs *Certs, reg Registration,
	last probeResult, probes *prober) (probeResult, error) {
	ns, sa, err := namespaceAndAccount(certs.Identity)
	if err != nil {
		return last, err
	}
	// Keepalive pings notice a node that vanished without closing the connection
	// (its host died, a network dropped it), at grpc-go's shortest interval.
	conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(certs, certs.Roots, a.cfg.ServerName))),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}))
	if err != nil {
		return last, err
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		return last, err
	}
	ended := make(chan error, 1)
	responses := make(chan *discovery.DiscoveryResponse, 1) // name tables and the group
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				ended <- err
				return
			}
			if resp.TypeUrl == xds.NameTableType || resp.TypeUrl == xds.WorkloadGroupType {
				select {
				case responses <- resp:
				case <-sctx.Done():
					return
				}
			}
		}
	}()
	// A failed Send means the stream ended; Recv says why.
	sendFailed := func() (probeResult, error) {
		select {
		case err := <-ended:
			return last, err
		case <-ctx.Done():
			return last, nil
		}
	}
	if err := stream.Send(healthRequest(registrationNode(reg, ns, sa), last)); err != nil {
		return sendFailed()
	}
	if reg.DNS != nil {
		if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: xds.NameTableType}); err != nil {
			return sendFailed()
		}
	}
	if reg.ProbeFromGroup {
		if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: xds.WorkloadGroupType, ResourceNames: []string{reg.Group}}); err != nil {
			return sendFailed()
		}
	}
	// The node answers nothing to a health report: a stream that is still up a moment
	// after the first one is a registration it accepted (a refusal ends the stream).
	accepted := time.After(time.Second)
	for {
		select {
		case err := <-ended:
			return last, err
		case <-accepted:
			a.reg.update(func(r *registrationStatus) { r.server, r.since, r.lastErr = server, time.Now(), "" })
			a.log.Info("registered", "server", server, "group", ns+"/"+reg.Group, "address", reg.Address, "healthy", last.healthy, "reason", last.message)
		case resp := <-responses:
			var ack *discovery.DiscoveryRequest
			if resp.TypeUrl == xds.WorkloadGroupType {
				ack = a.takeGroup(probes, resp, ns, reg.Group)
			} else {
				ack = a.takeNameTable(reg.DNS, resp, ns)
			}
			if err := stream.Send(ack); err != nil {
				return sendFailed()
			}
		case r := <-probes.health:
			if r == last {
				continue
			}
			last = r
			a.reg.update(func(s *registrationStatus) { s.health = r })
			a.log.Info("workload health changed", "healthy", r.healthy, "reason", r.message)
			if err := stream.Send(healthRequest(nil, r)); err != nil {
				return sendFailed()
			}
		case <-ctx.Done():
			return last, nil
		}
	}
}

// takeNameTable gives the DNS proxy the name table of resp and returns the request
// that acknowledges it (or rejects a table it cannot read).
func (a *Agent) takeNameTable(d *DNS, resp *discovery.DiscoveryResponse, ns string) *discovery.DiscoveryRequest {
	ack := ackOf(resp)
	nt := map[string]xds.NameInfo{}
	for _, r := range resp.Resources {
		part, err := xds.DecodeNameTable(r.GetValue())
		if err != nil {
			a.log.Error("name table rejected", "err", err)
			ack.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
			return ack
		}
		maps.Copy(nt, part)
	}
	d.setTable(nt, ns)
	a.reg.update(func(r *registrationStatus) { r.names, r.tableVersion = len(nt), resp.VersionInfo })
	a.log.Info("name table", "names", len(nt), "version", resp.VersionInfo)
	return ack
}

// takeGroup sets the probe of the WorkloadGroup ns/name in resp on probes and
// returns the request that acknowledges it, or rejects a group whose probe the
// agent cannot run (its current probe then stays). A response without the group
// (it was deleted) changes nothing.
func (a *Agent) takeGroup(probes *prober, resp *discovery.DiscoveryResponse, ns, name string) *discovery.DiscoveryRequest {
	ack := ackOf(resp)
	ack.ResourceNames = []string{name} // a SotW request names what it still wants
	group := ns + "/" + name
	if len(resp.Resources) == 0 {
		return ack
	}
	reject := func(err error) *discovery.DiscoveryRequest {
		a.log.Error("WorkloadGroup's probe not taken", "group", group, "version", resp.VersionInfo, "err", err)
		ack.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		return ack
	}
	var wg networking.WorkloadGroup
	if err := proto.Unmarshal(resp.Resources[0].GetValue(), &wg); err != nil {
		return reject(fmt.Errorf("WorkloadGroup %s: %v", group, err))
	}
	p, err := GroupProbe(wg.GetProbe())
	if err != nil {
		return reject(fmt.Errorf("WorkloadGroup %s: spec.probe%v", group, err))
	}
	if p != nil {
		if err := p.Validate(); err != nil {
			return reject(fmt.Errorf("WorkloadGroup %s: spec.probe: %v", group, err))
		}
	}
	if probes.set(p, false) {
		a.reg.update(func(r *registrationStatus) { r.probe = p.String() })
		a.log.Info("the WorkloadGroup's probe changed", "group", group, "probe", p.String(), "version", resp.VersionInfo)
	}
	return ack
}

// ackOf is the request that acknowledges resp.
func ackOf(resp *discovery.DiscoveryResponse) *discovery.DiscoveryRequest {
	return &discovery.DiscoveryRequest{TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}
}

// registrationNode is the xDS node of a workload registering itself: an Istio node
// id (sidecar~ip~name.ns~ns.svc.cluster.local) and the metadata istio-agent sends
// for auto-registration.
func registrationNode(reg Registration, ns, sa string) *core.Node {
	labels := map[string]any{}
	for k, v := range reg.Labels {
		labels[k] = v
	}
	md := map[string]any{
		"NAMESPACE":           ns,
		"SERVICE_ACCOUNT":     sa,
		"AUTO_REGISTER_GROUP": reg.Group,
		"GENERATOR":           "grpc", // it subscribes to nothing: the lightest build
		"LABELS":              labels,
	}
	if reg.Network != "" {
		md["NETWORK"] = reg.Network
	}
	if reg.DNS != nil {
		md["DNS_CAPTURE"] = "true"
	}
	meta, _ := structpb.NewStruct(md)
	name := reg.Group + "-" + strings.ReplaceAll(reg.Address, ":", "-")
	n := &core.Node{
		Id:       "sidecar~" + reg.Address + "~" + name + "." + ns + "~" + ns + ".svc.cluster.local",
		Metadata: meta,
	}
	if reg.Locality != "" {
		parts := append(strings.SplitN(reg.Locality, "/", 3), "", "")
		n.Locality = &core.Locality{Region: parts[0], Zone: parts[1], SubZone: parts[2]}
	}
	return n
}

// healthRequest is Istio's health report: no error detail when healthy.
func healthRequest(node *core.Node, r probeResult) *discovery.DiscoveryRequest {
	req := &discovery.DiscoveryRequest{Node: node, TypeUrl: healthType}
	if !r.healthy {
		req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.Unavailable), Message: r.message}
	}
	return req
}

// namespaceAndAccount reads spiffe://<td>/ns/<ns>/sa/<sa>.
func namespaceAndAccount(id string) (string, string, error) {
	_, path, ok := strings.Cut(strings.TrimPrefix(id, "spiffe://"), "/")
	parts := strings.Split(path, "/")
	if !ok || len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" {
		return "", "", fmt.Errorf("certificate identity %q is not spiffe://<trust domain>/ns/<ns>/sa/<sa>", id)
	}
	return parts[1], parts[3], nil
}

// clientTLS is the TLS configuration of a connection to a node: verified against
// roots for serverName (nil roots: not verified, trust on first use, for the caller
// to check), presenting certs when given.
func clientTLS(certs *Certs, roots []*x509.Certificate, serverName string) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if roots == nil {
		cfg.InsecureSkipVerify = true
	} else {
		cfg.RootCAs = x509.NewCertPool()
		for _, r := range roots {
			cfg.RootCAs.AddCert(r)
		}
	}
	if certs != nil {
		tc := tls.Certificate{PrivateKey: certs.Key}
		for _, c := range certs.Chain {
			tc.Certificate = append(tc.Certificate, c.Raw)
		}
		cfg.Certificates = []tls.Certificate{tc}
	}
	return cfg
}
