package main

// DNS-rebinding protection, as the MCP Python SDK does it: a server bound to a
// loopback address only answers requests whose Host (and Origin, when sent)
// names a loopback address. A page on evil.example that rebinds its name to
// 127.0.0.1 still sends "Host: evil.example:8088" and is refused.

import (
	"net/http"
	"strings"
)

// hostGuard holds the allowed Host and Origin values. A pattern ending in ":*"
// allows any numeric port.
type hostGuard struct {
	allowedHosts   []string
	allowedOrigins []string
}

// isLoopback tells whether a listen address only accepts local connections.
func isLoopback(host string) bool {
	switch strings.Trim(host, "[]") {
	case "127.0.0.1", "localhost", "::1":
		return true
	}
	return false
}

// newHostGuard returns the guard for a listen host, or nil (no checks) when the
// server is bound to a non-loopback address and no extra hosts were configured.
func newHostGuard(listenHost string, extraHosts, extraOrigins []string) *hostGuard {
	if !isLoopback(listenHost) && len(extraHosts) == 0 {
		return nil
	}
	g := &hostGuard{}
	if isLoopback(listenHost) {
		g.allowedHosts = []string{"127.0.0.1:*", "localhost:*", "[::1]:*"}
		g.allowedOrigins = []string{"http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"}
	}
	g.allowedHosts = append(g.allowedHosts, extraHosts...)
	g.allowedOrigins = append(g.allowedOrigins, extraOrigins...)
	return g
}

// check returns 0 when the request may proceed, else the HTTP status to refuse it
// with (421 for a foreign Host, 403 for a foreign Origin) and a message.
func (g *hostGuard) check(r *http.Request) (int, string) {
	if g == nil {
		return 0, ""
	}
	if !matchesAny(r.Host, g.allowedHosts) {
		return http.StatusMisdirectedRequest, "Invalid Host header"
	}
	if origin := r.Header.Get("Origin"); origin != "" && !matchesAny(origin, g.allowedOrigins) {
		return http.StatusForbidden, "Invalid Origin header"
	}
	return 0, ""
}

func matchesAny(value string, patterns []string) bool {
	if value == "" {
		return false
	}
	for _, p := range patterns {
		if value == p {
			return true
		}
		if base := strings.TrimSuffix(p, ":*"); base != p && strings.HasPrefix(value, base+":") {
			if isPort(value[len(base)+1:]) {
				return true
			}
		}
	}
	return false
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// splitList reads a comma-separated environment value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
