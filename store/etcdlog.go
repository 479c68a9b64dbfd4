package store

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcd logs with zap. etcdLogger sends those entries to the node's slog logger, so a
// node writes one log in one format, and keeps out of it what etcd says on every
// healthy start and stop of an embedded member:
//
//   - "Running http and grpc server on single port": navarch gives etcd one client
//     URL, served with mutual TLS; nothing but the node and its peers talks to it.
//   - "simple token is not cryptographically signed": etcd's own authentication is
//     off; clients authenticate with the cluster's certificates.
//   - "Failed to detect schema version" / "failed to update storage version" with
//     "missing term information": a new member checks its storage version before
//     Raft has a term; etcd retries and succeeds a moment later.
//   - while the node stops the member (memberState.stopping), its parts reporting
//     the stop itself: listeners closed ("use of closed network connection", "http: Server closed",
//     "mux: listener closed"), "grpc: the server has been stopped", work cut short
//     ("context canceled", "etcdserver: request cancelled"), and its own
//     connections to peers "closed". (A peer's going away stays a warning.)
//
// Those are logged at debug level; everything else keeps its level (zap's levels
// above error become slog's error).
type etcdLogger struct {
	log    *slog.Logger
	level  zapcore.Level
	member *memberState
	attrs  []slog.Attr // from With
}

// memberState is what the node and etcd's log share of a member.
type memberState struct {
	// stopping is set when the node stops the member: its reports of the stop are
	// quieted.
	stopping atomic.Bool
	// serverError is the error of etcd's last "server error", what it stopped on
	// (a member removed from the cluster stops so).
	serverError atomic.Pointer[string]
}

// newEtcdLogger returns a zap logger for etcd that writes to log from level up and
// keeps member's state (nil: a member of its own).
func newEtcdLogger(log *slog.Logger, level string, member *memberState) *zap.Logger {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		lvl = zapcore.WarnLevel
	}
	if member == nil {
		member = new(memberState)
	}
	return zap.New(&etcdLogger{log: log.With("component", "etcd"), level: lvl, member: member})
}

func (c *etcdLogger) Enabled(l zapcore.Level) bool { return l >= c.level }

func (c *etcdLogger) With(fields []zapcore.Field) zapcore.Core {
	w := *c
	w.attrs = append(slices.Clip(c.attrs), attrsOf(fields)...)
	return &w
}

func (c *etcdLogger) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *etcdLogger) Write(e zapcore.Entry, fields []zapcore.Field) error {
	attrs := append(slices.Clip(c.attrs), attrsOf(fields)...)
	if e.Message == "server error" {
		for _, a := range attrs {
			if a.Key == "error" {
				s := a.Value.String()
				c.member.serverError.Store(&s)
			}
		}
	}
	lvl := slogLevel(e.Level)
	if lvl > slog.LevelDebug && c.routine(e.Message, attrs) {
		lvl = slog.LevelDebug
	}
	ctx := context.Background()
	h := c.log.Handler()
	if !h.Enabled(ctx, lvl) {
		return nil
	}
	r := slog.NewRecord(e.Time, lvl, e.Message, 0)
	r.AddAttrs(attrs...)
	return h.Handle(ctx, r)
}

func (c *etcdLogger) Sync() error { return nil }

// routine tells the entries of a healthy start or stop (see etcdLogger).
func (c *etcdLogger) routine(msg string, attrs []slog.Attr) bool {
	var errText string
	for _, a := range attrs {
		if a.Key == "error" {
			errText = a.Value.String()
		}
	}
	switch {
	case strings.HasPrefix(msg, "Running http and grpc server on single port"),
		msg == "simple token is not cryptographically signed":
		return true
	case msg == "Failed to detect schema version" || msg == "failed to update storage version":
		return strings.Contains(errText, "missing term information")
	case c.member.stopping.Load():
		e := strings.ToLower(msg + ": " + errText)
		return strings.Contains(e, "closed") || strings.Contains(e, "stopped") || strings.Contains(e, "cancel")
	}
	return false
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// attrsOf turns zap fields into slog attributes, in their order.
func attrsOf(fields []zapcore.Field) []slog.Attr {
	attrs := make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		enc := zapcore.NewMapObjectEncoder()
		f.AddTo(enc)
		keys := make([]string, 0, len(enc.Fields))
		for k := range enc.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys) // a field may add more than one key (an error adds errorVerbose)
		for _, k := range keys {
			attrs = append(attrs, slog.Any(k, enc.Fields[k]))
		}
	}
	return attrs
}
