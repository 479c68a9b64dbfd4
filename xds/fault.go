package xds

import (
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	networking "istio.io/api/networking/v1alpha3"
)

// fault translates a VirtualService's fault injection into the fault filter's per-route
// configuration. An abort's HTTP status reaches gRPC clients mapped to a gRPC status
// (500 becomes Unknown, 503 Unavailable); grpcStatus is passed as a gRPC code.
func fault(f *networking.HTTPFaultInjection) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if a := f.Abort; a != nil {
		abort := &faultv3.FaultAbort{Percentage: percentOrAll(a.Percentage)}
		switch e := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(e.HttpStatus)}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: grpcCode(e.GrpcStatus)}
		}
		if abort.ErrorType != nil {
			out.Abort = abort
		}
	}
	if d := f.Delay; d != nil {
		if fixed := d.GetFixedDelay(); fixed != nil {
			out.Delay = &faultcommonv3.FaultDelay{
				FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: fixed},
				Percentage:         percentOrAll(d.Percentage),
			}
		}
	}
	return out
}

// percentOrAll translates a percentage; absent means every request, as in Istio.
func percentOrAll(p *networking.Percent) *typev3.FractionalPercent {
	if p == nil {
		return fractionalPercent(100)
	}
	return fractionalPercent(p.Value)
}

// fractionalPercent turns a percentage (0-100, fractions allowed) into parts per million.
func fractionalPercent(percent float64) *typev3.FractionalPercent {
	percent = min(max(percent, 0), 100)
	return &typev3.FractionalPercent{
		Numerator:   uint32(percent*10000 + 0.5),
		Denominator: typev3.FractionalPercent_MILLION,
	}
}

// grpcCode maps a gRPC status name ("UNAVAILABLE") or number to its code; unknown
// names map to Unknown (validation rejects them before they get here).
func grpcCode(name string) uint32 {
	var c codes.Code
	if err := c.UnmarshalJSON([]byte(`"` + name + `"`)); err != nil {
		return uint32(codes.Unknown)
	}
	return uint32(c)
}
