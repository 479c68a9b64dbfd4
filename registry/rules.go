package registry

import (
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
)

// DestinationRules are found as istiod finds them. Each namespace has two sets of
// rules by host: those its own proxies may take (every rule of the namespace but
// one exported only to other namespaces) and those it exports to others (every rule
// not kept to the namespace, by its exportTo or the mesh config's default). A proxy
// in namespace ns takes, for a service of namespace svcNS:
//
//  1. the rules of ns for the most specific host that matches (an exact host, else
//     the longest wildcard); for a proxy in the root namespace, only the rules the
//     root namespace keeps to itself;
//  2. else the rules svcNS exports to ns, the same way;
//  3. else the rules the root namespace exports to ns.
//
// The first step that finds a host decides, even when none of its rules applies
// to the proxy: of the rules found, one of the proxy's namespace whose
// workloadSelector selects the proxy (outbound only), else the last without a
// selector. A rule of a third namespace never applies.
//
// Rules of one host in one set are merged, oldest first (those with a selector
// before the rest), when they are exported alike and select alike: the first keeps
// its name and traffic policy (or takes the first later one's when it has none) and
// gains the subsets of later ones whose names it lacks. A rule exported more widely
// than one before it is merged into that one and kept on its own as well.

// ruleIndex is a snapshot's DestinationRules, indexed as above.
type ruleIndex struct {
	local    map[string]*ruleSet // by namespace: what its own proxies may take
	exported map[string]*ruleSet // by namespace: what it exports to others
	private  map[string]*ruleSet // by namespace: what it keeps to itself (the root namespace's are step 1 for its proxies)
}

// ruleSet is rules by host, merged.
type ruleSet struct {
	exact map[string][]*mergedRule
	wild  map[string][]*mergedRule
}

// mergedRule is one or more rules of a host merged (ruleSet.add).
type mergedRule struct {
	res      *api.Resource // the first rule, or a copy of it with the others merged in
	merged   bool          // whether res is a copy
	exportTo []string      // sorted, without repeats
	selector map[string]string
	selects  bool // whether it has a workloadSelector
}

func newRuleIndex(rules []*api.Resource, domain string, defaultExportTo []string) *ruleIndex {
	x := &ruleIndex{local: map[string]*ruleSet{}, exported: map[string]*ruleSet{}, private: map[string]*ruleSet{}}
	// Oldest first, those with a selector before the rest.
	ordered := slices.Clone(rules)
	slices.SortStableFunc(ordered, func(a, b *api.Resource) int {
		sa, sb := a.Spec.(*networking.DestinationRule).WorkloadSelector != nil, b.Spec.(*networking.DestinationRule).WorkloadSelector != nil
		switch {
		case sa && !sb:
			return -1
		case sb && !sa:
			return 1
		}
		return 0
	})
	set := func(m map[string]*ruleSet, ns string) *ruleSet {
		s := m[ns]
		if s == nil {
			s = &ruleSet{exact: map[string][]*mergedRule{}, wild: map[string][]*mergedRule{}}
			m[ns] = s
		}
		return s
	}
	for _, r := range ordered {
		dr := r.Spec.(*networking.DestinationRule)
		ns := r.Meta.Namespace
		host := ResolveHost(dr.Host, ns, domain)
		exportTo := []string{"."} // a rule with a selector is for its namespace only
		if dr.WorkloadSelector == nil {
			exportTo = slices.Compact(slices.Sorted(slices.Values(dr.ExportTo)))
		}
		if len(exportTo) == 0 || slices.Contains(exportTo, "*") || slices.Contains(exportTo, ".") || slices.Contains(exportTo, ns) {
			set(x.local, ns).add(r, host, exportTo)
		}
		privateOnly := (len(exportTo) == 0 && slices.Contains(defaultExportTo, ".")) ||
			(len(exportTo) == 1 && (exportTo[0] == "." || exportTo[0] == ns))
		if privateOnly {
			set(x.private, ns).add(r, host, exportTo)
		} else {
			set(x.exported, ns).add(r, host, exportTo)
		}
	}
	return x
}

// add merges rule r (of host) into the set, as the description above says.
func (s *ruleSet) add(r *api.Resource, host string, exportTo []string) {
	byHost := s.exact
	if strings.HasPrefix(host, "*") {
		byHost = s.wild
	}
	dr := r.Spec.(*networking.DestinationRule)
	in := &mergedRule{res: r, exportTo: exportTo, selector: dr.GetWorkloadSelector().GetMatchLabels(), selects: dr.WorkloadSelector != nil}
	separately := true
	for _, m := range byHost[host] {
		switch {
		case slices.Equal(exportTo, m.exportTo):
			separately = false
		case len(m.exportTo) > 0 && isSuperset(exportTo, m.exportTo):
			separately = true
		default:
			separately = true
			continue
		}
		if in.selects && m.selects && !maps.Equal(in.selector, m.selector) {
			separately = true
			continue
		}
		if in.selects == m.selects {
			separately = false
		}
		m.merge(dr)
	}
	if separately {
		byHost[host] = append(byHost[host], in)
	}
}

// merge adds to m the subsets of dr whose names m lacks, and dr's traffic policy if
// m has none.
func (m *mergedRule) merge(dr *networking.DestinationRule) {
	if !m.merged {
		c := *m.res
		c.Spec = proto.Clone(m.res.Spec)
		m.res, m.merged = &c, true
	}
	into := m.res.Spec.(*networking.DestinationRule)
	for _, s := range dr.Subsets {
		if !slices.ContainsFunc(into.Subsets, func(have *networking.Subset) bool { return have.Name == s.Name }) {
			into.Subsets = append(into.Subsets, s)
		}
	}
	if into.TrafficPolicy == nil {
		into.TrafficPolicy = dr.TrafficPolicy
	}
}

// isSuperset reports whether sorted set a holds every element of sorted set b.
func isSuperset(a, b []string) bool {
	for _, e := range b {
		if _, ok := slices.BinarySearch(a, e); !ok {
			return false
		}
	}
	return true
}

// find returns the rules of the most specific host of the set that matches host:
// host itself, else the most specific wildcard (registry's own order of host
// names: longer first).
func (s *ruleSet) find(host string) ([]*mergedRule, bool) {
	if s == nil {
		return nil, false
	}
	if strings.HasPrefix(host, "*") {
		if rs, ok := s.wild[host]; ok {
			return rs, true
		}
	} else if rs, ok := s.exact[host]; ok {
		return rs, true
	}
	needle := strings.TrimPrefix(host, "*")
	best := ""
	for h := range s.wild {
		if strings.HasSuffix(needle, h[1:]) && (best == "" || moreSpecific(h, best)) {
			best = h
		}
	}
	if best == "" {
		return nil, false
	}
	return s.wild[best], true
}

// moreSpecific orders host names as istiod does: names before wildcards, longer
// before shorter, then alphabetically.
func moreSpecific(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	if aw != bw {
		return bw
	}
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a < b
}

// Rules is the DestinationRules a proxy of one namespace may take.
type Rules struct {
	ns, root string
	x        *ruleIndex
}

// DestinationRules returns the DestinationRules for proxies of namespace ns, in a
// mesh of root namespace root.
func (s *Snapshot) DestinationRules(ns, root string) *Rules {
	return &Rules{ns: ns, root: root, x: s.rules}
}

// DestinationRule returns the DestinationRule that applies to host for a proxy with
// labels in namespace ns (see Rules.For). To look up many hosts for one namespace,
// take DestinationRules once.
func (s *Snapshot) DestinationRule(host, ns, svcNS, root string, labels map[string]string) *api.Resource {
	return s.DestinationRules(ns, root).For(host, svcNS, labels)
}

// For returns the DestinationRule that applies to outbound traffic to host, a
// service of namespace svcNS, from a proxy with labels.
func (r *Rules) For(host, svcNS string, labels map[string]string) *api.Resource {
	return r.pick(r.candidates(host, svcNS), labels, true)
}

// Inbound returns the DestinationRule that applies to a proxy's own service host of
// namespace svcNS, for its inbound side: rules with a workloadSelector do not
// apply there, as in Istio.
func (r *Rules) Inbound(host, svcNS string) *api.Resource {
	return r.pick(r.candidates(host, svcNS), nil, false)
}

func (r *Rules) candidates(host, svcNS string) []*mergedRule {
	own := r.x.local[r.ns]
	if r.ns == r.root {
		own = r.x.private[r.root]
	}
	if rs, ok := own.find(host); ok {
		return rs
	}
	for _, ns := range []string{svcNS, r.root} {
		if rs, ok := r.x.exported[ns].find(host); ok {
			var out []*mergedRule
			for _, m := range rs {
				if len(m.exportTo) == 0 || slices.Contains(m.exportTo, "*") || slices.Contains(m.exportTo, r.ns) {
					out = append(out, m)
				}
			}
			if len(out) > 0 {
				return out
			}
		}
	}
	return nil
}

func (r *Rules) pick(rs []*mergedRule, labels map[string]string, outbound bool) *api.Resource {
	var catchAll *api.Resource
	for _, m := range rs {
		if !m.selects {
			catchAll = m.res
		} else if outbound && m.res.Meta.Namespace == r.ns && LabelsMatch(labels, m.selector) {
			return m.res
		}
	}
	return catchAll
}
