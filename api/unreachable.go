package api

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// RuleFinding is a VirtualService rule, or a match of one, that no request
// reaches: an earlier rule takes everything it would (Istio's IST0130 and
// IST0131, and its webhook's warnings).
type RuleFinding struct {
	// Field is the rule or match, e.g. "spec.http[2]" or "spec.http[2].match[0]".
	Field string
	// Rule names the rule as Istio does: its name quoted, else #index.
	Rule string
	// Match and Earlier are set for a match of a rule that an earlier match
	// covers (Istio's "ineffective match"); otherwise Reason says why the whole
	// rule is unused.
	Match, Earlier, Reason string
}

// Message is Istio's webhook text for f.
func (f RuleFinding) Message() string {
	if f.Match != "" {
		return fmt.Sprintf("virtualService rule %v match %v is not used (duplicate/overlapping match in rule %v)", f.Rule, f.Match, f.Earlier)
	}
	return fmt.Sprintf("virtualService rule %v not used (%s)", f.Rule, f.Reason)
}

// UnreachableRules finds the rules of vs, and the matches of rules, that no
// request reaches, by Istio's analysis: a rule after one without matches; a match
// equal to an earlier one; an HTTP match whose URI prefix, port, method, authority,
// headers and query parameters an earlier one covers. Like Istio's, the last check
// compares only exact and prefix values, so it may call a match covered that a
// regex or source condition of the earlier one would let through.
func UnreachableRules(vs *networking.VirtualService) []RuleFinding {
	var out []RuleFinding
	type rule struct {
		path, name string
		matches    []proto.Message
		names      []string
	}
	scan := func(rules []rule) {
		if len(rules) < 2 && (len(rules) == 0 || len(rules[0].matches) < 2) {
			return // nothing before anything to take its requests
		}
		seen := map[string]int{}
		catchAll := -1
		for ri, r := range rules {
			if len(r.matches) == 0 {
				if catchAll >= 0 {
					out = append(out, RuleFinding{Field: r.path, Rule: r.name, Reason: "only the last rule can have no matches"})
				}
				catchAll = ri
				continue
			}
			dups := 0
			for mi, m := range r.matches {
				if catchAll >= 0 {
					out = append(out, RuleFinding{Field: r.path, Rule: r.name, Reason: "route without matches defined before"})
					continue
				}
				key := matchKey(m)
				if first, ok := seen[key]; ok {
					out = append(out, RuleFinding{Field: index(r.path+".match", mi), Rule: r.name, Match: r.names[mi], Earlier: rules[first].name})
					dups++
					continue
				}
				seen[key] = ri
			}
			if dups == len(r.matches) {
				out = append(out, RuleFinding{Field: r.path, Rule: r.name, Reason: "all matches used by prior rules"})
			}
		}
	}
	var httpRules, tcpRules, tlsRules []rule
	for i, h := range vs.Http {
		r := rule{path: index("spec.http", i), name: ruleName(h.Name, i)}
		for j, m := range h.Match {
			r.matches, r.names = append(r.matches, m), append(r.names, ruleName(m.GetName(), j))
		}
		httpRules = append(httpRules, r)
	}
	for i, t := range vs.Tcp {
		r := rule{path: index("spec.tcp", i), name: ruleName("", i)}
		for j, m := range t.Match {
			r.matches, r.names = append(r.matches, m), append(r.names, ruleName("", j))
		}
		tcpRules = append(tcpRules, r)
	}
	for i, t := range vs.Tls {
		r := rule{path: index("spec.tls", i), name: ruleName("", i)}
		for j, m := range t.Match {
			r.matches, r.names = append(r.matches, m), append(r.names, ruleName("", j))
		}
		tlsRules = append(tlsRules, r)
	}
	scan(httpRules)
	out = append(out, overlappingPrefixes(vs.Http)...)
	scan(tcpRules)
	scan(tlsRules)
	return out
}

func ruleName(name string, i int) string {
	if name != "" {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("#%d", i)
}

// matchKey identifies a match by what it matches: its bytes without its name.
func matchKey(m proto.Message) string {
	if h, ok := m.(*networking.HTTPMatchRequest); ok && h.Name != "" {
		h = proto.Clone(h).(*networking.HTTPMatchRequest)
		h.Name = ""
		m = h
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	return string(b)
}

// prefixMatch is an HTTP match by URI prefix, reduced to what Istio's overlap
// check compares: "exact:v" or "prefix:v" for each value.
type prefixMatch struct {
	path, rule, match, prefix string
	port                      uint32
	method, authority         string
	headers, query, without   map[string]string
}

// overlappingPrefixes: the HTTP matches by URI prefix that an earlier one covers,
// after the equal matches (which the rule scan reports) are left out.
func overlappingPrefixes(rules []*networking.HTTPRoute) []RuleFinding {
	if len(rules) < 2 && (len(rules) == 0 || len(rules[0].Match) < 2) {
		return nil
	}
	var ms []prefixMatch
	seen := map[string]bool{}
	catchAll := false
	for i, h := range rules {
		if len(h.Match) == 0 {
			catchAll = true
			continue
		}
		for j, m := range h.Match {
			if catchAll {
				continue
			}
			key := matchKey(m)
			if seen[key] {
				continue
			}
			seen[key] = true
			if m.GetUri().GetPrefix() == "" {
				continue
			}
			method := exactOrPrefix(m.Method)
			if method == "" {
				method = "exact:GET"
			}
			ms = append(ms, prefixMatch{
				path: index(index("spec.http", i)+".match", j), rule: ruleName(h.Name, i), match: ruleName(m.Name, j),
				prefix: m.Uri.GetPrefix(), port: m.Port, method: method, authority: exactOrPrefix(m.Authority),
				headers: exactOrPrefixes(m.Headers), query: exactOrPrefixes(m.QueryParams), without: exactOrPrefixes(m.WithoutHeaders),
			})
		}
	}
	var out []RuleFinding
	for i, a := range ms {
		for _, b := range ms[i+1:] {
			if a.prefix == b.prefix || !covers(a, b) {
				continue
			}
			out = append(out, RuleFinding{Field: b.path, Rule: b.rule, Match: b.match + " of prefix " + b.prefix,
				Earlier: a.match + " of prefix " + a.prefix + " on " + a.rule})
		}
	}
	return out
}

func exactOrPrefix(s *networking.StringMatch) string {
	switch {
	case s.GetExact() != "":
		return "exact:" + s.GetExact()
	case s.GetPrefix() != "":
		return "prefix:" + s.GetPrefix()
	}
	return ""
}

func exactOrPrefixes(m map[string]*networking.StringMatch) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = exactOrPrefix(v)
	}
	return out
}

// covers is Istio's test of whether earlier match a takes every request b would:
// b's prefix extends a's, the ports are equal, and each of a's other values
// equals b's or starts with it.
func covers(a, b prefixMatch) bool {
	if !strings.HasPrefix(b.prefix, a.prefix) || a.port != b.port {
		return false
	}
	if !strings.HasPrefix(a.method, b.method) || !strings.HasPrefix(a.authority, b.authority) {
		return false
	}
	for _, m := range [][2]map[string]string{{a.headers, b.headers}, {a.query, b.query}, {a.without, b.without}} {
		if len(m[0]) != len(m[1]) {
			return false
		}
		for k, v := range m[0] {
			w, ok := m[1][k]
			if !ok || !strings.HasPrefix(v, w) {
				return false
			}
		}
	}
	return true
}
