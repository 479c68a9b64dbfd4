package api

import "strings"

// protocol is a port protocol as Istio names them (case-insensitive in configs).
type protocol int

const (
	protoUnknown protocol = iota
	protoHTTP
	protoHTTP2
	protoHTTPS
	protoGRPC
	protoGRPCWeb
	protoHTTPProxy
	protoTCP
	protoTLS
	protoUDP
	protoMongo
	protoMySQL
	protoRedis
)

// knownProtocols lists the protocols parseProtocol accepts, for error messages.
const knownProtocols = "HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, HTTP_PROXY, TCP, TLS, UDP, MONGO, MYSQL, REDIS"

func parseProtocol(s string) protocol {
	switch strings.ToLower(s) {
	case "http":
		return protoHTTP
	case "http2":
		return protoHTTP2
	case "https":
		return protoHTTPS
	case "grpc":
		return protoGRPC
	case "grpc-web":
		return protoGRPCWeb
	case "http_proxy":
		return protoHTTPProxy
	case "tcp":
		return protoTCP
	case "tls":
		return protoTLS
	case "udp":
		return protoUDP
	case "mongo":
		return protoMongo
	case "mysql":
		return protoMySQL
	case "redis":
		return protoRedis
	}
	return protoUnknown
}

// http reports whether the protocol is carried over HTTP.
func (p protocol) http() bool {
	switch p {
	case protoHTTP, protoHTTP2, protoHTTPProxy, protoGRPC, protoGRPCWeb:
		return true
	}
	return false
}

// tcp reports whether the protocol is carried over TCP but not as HTTP (Istio's IsTCP).
func (p protocol) tcp() bool {
	switch p {
	case protoTCP, protoHTTPS, protoTLS, protoMongo, protoMySQL, protoRedis:
		return true
	}
	return false
}

// tls reports whether the protocol is carried over TLS.
func (p protocol) tls() bool { return p == protoHTTPS || p == protoTLS }

// validateProtocol checks an optional port protocol; empty means "detect".
func validateProtocol(p *problems, path, s string) {
	if s != "" && parseProtocol(s) == protoUnknown {
		p.add(path, "unknown protocol %q; supported: %s", s, knownProtocols)
	}
}
