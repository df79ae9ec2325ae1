package main

// The server as a client sees it: the SDK's own client over real HTTP (httptest), plus the
// HTTP-level guards this file adds around the SDK handler.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func startServer(t *testing.T, cfg config) (*httptest.Server, *mcp.Server) {
	t.Helper()
	server := newMCPServer(nil)
	handler, err := newHandler(cfg, server, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(handler)
	t.Cleanup(ts.Close)
	return ts, server
}

func connect(t *testing.T, url string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil)
	session, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = session.Close() })
	return session
}

func TestSDKClientListsAndCallsTheTools(t *testing.T) {
	ts, _ := startServer(t, config{path: "/agent-mcp"})
	session := connect(t, ts.URL+"/agent-mcp")
	ctx := context.Background()
	if got := session.InitializeResult().ServerInfo.Name; got != serverName {
		t.Errorf("server name = %q", got)
	}
	listed, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range listed.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if got := strings.Join(names, ","); got != "add,create_task,draft_release_note,echo,lower,slugify,upper" {
		t.Errorf("tools = %s", got)
	}
	result, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 2, "b": 3}})
	if err != nil || result.IsError || result.Content[0].(*mcp.TextContent).Text != "5" {
		t.Errorf("add(2, 3) = %+v, %v", result, err)
	}
	bad, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 2, "b": "x"}})
	if err != nil || !bad.IsError || bad.Content[0].(*mcp.TextContent).Text != `argument "b" must be a number, got a string` {
		t.Errorf("add(2, \"x\") = %+v, %v", bad, err)
	}
	if _, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "nope"}); err == nil ||
		!strings.Contains(err.Error(), `unknown tool "nope"`) {
		t.Errorf("an unknown tool gave %v, want a protocol error", err)
	}
}

func TestSessionsAreBounded(t *testing.T) {
	server := newMCPServer(nil)
	handler := limitSessions(server, 1, mcp.NewStreamableHTTPHandler(
		func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{JSONResponse: true}))
	ts := httptest.NewServer(handler)
	t.Cleanup(ts.Close) // after the sessions' cleanups: Close waits for their open GET streams
	first := connect(t, ts.URL)
	client := mcp.NewClient(&mcp.Implementation{Name: "second", Version: "1"}, nil)
	if _, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: ts.URL}, nil); err == nil ||
		!strings.Contains(err.Error(), "Service Unavailable") {
		t.Errorf("a second session while one is open: %v", err)
	}
	_ = first.Close()
	connect(t, ts.URL) // room again once the first ended
}

func TestHTTPGuards(t *testing.T) {
	ts, _ := startServer(t, config{path: "/mcp", allowedOrigins: []string{"https://app.example"}})
	post := func(headers map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range headers {
			req.Header.Set(k, v)
			if k == "Host" {
				req.Host = v
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"plain", nil, http.StatusOK},
		{"rebound Host on a loopback connection", map[string]string{"Host": "evil.example"}, http.StatusForbidden},
		{"cross-site browser", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign Origin", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"trusted Origin", map[string]string{"Origin": "https://app.example"}, http.StatusOK},
	}
	for _, c := range cases {
		if got := post(c.headers); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %v %v", resp, err)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	env := map[string]string{"PORT": "9000", "MCP_PATH": "agent/", "HOST": "0.0.0.0",
		"MCP_ALLOWED_ORIGINS": " https://a.example ,,https://b.example"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil || cfg.port != 9000 || cfg.path != "/agent" || cfg.host != "0.0.0.0" ||
		len(cfg.allowedOrigins) != 2 {
		t.Errorf("config = %+v, %v", cfg, err)
	}
	defaults, _ := loadConfig(func(string) string { return "" })
	if defaults.port != 8088 || defaults.path != "/mcp" || defaults.host != "127.0.0.1" {
		t.Errorf("defaults = %+v", defaults)
	}
	for _, port := range []string{"0", "70000", "http"} {
		if _, err := loadConfig(func(k string) string { return map[string]string{"PORT": port}[k] }); err == nil {
			t.Errorf("PORT=%s was accepted", port)
		}
	}
	if _, err := newHandler(config{path: "/mcp", allowedOrigins: []string{"not a url"}}, newMCPServer(nil), nil); err == nil {
		t.Error("a malformed MCP_ALLOWED_ORIGINS entry was accepted")
	}
}
