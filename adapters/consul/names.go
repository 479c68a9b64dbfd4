package consul

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Consul names (services, nodes, service IDs, tags, metadata) allow more than
// Kubernetes-style names and labels do. The functions here turn them into valid
// ones. Names that identify something (resource names, host labels, selector values)
// must stay distinct, so a name that had to be changed gets a hash of the original;
// label keys and values users write in DestinationRule subsets are changed as little
// as possible instead.

const (
	maxLabel     = 63
	maxSubdomain = 253
	hashLen      = 10
)

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// isDNSLabel reports whether s is a DNS-1123 label: lower-case alphanumerics and
// '-', at most 63, starting and ending with an alphanumeric.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > maxLabel {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && (s[i] != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// shortHash is a stable hash of s, short enough to append to a name.
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:hashLen]
}

// dnsLabel returns s unchanged when it is a DNS-1123 label, else a label made from it
// (lower case, other characters turned into '-') ending in a hash of s, so that two
// names never map to the same label.
func dnsLabel(s string) string {
	if isDNSLabel(s) {
		return s
	}
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !isAlnum(c) {
			b[i] = '-'
		}
	}
	base := strings.Trim(string(b), "-")
	if len(base) > maxLabel-hashLen-1 {
		base = strings.TrimRight(base[:maxLabel-hashLen-1], "-")
	}
	if base == "" {
		return shortHash(s)
	}
	return base + "-" + shortHash(s)
}

// resourceName joins labels into a resource name (a DNS-1123 subdomain). A name
// longer than a subdomain may be is cut and ends in a hash of the whole.
func resourceName(labels ...string) string {
	name := strings.Join(labels, ".")
	if len(name) <= maxSubdomain {
		return name
	}
	base := strings.TrimRight(name[:maxSubdomain-hashLen-1], "-.")
	return base + "-" + shortHash(name)
}

// labelChar reports whether c may appear inside a label name or value.
func labelChar(c byte) bool {
	return isAlnum(c) || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.'
}

func isLabelEnd(c byte) bool { return isAlnum(c) || c >= 'A' && c <= 'Z' }

// labelValue makes s a valid label value: other characters become '-', the ends are
// trimmed to alphanumerics and it is cut to 63 characters. It may return "".
func labelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !labelChar(c) {
			b[i] = '-'
		}
	}
	if len(b) > maxLabel {
		b = b[:maxLabel]
	}
	start, end := 0, len(b)
	for start < end && !isLabelEnd(b[start]) {
		start++
	}
	for end > start && !isLabelEnd(b[end-1]) {
		end--
	}
	return string(b[start:end])
}

// labelKey makes k a valid label key: an optional DNS subdomain prefix and '/', then
// a name as labelValue makes it. It returns "" when nothing valid is left.
func labelKey(k string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		return labelValue(k)
	}
	name = labelValue(name)
	if name == "" {
		return ""
	}
	parts := strings.Split(strings.ToLower(prefix), ".")
	for i, p := range parts {
		b := []byte(p)
		for j, c := range b {
			if !isAlnum(c) {
				b[j] = '-'
			}
		}
		parts[i] = strings.Trim(string(b), "-")
		if parts[i] == "" || len(parts[i]) > maxLabel {
			return name // no usable prefix: keep the name alone
		}
	}
	prefix = strings.Join(parts, ".")
	if len(prefix) > maxSubdomain {
		return name
	}
	return prefix + "/" + name
}
