package api

import (
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
)

func validateDestinationRule(p *problems, namespace string, dr *networking.DestinationRule) {
	validateHostField(p, "spec.host", dr.Host)
	validateTrafficPolicy(p, "spec.trafficPolicy", dr.TrafficPolicy)
	seen := map[string]int{}
	for i, s := range dr.Subsets {
		sp := index("spec.subsets", i)
		if s == nil {
			p.add(sp, "must not be null")
			continue
		}
		np := field(sp, "name")
		switch first, dup := seen[s.Name]; {
		case s.Name == "":
			p.add(np, "required")
		case dup:
			p.add(np, "duplicate subset name %q, also spec.subsets[%d]", s.Name, first)
		case !dnsLabel(s.Name, true):
			p.add(np, "%q is not a valid subset name (a DNS-1123 label)", s.Name)
		}
		if _, dup := seen[s.Name]; !dup {
			seen[s.Name] = i
		}
		validateSpecLabels(p, field(sp, "labels"), s.Labels)
		validateTrafficPolicy(p, field(sp, "trafficPolicy"), s.TrafficPolicy)
	}
	validateExportTo(p, "spec.exportTo", namespace, dr.ExportTo, false)
	if dr.WorkloadSelector != nil {
		validateWorkloadSelector(p, "spec.workloadSelector", dr.WorkloadSelector)
		for i, e := range dr.ExportTo {
			if e != "." && e != namespace {
				p.add(index("spec.exportTo", i), "a DestinationRule with a workloadSelector can only be exported to its own namespace, got %q", e)
			}
		}
	}
}

func validateTrafficPolicy(p *problems, path string, t *networking.TrafficPolicy) {
	if t == nil {
		return
	}
	if t.LoadBalancer == nil && t.ConnectionPool == nil && t.OutlierDetection == nil && t.Tls == nil &&
		len(t.PortLevelSettings) == 0 && t.Tunnel == nil && t.ProxyProtocol == nil && t.RetryBudget == nil {
		p.add(path, "must set at least one field")
		return
	}
	if t.Tunnel != nil && t.ProxyProtocol != nil {
		p.add(path, "must not set both tunnel and proxyProtocol")
	}
	validateLoadBalancer(p, field(path, "loadBalancer"), t.LoadBalancer)
	validateConnectionPool(p, field(path, "connectionPool"), t.ConnectionPool)
	validateOutlierDetection(p, field(path, "outlierDetection"), t.OutlierDetection)
	validateClientTLS(p, field(path, "tls"), t.Tls)
	for i, pl := range t.PortLevelSettings {
		validatePortTrafficPolicy(p, index(field(path, "portLevelSettings"), i), pl)
	}
	if tu := t.Tunnel; tu != nil {
		tp := field(path, "tunnel")
		if tu.Protocol != "" && tu.Protocol != "CONNECT" && tu.Protocol != "POST" {
			p.add(field(tp, "protocol"), "must be CONNECT or POST, got %q", tu.Protocol)
		}
		if fqdnError(tu.TargetHost) != "" && !isIP(tu.TargetHost) {
			p.add(field(tp, "targetHost"), "must be a host name or an IP address, got %q", tu.TargetHost)
		}
		validatePort(p, field(tp, "targetPort"), tu.TargetPort)
	}
	if rb := t.RetryBudget; rb != nil {
		if v := rb.Percent.GetValue(); v < 0 || v > 100 {
			p.add(field(path, "retryBudget.percent"), "must be 0-100, got %g", v)
		}
		validateDuration(p, field(path, "retryBudget.budgetInterval"), rb.BudgetInterval)
	}
}

func validatePortTrafficPolicy(p *problems, path string, t *networking.TrafficPolicy_PortTrafficPolicy) {
	if t == nil {
		p.add(path, "must not be null")
		return
	}
	// The port's number is not checked, as Istio does not check it: settings for a
	// port the service does not have apply to nothing.
	if t.Port == nil {
		p.add(field(path, "port"), "required")
	}
	if t.LoadBalancer == nil && t.ConnectionPool == nil && t.OutlierDetection == nil && t.Tls == nil {
		p.add(path, "must set at least one of loadBalancer, connectionPool, outlierDetection and tls")
		return
	}
	validateLoadBalancer(p, field(path, "loadBalancer"), t.LoadBalancer)
	validateConnectionPool(p, field(path, "connectionPool"), t.ConnectionPool)
	validateOutlierDetection(p, field(path, "outlierDetection"), t.OutlierDetection)
	validateClientTLS(p, field(path, "tls"), t.Tls)
}

func validateOutlierDetection(p *problems, path string, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	validateDuration(p, field(path, "baseEjectionTime"), o.BaseEjectionTime)
	validateDuration(p, field(path, "interval"), o.Interval)
	if !o.SplitExternalLocalOriginErrors && o.ConsecutiveLocalOriginFailures.GetValue() > 0 {
		p.add(field(path, "consecutiveLocalOriginFailures"), "has no effect unless splitExternalLocalOriginErrors is true")
	}
	validatePercent(p, field(path, "maxEjectionPercent"), o.MaxEjectionPercent)
	for i, c := range o.OutlierDetectionHttpErrorCodes {
		if c < 100 || c > 599 {
			p.add(index(field(path, "outlierDetectionHttpErrorCodes"), i), "must be an HTTP status, 100-599, got %d", c)
		}
	}
	validatePercent(p, field(path, "minHealthPercent"), o.MinHealthPercent)
}

func validateConnectionPool(p *problems, path string, c *networking.ConnectionPoolSettings) {
	if c == nil {
		return
	}
	if c.Http == nil && c.Tcp == nil {
		p.add(path, "must set tcp or http")
		return
	}
	if h := c.Http; h != nil {
		hp := field(path, "http")
		for _, n := range []named[int32]{{"http1MaxPendingRequests", h.Http1MaxPendingRequests},
			{"http2MaxRequests", h.Http2MaxRequests}, {"maxRequestsPerConnection", h.MaxRequestsPerConnection},
			{"maxRetries", h.MaxRetries}, {"maxConcurrentStreams", h.MaxConcurrentStreams}} {
			validateNonNegative(p, field(hp, n.name), n.value)
		}
		validateDuration(p, field(hp, "idleTimeout"), h.IdleTimeout)
		if h.H2UpgradePolicy == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.UseClientProtocol {
			p.add(field(hp, "useClientProtocol"), "must not be true when h2UpgradePolicy is UPGRADE")
		}
		if ka := h.Http2KeepAlive; ka != nil {
			for _, d := range []named[*durationpb.Duration]{{"interval", ka.Interval}, {"timeout", ka.Timeout}} {
				if d.value == nil {
					p.add(field(hp, "http2KeepAlive."+d.name), "required")
				}
			}
			validateDuration(p, field(hp, "http2KeepAlive.interval"), ka.Interval)
			validateDuration(p, field(hp, "http2KeepAlive.timeout"), ka.Timeout)
		}
	}
	if t := c.Tcp; t != nil {
		tp := field(path, "tcp")
		validateNonNegative(p, field(tp, "maxConnections"), t.MaxConnections)
		validateDuration(p, field(tp, "connectTimeout"), t.ConnectTimeout)
		validateDuration(p, field(tp, "maxConnectionDuration"), t.MaxConnectionDuration)
		// tcp.idleTimeout is any non-negative duration, as Istio has it (0s: none).
		if d := t.IdleTimeout; d != nil && (d.CheckValid() != nil || d.AsDuration() < 0) {
			p.add(field(tp, "idleTimeout"), "must be a non-negative duration, got %s", d.AsDuration())
		}
		if ka := t.TcpKeepalive; ka != nil {
			validateDuration(p, field(tp, "tcpKeepalive.time"), ka.Time)
			validateDuration(p, field(tp, "tcpKeepalive.interval"), ka.Interval)
		}
	}
}

func validateNonNegative(p *problems, path string, v int32) {
	if v < 0 {
		p.add(path, "must not be negative, got %d", v)
	}
}

// maxMaglevTableSize is Envoy's limit on a Maglev table, which must be a prime below it.
const maxMaglevTableSize = 5000011

func validateLoadBalancer(p *problems, path string, lb *networking.LoadBalancerSettings) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		cp := field(path, "consistentHash")
		if c := ch.GetHttpCookie(); c != nil && c.Name == "" {
			p.add(field(cp, "httpCookie.name"), "required")
		}
		seen := map[string]bool{}
		for i, a := range ch.GetHttpCookie().GetAttributes() {
			ap := index(field(cp, "httpCookie.attributes"), i)
			switch {
			case a.GetName() == "":
				p.add(field(ap, "name"), "required")
			case seen[a.GetName()]:
				p.add(field(ap, "name"), "duplicate cookie attribute %q", a.GetName())
			}
			seen[a.GetName()] = true
		}
		// A negative httpCookie.ttl is accepted, as Istio accepts it; the translation
		// treats it as a session cookie.
		//lint:ignore SA1019 deprecated, but Istio still accepts and checks it
		if ch.MinimumRingSize != 0 && ch.HashAlgorithm != nil {
			p.add(cp, "must not set both minimumRingSize and ringHash or maglev")
		}
		if m := ch.GetMaglev(); m != nil {
			switch tp := field(cp, "maglev.tableSize"); {
			case m.TableSize == 0:
				p.add(tp, "required")
			case m.TableSize >= maxMaglevTableSize:
				p.add(tp, "must be less than %d, got %d", maxMaglevTableSize, m.TableSize)
			case !isPrime(m.TableSize) && m.TableSize != 1: // Istio's check takes 1 for a prime
				p.add(tp, "must be a prime number, got %d", m.TableSize)
			}
		}
	}
	validateLocalityLB(p, field(path, "localityLbSetting"), lb.LocalityLbSetting)
	if lb.LocalityLbSetting != nil && lb.ZoneAwareLbSetting != nil {
		p.add(path, "must not set both localityLbSetting and zoneAwareLbSetting")
	}
	validateZoneAwareLB(p, field(path, "zoneAwareLbSetting"), lb.ZoneAwareLbSetting)
	// The CRD's schema (not the mesh config's validation) says at least 1.
	if n := lb.GetZoneAwareLbSetting().GetMinClusterSize(); n != nil && n.Value < 1 {
		p.add(field(path, "zoneAwareLbSetting.minClusterSize"), "must be at least 1, got %d", n.Value)
	}
	//lint:ignore SA1019 deprecated in favour of warmup, but still accepted
	validateDuration(p, field(path, "warmupDurationSecs"), lb.WarmupDurationSecs)
	if w := lb.Warmup; w != nil {
		if w.Duration == nil {
			p.add(field(path, "warmup.duration"), "required")
		}
		validateDuration(p, field(path, "warmup.duration"), w.Duration)
		if a := w.Aggression; a != nil && a.Value <= 0 {
			p.add(field(path, "warmup.aggression"), "must be greater than 0, got %g", a.Value)
		}
		if m := w.MinimumPercent; m != nil && (m.Value < 0 || m.Value > 100) {
			p.add(field(path, "warmup.minimumPercent"), "must be 0-100, got %g", m.Value)
		}
	}
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for f := uint64(2); f*f <= n; f++ {
		if n%f == 0 {
			return false
		}
	}
	return true
}

func validateClientTLS(p *problems, path string, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	if t.InsecureSkipVerify.GetValue() {
		switch {
		case t.Mode == networking.ClientTLSSettings_SIMPLE && (t.CaCertificates != "" || t.CredentialName != "" || len(t.SubjectAltNames) > 0):
			p.add(path, "must not set caCertificates, credentialName or subjectAltNames when insecureSkipVerify is true")
		case t.Mode == networking.ClientTLSSettings_MUTUAL && (t.CaCertificates != "" || len(t.SubjectAltNames) > 0):
			p.add(path, "must not set caCertificates or subjectAltNames when insecureSkipVerify is true")
		}
	}
	if t.Mode != networking.ClientTLSSettings_SIMPLE && t.Mode != networking.ClientTLSSettings_MUTUAL {
		return
	}
	if t.CredentialName != "" {
		if t.ClientCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" || t.CaCrl != "" {
			p.add(path, "must not set clientCertificate, privateKey, caCertificates or caCrl when credentialName is set")
		}
		return
	}
	if t.Mode == networking.ClientTLSSettings_MUTUAL {
		if t.ClientCertificate == "" {
			p.add(field(path, "clientCertificate"), "required for MUTUAL TLS unless credentialName is set")
		}
		if t.PrivateKey == "" {
			p.add(field(path, "privateKey"), "required for MUTUAL TLS unless credentialName is set")
		}
	}
}
