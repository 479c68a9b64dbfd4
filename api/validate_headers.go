package api

import (
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// Header manipulation: the names a route may set, add or remove, and the values
// Envoy accepts (which may hold %VARIABLE% expressions).

func validateHeaderOperations(p *problems, path string, h *networking.Headers) {
	if h == nil {
		return
	}
	if r := h.Request; r != nil {
		validateHeaderOps(p, field(path, "request"), r, true)
	}
	if r := h.Response; r != nil {
		validateHeaderOps(p, field(path, "response"), r, false)
	}
}

// validateHeaderOps checks set, add and remove. Only request set and add may change
// the authority (":authority" or "host").
func validateHeaderOps(p *problems, path string, ops *networking.Headers_HeaderOperations, request bool) {
	for _, op := range []named[map[string]string]{{"set", ops.Set}, {"add", ops.Add}} {
		for _, name := range sortedKeys(op.value) {
			hp := mapKey(field(path, op.name), name)
			validateHeaderOpName(p, hp, name, request)
			if reason := headerValueError(op.value[name]); reason != "" {
				p.add(hp, "%s", reason)
			}
		}
	}
	for i, name := range ops.Remove {
		validateHeaderOpName(p, index(field(path, "remove"), i), name, false)
	}
}

func validateHeaderOpName(p *problems, path, name string, authority bool) {
	switch {
	case name == "":
		p.add(path, "header name must not be empty")
	case authority && authorityHeader(name):
	case strings.HasPrefix(name, ":"):
		p.add(path, "invalid header %q: pseudo-headers cannot be changed (only :authority, in request set and add)", name)
	case strings.EqualFold(name, "host"):
		p.add(path, "invalid header %q: the Host header can only be changed by request set and add", name)
	}
}

func authorityHeader(name string) bool {
	return strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
}

// headerValueError checks a header value for Envoy: no control characters other
// than tab, and every unescaped '%' opening a %VARIABLE% expression that is closed.
// "100%%" is a literal percent sign.
func headerValueError(v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return "header value must not contain control characters, got " + quoteShort(v)
		}
	}
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			i++ // escaped
			continue
		}
		end := strings.IndexByte(v[i+1:], '%')
		if end < 0 {
			return "header value " + quoteShort(v) + " has an unterminated %VARIABLE% expression; write %% for a literal %"
		}
		i += end + 1
	}
	return ""
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return strconv.Quote(s)
}
