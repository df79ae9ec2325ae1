// Command workspace-assistant-mcp is a small MCP server on the Go standard
// library: seven workspace tools over MCP Streamable HTTP, so the platform has
// a real non-Python upstream to publish, govern and test against.
//
// Environment:
//
//	PORT                 listen port (default 8088)
//	HOST                 listen address (default 127.0.0.1; the container image sets 0.0.0.0)
//	MCP_PATH             endpoint path (default /mcp)
//	MCP_ALLOWED_HOSTS    extra Host values to accept, comma-separated ("name:*" = any port)
//	MCP_ALLOWED_ORIGINS  extra Origin values to accept, comma-separated
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	host           string
	port           int
	path           string
	allowedHosts   []string
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
	cfg.allowedHosts = splitList(getenv("MCP_ALLOWED_HOSTS"))
	cfg.allowedOrigins = splitList(getenv("MCP_ALLOWED_ORIGINS"))
	return cfg, nil
}

func newHandler(cfg config) *mcpHandler {
	return &mcpHandler{
		path:     cfg.path,
		tools:    newToolbox(),
		sessions: newSessionStore(10000, time.Hour),
		guard:    newHostGuard(cfg.host, cfg.allowedHosts, cfg.allowedOrigins),
		maxBody:  defaultMaxBodyBytes,
	}
}

func main() {
	logger := log.New(os.Stderr, serverName+": ", log.LstdFlags|log.LUTC)
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		logger.Print(err)
		os.Exit(2)
	}
	addr := net.JoinHostPort(cfg.host, strconv.Itoa(cfg.port))
	srv := &http.Server{
		Addr:              addr,
		Handler:           newHandler(cfg),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          logger,
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		logger.Printf("cannot listen on %s: %v", addr, err)
		os.Exit(1)
	}
	logger.Printf("MCP endpoint http://%s%s (tools: %s)", listener.Addr(), cfg.path,
		strings.Join(newToolbox().order, ", "))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(listener) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		logger.Print("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = srv.Shutdown(shutdownCtx)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Print(err)
		os.Exit(1)
	}
}
