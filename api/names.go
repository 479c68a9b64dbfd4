package api

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Name syntax shared by metadata and specs: DNS-1123 labels and subdomains, label
// keys and values, host names with wildcards, IP addresses.

const (
	maxLabelLength     = 63
	maxSubdomainLength = 253
	maxHostLength      = 255
)

func isAlnum(c byte, upper bool) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || upper && c >= 'A' && c <= 'Z'
}

// dnsLabel reports whether s is a DNS-1123 label: at most 63 alphanumerics and '-',
// starting and ending with an alphanumeric. Kubernetes names must be lower case;
// Istio accepts upper case in the labels of host, subset and port names.
func dnsLabel(s string, upper bool) bool {
	if s == "" || len(s) > maxLabelLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i], upper) && (s[i] != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// IsResourceName reports whether ns and name are a valid namespace (a DNS label) and
// resource name (a DNS subdomain), as Kubernetes and Istio require of both.
func IsResourceName(ns, name string) bool { return isDNSLabel(ns) && isDNSSubdomain(name) }

// isDNSLabel is Kubernetes' IsDNS1123Label: namespaces, Gateway names.
func isDNSLabel(s string) bool { return dnsLabel(s, false) }

// isDNSSubdomain is Kubernetes' IsDNS1123Subdomain: resource names, service accounts.
func isDNSSubdomain(s string) bool {
	if s == "" || len(s) > maxSubdomainLength {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			if !isAlnum(part[i], false) && (part[i] != '-' || i == 0 || i == len(part)-1) {
				return false
			}
		}
	}
	return true
}

// labelNameError checks the name part of a label key, or a label value when
// value is true, against Kubernetes' rules: at most 63 characters, alphanumerics,
// '-', '_' and '.', starting and ending with an alphanumeric. Values may be empty.
func labelNameError(s string, value bool) string {
	if s == "" {
		if value {
			return ""
		}
		return "must not be empty"
	}
	if len(s) > maxLabelLength {
		return fmt.Sprintf("must be at most %d characters, got %d", maxLabelLength, len(s))
	}
	return labelCharsError(s)
}

// labelCharsError checks the characters of a non-empty label name or value.
func labelCharsError(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c, true) {
			continue
		}
		if (c == '-' || c == '_' || c == '.') && i != 0 && i != len(s)-1 {
			continue
		}
		return "must consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric"
	}
	return ""
}

// labelKeyError checks a label key: an optional DNS subdomain prefix and '/', then a name.
func labelKeyError(k string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name = k
	} else if !isDNSSubdomain(prefix) {
		return fmt.Sprintf("prefix %q must be a DNS-1123 subdomain", prefix)
	}
	if reason := labelNameError(name, false); reason != "" {
		return "name part " + reason
	}
	return ""
}

// validateLabels checks a map of labels (metadata labels, subset and endpoint labels,
// selectors) the way Kubernetes and Istio's labels.Instance.Validate do.
func validateLabels(p *problems, path string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if reason := labelKeyError(k); reason != "" {
			p.add(path, "invalid label key %q: %s", k, reason)
		}
		if reason := labelNameError(labels[k], true); reason != "" {
			p.add(mapKey(path, k), "invalid label value %q: %s", labels[k], reason)
		}
	}
}

// validateSpecLabels checks labels in a spec (subset, endpoint and source labels)
// as Istio's labels.Instance.Validate does: keys as Kubernetes', values of the same
// characters but of any length.
func validateSpecLabels(p *problems, path string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if reason := labelKeyError(k); reason != "" {
			p.add(path, "invalid label key %q: %s", k, reason)
		}
		if v := labels[k]; v == "" {
			continue
		}
		if reason := labelCharsError(labels[k]); reason != "" {
			p.add(mapKey(path, k), "invalid label value %q: %s", labels[k], reason)
		}
	}
}

// validateSelectorLabels checks the labels of a workload selector as Istio does: no
// empty keys and no wildcards. Keys and values are not otherwise checked (a
// selector with labels no workload can carry selects nothing).
func validateSelectorLabels(p *problems, path string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		switch {
		case k == "":
			p.add(path, "empty keys are not supported in selectors")
		case strings.Contains(k, "*") || strings.Contains(labels[k], "*"):
			p.add(mapKey(path, k), "wildcards are not supported in selectors, got %s=%s", k, labels[k])
		case len(labels[k]) > maxLabelLength: // Istio's CRDs
			p.add(mapKey(path, k), "must be at most %d characters, got %d", maxLabelLength, len(labels[k]))
		}
	}
}

// hostError checks a DNS name that may start with a wildcard label ("*", "*.foo.com",
// "*-foo.bar") as Istio's ValidateWildcardDomain does. Short names ("reviews") are valid.
func hostError(host string) string {
	if reason := hostLengthError(host); reason != "" {
		return reason
	}
	first, rest, hasRest := strings.Cut(host, ".")
	if !wildcardLabel(first) {
		return fmt.Sprintf("label %q is not a DNS-1123 label or a wildcard", first)
	}
	if hasRest {
		return labelsError(rest)
	}
	return ""
}

// fqdnError checks a DNS name without wildcards, as Istio's ValidateFQDN does.
func fqdnError(host string) string {
	if reason := hostLengthError(host); reason != "" {
		return reason
	}
	return labelsError(host)
}

func hostLengthError(host string) string {
	if host == "" {
		return "must not be empty"
	}
	if len(host) > maxHostLength {
		return fmt.Sprintf("must be at most %d characters, got %d", maxHostLength, len(host))
	}
	return ""
}

// labelsError checks the dot-separated labels of a domain; a trailing dot is allowed
// and the top-level domain must not be all numeric.
func labelsError(domain string) string {
	parts := strings.Split(domain, ".")
	tld := parts[len(parts)-1]
	if _, err := strconv.Atoi(tld); err == nil {
		return fmt.Sprintf("top-level domain %q must not be all numeric", tld)
	}
	for i, l := range parts {
		if i == len(parts)-1 && l == "" && i > 0 {
			return ""
		}
		if !dnsLabel(l, true) {
			return fmt.Sprintf("label %q is not a DNS-1123 label", l)
		}
	}
	return ""
}

// wildcardLabel is a DNS label, "*", or a label with a leading "*" or "*-".
func wildcardLabel(l string) bool {
	if l == "*" {
		return true
	}
	if len(l) > maxLabelLength {
		return false
	}
	if rest, ok := strings.CutPrefix(l, "*-"); ok {
		return dnsLabel(rest, true)
	}
	if rest, ok := strings.CutPrefix(l, "*"); ok {
		return dnsLabel(rest, true)
	}
	return dnsLabel(l, true)
}

// partialWildcard reports a host like "*foo.com" or "foo.*.com": a '*' that is not
// the whole host nor a leading "*." label.
func partialWildcard(host string) bool {
	return strings.Contains(host, "*") && host != "*" && !strings.HasPrefix(host, "*.")
}

// hostMatches reports whether two hosts overlap, one matching the other as a
// wildcard would (Istio's host.Name.Matches).
func hostMatches(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		if len(a) < len(b) {
			return strings.HasSuffix(b[1:], a[1:])
		}
		return strings.HasSuffix(a[1:], b[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// hostSubsetOf reports whether every name a matches is matched by b
// (Istio's host.Name.SubsetOf).
func hostSubsetOf(a, b string) bool {
	if strings.HasPrefix(b, "*") {
		if strings.HasPrefix(a, "*") {
			return len(a) >= len(b) && strings.HasSuffix(a[1:], b[1:])
		}
		return strings.HasSuffix(a, b[1:])
	}
	return !strings.HasPrefix(a, "*") && a == b
}

// isIP reports whether s is an IPv4 or IPv6 address.
func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// ipOrCIDRError checks an IP address or a CIDR block ("10.0.0.0/8", "2001:db8::/32").
func ipOrCIDRError(s string) string {
	if strings.Contains(s, "/") {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Sprintf("%q is not a valid CIDR block", s)
		}
		return ""
	}
	if !isIP(s) {
		return fmt.Sprintf("%q is not a valid IP address", s)
	}
	return ""
}

// unixPathError checks the path of a unix domain socket address (after "unix://"):
// an absolute path to a file, or an abstract socket name starting with '@'.
func unixPathError(path string) string {
	switch {
	case path == "":
		return "unix socket path must not be empty"
	case strings.HasPrefix(path, "@"):
		return ""
	case !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/"):
		return fmt.Sprintf("unix socket path %q must be an absolute path to a file", path)
	}
	return ""
}
