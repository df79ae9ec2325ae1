// Command workspace-assistant-mcp is a small MCP server on the official Go SDK
// (github.com/modelcontextprotocol/go-sdk): seven workspace tools over MCP
// Streamable HTTP, so the platform has a real non-Python upstream to publish,
// govern and test against.
//
// Environment:
//
//	PORT                 listen port (default 8088)
//	HOST                 listen address (default 127.0.0.1; the container image sets 0.0.0.0)
//	MCP_PATH             endpoint path (default /mcp)
//	MCP_ALLOWED_ORIGINS  browser origins allowed to call it, comma-separated (default: none)
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	serverName    = "workspace-assistant-mcp"
	serverVersion = "0.2.0"
	// maxSessions bounds the MCP sessions kept in memory; idle ones end after sessionIdle.
	maxSessions = 10000
	sessionIdle = 30 * time.Minute
)

type config struct {
	host           string
	port           int
	path           string
	allowedOrigins []string
}

// loadConfig reads the environment; getenv is os.Getenv outside tests.
func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{host: "127.0.0.1", port: 8088, path: "/mcp"}
	if v := strings.TrimSpace(getenv("HOST")); v != "" {
		cfg.host = v
	}
	if v := strings.TrimSpace(getenv("PORT")); v != "" {
		port, err := strconv.Atoi(v)
		if err != nil || port < 1 || port > 65535 {
			return cfg, fmt.Errorf("PORT must be a number from 1 to 65535, got %q", v)
		}
		cfg.port = port
	}
	if v := strings.TrimSpace(getenv("MCP_PATH")); v != "" {
		cfg.path = "/" + strings.Trim(v, "/")
	}
	for _, origin := range strings.Split(getenv("MCP_ALLOWED_ORIGINS"), ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			cfg.allowedOrigins = append(cfg.allowedOrigins, origin)
		}
	}
	return cfg, nil
}

// newMCPServer is the SDK server with the seven tools.
func newMCPServer(logger *slog.Logger) *mcp.Server {
	server := mcp.NewServer(&mcp.Implementation{Name: serverName, Version: serverVersion},
		&mcp.ServerOptions{Logger: logger,
			Instructions: "Workspace helpers: text case, slugs, sums, tasks and release notes."})
	newToolbox().register(server)
	return server
}

// newHandler routes MCP_PATH to the SDK's Streamable HTTP handler (JSON answers, sessions,
// DNS-rebinding protection for loopback requests) behind Go's cross-origin protection, and
// answers GET /healthz for container probes.
func newHandler(cfg config, server *mcp.Server, logger *slog.Logger) (http.Handler, error) {
	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{JSONResponse: true, SessionTimeout: sessionIdle, Logger: logger})
	origins := http.NewCrossOriginProtection()
	for _, origin := range cfg.allowedOrigins {
		if err := origins.AddTrustedOrigin(origin); err != nil {
			return nil, fmt.Errorf("MCP_ALLOWED_ORIGINS: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.path, origins.Handler(limitSessions(server, maxSessions, streamable)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux, nil
}

// limitSessions refuses to open a session (a POST without Mcp-Session-Id) while `limit`
// sessions are open, so a flood of initialize requests cannot exhaust memory.
func limitSessions(server *mcp.Server, limit int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost && req.Header.Get("Mcp-Session-Id") == "" {
			open := 0
			for range server.Sessions() {
				open++
			}
			if open >= limit {
				w.Header().Set("Retry-After", "60")
				http.Error(w, fmt.Sprintf("too many open MCP sessions (%d); end one with DELETE or retry later",
					open), http.StatusServiceUnavailable)
				return
			}
		}
		next.ServeHTTP(w, req)
	})
}

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("server", serverName)
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		logger.Error(err.Error())
		os.Exit(2)
	}
	server := newMCPServer(logger)
	handler, err := newHandler(cfg, server, logger)
	if err != nil {
		logger.Error(err.Error())
		os.Exit(2)
	}
	addr := net.JoinHostPort(cfg.host, strconv.Itoa(cfg.port))
	srv := &http.Server{
		Addr:              addr,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // no WriteTimeout: a session's GET stream stays open
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		logger.Error(fmt.Sprintf("cannot listen on %s: %v", addr, err))
		os.Exit(1)
	}
	logger.Info(fmt.Sprintf("MCP endpoint http://%s%s", listener.Addr(), cfg.path))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(listener) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		logger.Info("shutting down")
		for session := range server.Sessions() {
			_ = session.Close() // ends open GET streams, so Shutdown need not wait for them
		}
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = srv.Shutdown(shutdownCtx)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error(err.Error())
		os.Exit(1)
	}
}
