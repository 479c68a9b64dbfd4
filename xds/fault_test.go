package xds

import (
	"testing"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
)

// TestFaultShares: a fault applies to its percentage of requests; without one, to
// none (an abort's share left unset, Envoy's and grpc-go's 0%), but a delay's
// deprecated integer percent, as istiod translates them.
func TestFaultShares(t *testing.T) {
	share := func(p *typev3.FractionalPercent) string {
		if p == nil {
			return "unset"
		}
		return p.Denominator.String() + ":" + itoa(int(p.Numerator))
	}
	delay := func(d *networking.HTTPFaultInjection_Delay) string {
		d.HttpDelayType = &networking.HTTPFaultInjection_Delay_FixedDelay{FixedDelay: durationpb.New(1)}
		return share(fault(&networking.HTTPFaultInjection{Delay: d}).GetDelay().GetPercentage())
	}
	abort := func(a *networking.HTTPFaultInjection_Abort) string {
		a.ErrorType = &networking.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: 503}
		return share(fault(&networking.HTTPFaultInjection{Abort: a}).GetAbort().GetPercentage())
	}
	for _, c := range []struct{ name, got, want string }{
		{"a delay's percentage", delay(&networking.HTTPFaultInjection_Delay{Percentage: &networking.Percent{Value: 12.5}}), "MILLION:125000"},
		{"a delay without one", delay(&networking.HTTPFaultInjection_Delay{}), "HUNDRED:0"},
		//lint:ignore SA1019 the deprecated field is what this case is about
		{"a delay's deprecated percent", delay(&networking.HTTPFaultInjection_Delay{Percent: 30}), "HUNDRED:30"},
		{"an abort's percentage", abort(&networking.HTTPFaultInjection_Abort{Percentage: &networking.Percent{Value: 100}}), "MILLION:1000000"},
		{"an abort without one", abort(&networking.HTTPFaultInjection_Abort{}), "unset"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
}
