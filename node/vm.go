package node

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/navarch/navarch/adapters/vm"
	"github.com/navarch/navarch/store"
	"github.com/navarch/navarch/xds"
)

// vmRegistrar registers, for the xDS server, the proxies that ask to be
// (AUTO_REGISTER_GROUP): Istio's WorkloadGroup auto-registration (adapters/vm).
type vmRegistrar struct{ r *vm.Registrar }

func (v vmRegistrar) Register(ctx context.Context, p *xds.Proxy, id *xds.Identity, healthy *bool) (xds.Registered, error) {
	req := vm.Request{
		Group: p.AutoRegisterGroup, Namespace: p.Namespace, IP: p.IP, Network: p.Network,
		Locality: p.Locality, Labels: p.BootstrapLabels, Healthy: healthy, ProxyID: p.ID,
	}
	if id != nil {
		req.ServiceAccount, req.Authenticated = id.ServiceAccount, true
	}
	reg, err := v.r.Register(ctx, req)
	switch {
	case err == nil:
		return reg, nil
	case errors.Is(err, vm.ErrForbidden):
		return nil, status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, vm.ErrNoGroup): // istiod's code for it
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, store.ErrUnavailable):
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return nil, err
}
