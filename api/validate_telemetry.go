package api

import (
	"errors"
	"strings"

	"github.com/google/cel-go/common"
	"github.com/google/cel-go/parser"
	telemetry "istio.io/api/telemetry/v1alpha1"
)

// parseCEL checks that expr parses as CEL, as Envoy's access log filter must compile
// it (a proxy would reject the whole listener otherwise). Attributes are only known
// at the proxy, so it is not type-checked.
func parseCEL(expr string) error {
	p, err := parser.NewParser()
	if err != nil {
		return err
	}
	if _, issues := p.Parse(common.NewTextSource(expr)); issues != nil && len(issues.GetErrors()) > 0 {
		var msgs []string
		for _, e := range issues.GetErrors() {
			msgs = append(msgs, e.Message)
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

func validateTelemetry(p *problems, t *telemetry.Telemetry) {
	validateTargetRefs(p, t.Selector, t.TargetRef, t.TargetRefs)
	for i, tr := range t.Tracing {
		tp := index("spec.tracing", i)
		if tr == nil {
			continue
		}
		validateProviders(p, field(tp, "providers"), tr.Providers)
		if v := tr.RandomSamplingPercentage.GetValue(); v < 0 || v > 100 {
			p.add(field(tp, "randomSamplingPercentage"), "must be 0-100, got %g", v)
		}
		for _, name := range sortedKeys(tr.CustomTags) {
			validateCustomTag(p, mapKey(field(tp, "customTags"), name), name, tr.CustomTags[name])
		}
	}
	for i, m := range t.Metrics {
		mp := index("spec.metrics", i)
		if m == nil {
			continue
		}
		validateProviders(p, field(mp, "providers"), m.Providers)
		validateDuration(p, field(mp, "reportingInterval"), m.ReportingInterval)
		for j, o := range m.Overrides {
			validateMetricsOverride(p, index(field(mp, "overrides"), j), o)
		}
	}
	for i, l := range t.AccessLogging {
		lp := index("spec.accessLogging", i)
		if l == nil {
			continue
		}
		validateProviders(p, field(lp, "providers"), l.Providers)
		if l.Filter != nil {
			if l.Filter.Expression == "" {
				p.add(field(lp, "filter.expression"), "required")
			} else if err := parseCEL(l.Filter.Expression); err != nil {
				p.add(field(lp, "filter.expression"), "must be a CEL expression: %v", err)
			}
		}
	}
}

func validateProviders(p *problems, path string, providers []*telemetry.ProviderRef) {
	for i, pr := range providers {
		if pr.GetName() == "" {
			p.add(field(index(path, i), "name"), "required")
		}
	}
}

func validateCustomTag(p *problems, path, name string, tag *telemetry.Tracing_CustomTag) {
	if name == "" {
		p.add(path, "tag name must not be empty")
	}
	switch t := tag.GetType().(type) {
	case nil: // accepted, as Istio accepts it: the tag is not added
	case *telemetry.Tracing_CustomTag_Literal:
		if t.Literal.GetValue() == "" {
			p.add(field(path, "literal.value"), "required")
		}
	case *telemetry.Tracing_CustomTag_Header:
		if t.Header.GetName() == "" {
			p.add(field(path, "header.name"), "required")
		}
	case *telemetry.Tracing_CustomTag_Environment:
		if t.Environment.GetName() == "" {
			p.add(field(path, "environment.name"), "required")
		}
	}
}

func validateMetricsOverride(p *problems, path string, o *telemetry.MetricsOverrides) {
	if o == nil {
		p.add(path, "must not be null")
		return
	}
	for _, name := range sortedKeys(o.TagOverrides) {
		tp := mapKey(field(path, "tagOverrides"), name)
		to := o.TagOverrides[name]
		switch {
		case to == nil:
			p.add(tp, "must not be null")
		case to.Operation == telemetry.MetricsOverrides_TagOverride_UPSERT && to.Value == "":
			p.add(field(tp, "value"), "required when operation is UPSERT")
		case to.Operation == telemetry.MetricsOverrides_TagOverride_REMOVE && to.Value != "":
			p.add(field(tp, "value"), "must not be set when operation is REMOVE, got %q", to.Value)
		}
	}
	if cm, ok := o.GetMatch().GetMetricMatch().(*telemetry.MetricSelector_CustomMetric); ok && cm.CustomMetric == "" {
		p.add(field(path, "match.customMetric"), "must not be empty")
	}
}
