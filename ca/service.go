package ca

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// TrustBundleHeader is the response header of CreateCertificate that carries the
// whole trust bundle (PEM, every root trusted: two during a rotation), so that an
// agent writes all of them while the response's chain ends with only the current
// root. gRPC text headers may not hold newlines, so it is a binary ("-bin") header:
// base64 on the wire, PEM to the application. istio-agent ignores it.
const TrustBundleHeader = "x-navarch-trust-bundle-bin"

// CertificateService is the CSR API: Istio's IstioCertificateService
// (istio.v1.auth.IstioCertificateService/CreateCertificate), so istio-agent and
// navarch's agent can both use it. Serve it over TLS only: join tokens are bearer
// secrets.
type CertificateService struct {
	pb.UnimplementedIstioCertificateServiceServer
	a       *Authority
	log     *slog.Logger
	metrics *Metrics
}

var _ pb.IstioCertificateServiceServer = (*CertificateService)(nil)

// NewCertificateService returns the CSR API of authority a. metrics may be nil.
func NewCertificateService(a *Authority, metrics *Metrics, log *slog.Logger) *CertificateService {
	return &CertificateService{a: a, metrics: metrics, log: log.With("component", "ca")}
}

// Register registers the service on s.
func (s *CertificateService) Register(srv grpc.ServiceRegistrar) {
	pb.RegisterIstioCertificateServiceServer(srv, s)
}

// CreateCertificate authenticates the caller (join token or client certificate) and
// signs its CSR for its own identity. The response's chain is leaf first, root last;
// the TrustBundleHeader header carries every trusted root.
func (s *CertificateService) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	s.metrics.count(func(m *Metrics) prometheus.Counter { return m.requests })
	id, err := s.a.Authenticate(ctx)
	if err != nil {
		s.metrics.count(func(m *Metrics) prometheus.Counter { return m.authFailures })
		s.log.Info("CSR refused: caller not authenticated", "err", err)
		return nil, grpcError(err)
	}
	if imp := req.GetMetadata().GetFields()["ImpersonatedIdentity"]; imp != nil {
		return nil, status.Errorf(codes.PermissionDenied, "impersonation (metadata ImpersonatedIdentity %q) is not supported: %s may only get certificates for itself", imp.GetStringValue(), id)
	}
	secs := req.GetValidityDuration()
	if secs > math.MaxInt64/int64(time.Second) {
		return nil, status.Errorf(codes.InvalidArgument, "requested lifetime of %d seconds is out of range", secs)
	}
	chain, err := s.a.Sign([]byte(req.GetCsr()), id, time.Duration(secs)*time.Second)
	if err != nil {
		s.metrics.count(func(m *Metrics) prometheus.Counter { return m.refused })
		s.log.Info("CSR refused", "identity", id.SPIFFE(), "err", err)
		return nil, grpcError(err)
	}
	s.metrics.count(func(m *Metrics) prometheus.Counter { return m.issued })
	if err := grpc.SetHeader(ctx, metadata.Pairs(TrustBundleHeader, s.a.TrustBundlePEM())); err != nil {
		s.log.Debug("setting the trust bundle header", "err", err)
	}
	return &pb.IstioCertificateResponse{CertChain: chain}, nil
}

// grpcError maps the CA's errors to gRPC status codes.
func grpcError(err error) error {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, ErrRefused):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrNotReady), errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// Metrics counts CSRs, under the names istiod uses.
type Metrics struct {
	requests, issued, refused, authFailures prometheus.Counter
}

// NewMetrics registers the CA's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests:     prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_csr_count", Help: "CSRs received."}),
		issued:       prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_success_cert_issuance_count", Help: "Certificates issued."}),
		refused:      prometheus.NewCounter(prometheus.CounterOpts{Name: "navarch_ca_csr_refused_count", Help: "CSRs refused (bad CSR, key type, SANs or lifetime)."}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_authentication_failure_count", Help: "CSRs whose caller could not be authenticated."}),
	}
	reg.MustRegister(m.requests, m.issued, m.refused, m.authFailures)
	return m
}

func (m *Metrics) count(which func(*Metrics) prometheus.Counter) {
	if m != nil {
		which(m).Inc()
	}
}
