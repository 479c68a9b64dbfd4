package ca

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterExpiryMetrics registers with reg, under istiod's names, when the root of
// the signing chain and the signing chain itself (its earliest expiry) expire, as
// Unix timestamps and as seconds left (negative once expired); 0 before Ready.
// They are read at each scrape, so they follow imports and rotations.
func (a *Authority) RegisterExpiryMetrics(reg prometheus.Registerer) {
	root := func() time.Time {
		if is := a.cur.Load(); is != nil && len(is.roots) > 0 {
			return is.roots[0].NotAfter
		}
		return time.Time{}
	}
	chain := func() time.Time {
		is := a.cur.Load()
		if is == nil {
			return time.Time{}
		}
		var first time.Time
		for _, c := range is.chain[:max(len(is.chain)-1, 1)] { // the root is root's
			if first.IsZero() || c.NotAfter.Before(first) {
				first = c.NotAfter
			}
		}
		return first
	}
	gauge := func(name, help string, at func() time.Time, left bool) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			t := at()
			switch {
			case t.IsZero():
				return 0
			case left:
				return time.Until(t).Seconds()
			}
			return float64(t.Unix())
		})
	}
	reg.MustRegister(
		gauge("citadel_server_root_cert_expiry_timestamp", "Unix time, in seconds, when the root of the signing chain expires.", root, false),
		gauge("citadel_server_root_cert_expiry_seconds", "Seconds before the root of the signing chain expires; negative once it has.", root, true),
		gauge("citadel_server_cert_chain_expiry_timestamp", "Unix time, in seconds, when the signing chain (below its root) first expires.", chain, false),
		gauge("citadel_server_cert_chain_expiry_seconds", "Seconds before the signing chain (below its root) first expires; negative once it has.", chain, true),
	)
}
