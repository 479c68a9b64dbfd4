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
		abort := &faultv3.FaultAbort{}
		if a.Percentage != nil { // none: no request is aborted (Envoy's and grpc-go's 0%), as Istio documents it
			abort.Percentage = fractionalPercent(a.Percentage.Value)
		}
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
				Percentage:         delayPercent(d),
			}
		}
	}
	return out
}

// delayPercent is the share of requests a delay applies to, as istiod has it: its
// percentage, else its deprecated integer percent (unset: 0, no request is
// delayed, as Istio documents it; a negative one, read as unsigned, is every
// request).
func delayPercent(d *networking.HTTPFaultInjection_Delay) *typev3.FractionalPercent {
	if d.Percentage != nil {
		return fractionalPercent(d.Percentage.Value)
	}
	//lint:ignore SA1019 deprecated in favour of percentage, but still accepted and applied
	return &typev3.FractionalPercent{Numerator: uint32(d.Percent), Denominator: typev3.FractionalPercent_HUNDRED}
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
