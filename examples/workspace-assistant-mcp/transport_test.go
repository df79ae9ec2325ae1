package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testServer runs the handler as if bound to 127.0.0.1 (host checks on).
func testServer(t *testing.T) (*httptest.Server, *mcpHandler) {
	t.Helper()
	cfg, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

type reply struct {
	status  int
	header  http.Header
	body    string
	decoded map[string]interface{}
}

func send(t *testing.T, srv *httptest.Server, method, sid, body string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/mcp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
	}
	if sid != "" {
		req.Header.Set(headerSessionID, sid)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.decoded); err != nil {
			t.Fatalf("invalid JSON body %q: %v", raw, err)
		}
	}
	return r
}

func initialize(t *testing.T, srv *httptest.Server, version string) (string, reply) {
	t.Helper()
	r := send(t, srv, http.MethodPost, "", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":`+
		`{"protocolVersion":"`+version+`","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if r.status != http.StatusOK {
		t.Fatalf("initialize: %d %s", r.status, r.body)
	}
	sid := r.header.Get(headerSessionID)
	if sid == "" {
		t.Fatal("initialize returned no Mcp-Session-Id")
	}
	return sid, r
}

func errorCode(r reply) float64 {
	e, _ := r.decoded["error"].(map[string]interface{})
	code, _ := e["code"].(float64)
	return code
}

func result(r reply) map[string]interface{} {
	res, _ := r.decoded["result"].(map[string]interface{})
	return res
}

func TestInitializeNegotiatesVersion(t *testing.T) {
	srv, _ := testServer(t)
	for requested, want := range map[string]string{
		"2025-06-18": "2025-06-18", "2025-03-26": "2025-03-26", "2025-11-25": "2025-06-18", "1999-01-01": "2025-06-18",
	} {
		_, r := initialize(t, srv, requested)
		res := result(r)
		if res["protocolVersion"] != want {
			t.Errorf("asked %s, got %v, want %s", requested, res["protocolVersion"], want)
		}
		if caps, _ := res["capabilities"].(map[string]interface{}); caps["tools"] == nil {
			t.Errorf("capabilities %v lack tools", res["capabilities"])
		}
		if info, _ := res["serverInfo"].(map[string]interface{}); info["name"] != serverName {
			t.Errorf("serverInfo = %v", res["serverInfo"])
		}
		if r.header.Get("Content-Type") != "application/json" {
			t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
		}
	}
}

func TestInitializeWithoutVersionIsInvalidParams(t *testing.T) {
	srv, h := testServer(t)
	r := send(t, srv, http.MethodPost, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
	if errorCode(r) != codeInvalidParams || r.header.Get(headerSessionID) != "" || h.sessions.size() != 0 {
		t.Errorf("got %d %s (session %q)", r.status, r.body, r.header.Get(headerSessionID))
	}
}

func TestSessionLifecycle(t *testing.T) {
	srv, _ := testServer(t)
	sid, _ := initialize(t, srv, "2025-06-18")

	r := send(t, srv, http.MethodPost, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if r.status != http.StatusAccepted || r.body != "" {
		t.Errorf("notification: %d %q, want 202 and no body", r.status, r.body)
	}
	r = send(t, srv, http.MethodPost, sid, `{"jsonrpc":"2.0","id":"s1","result":{}}`)
	if r.status != http.StatusAccepted || r.body != "" {
		t.Errorf("client response: %d %q, want 202 and no body", r.status, r.body)
	}
	r = send(t, srv, http.MethodPost, sid, `{"jsonrpc":"2.0","id":7,"method":"ping"}`,
		headerProtocolVersion, "2025-06-18")
	if r.status != http.StatusOK || r.body != `{"jsonrpc":"2.0","id":7,"result":{}}` {
		t.Errorf("ping: %d %s", r.status, r.body)
	}
	r = send(t, srv, http.MethodPost, "", `{"jsonrpc":"2.0","id":8,"method":"ping"}`)
	if r.status != http.StatusBadRequest {
		t.Errorf("no session: %d %s, want 400", r.status, r.body)
	}
	r = send(t, srv, http.MethodPost, "not-a-session", `{"jsonrpc":"2.0","id":9,"method":"ping"}`)
	if r.status != http.StatusNotFound || errorCode(r) != codeSessionNotFound {
		t.Errorf("unknown session: %d %s, want 404", r.status, r.body)
	}
	if r = send(t, srv, http.MethodDelete, sid, ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE: %d %s", r.status, r.body)
	}
	if r = send(t, srv, http.MethodPost, sid, `{"jsonrpc":"2.0","id":10,"method":"ping"}`); r.status != 404 {
		t.Errorf("after DELETE: %d %s, want 404", r.status, r.body)
	}
	if r = send(t, srv, http.MethodDelete, sid, ""); r.status != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", r.status)
	}
}

func TestToolsOverHTTP(t *testing.T) {
	srv, _ := testServer(t)
	sid, _ := initialize(t, srv, "2025-06-18")

	r := send(t, srv, http.MethodPost, sid, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	tools, _ := result(r)["tools"].([]interface{})
	if len(tools) != 7 {
		t.Fatalf("tools/list: %s", r.body)
	}
	for _, raw := range tools {
		tool := raw.(map[string]interface{})
		if s, _ := tool["inputSchema"].(map[string]interface{}); s["type"] != "object" {
			t.Errorf("%v: inputSchema %v", tool["name"], tool["inputSchema"])
		}
	}

	r = send(t, srv, http.MethodPost, sid,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3}}}`)
	want := `{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"5"}],"isError":false}}`
	if r.body != want {
		t.Errorf("add: %s", r.body)
	}
	r = send(t, srv, http.MethodPost, sid,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":"x"}}}`)
	if res := result(r); r.status != 200 || res["isError"] != true {
		t.Errorf("bad arguments: %d %s, want an isError result", r.status, r.body)
	}
	r = send(t, srv, http.MethodPost, sid,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope","arguments":{}}}`)
	if errorCode(r) != codeInvalidParams {
		t.Errorf("unknown tool: %s", r.body)
	}
	r = send(t, srv, http.MethodPost, sid, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{}}`)
	if errorCode(r) != codeInvalidParams {
		t.Errorf("tools/call without name: %s", r.body)
	}
	r = send(t, srv, http.MethodPost, sid, `{"jsonrpc":"2.0","id":6,"method":"resources/list"}`)
	if errorCode(r) != codeMethodNotFound || r.decoded["id"] != 6.0 {
		t.Errorf("unknown method: %s", r.body)
	}
}

func TestBadMessages(t *testing.T) {
	srv, _ := testServer(t)
	sid, _ := initialize(t, srv, "2025-06-18")
	cases := []struct {
		body   string
		status int
		code   float64
	}{
		{`{"jsonrpc":"2.0","id":1,"method":`, 400, codeParseError},
		{`not json`, 400, codeParseError},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, 400, codeInvalidRequest},
		{`"just a string"`, 400, codeInvalidRequest},
		{`{"jsonrpc":"1.0","id":1,"method":"ping"}`, 400, codeInvalidRequest},
		{`{"jsonrpc":"2.0","id":null,"method":"ping"}`, 400, codeInvalidRequest},
		{`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, 400, codeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":5}`, 400, codeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1}`, 400, codeInvalidRequest},
	}
	for _, c := range cases {
		r := send(t, srv, http.MethodPost, sid, c.body)
		if r.status != c.status || errorCode(r) != c.code {
			t.Errorf("%s: %d %s, want %d with code %v", c.body, r.status, r.body, c.status, c.code)
		}
		if c.code == codeParseError && string(mustJSON(t, r.decoded["id"])) != "null" {
			t.Errorf("%s: parse error id = %v, want null", c.body, r.decoded["id"])
		}
	}
}

func mustJSON(t *testing.T, v interface{}) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHTTPLevelRefusals(t *testing.T) {
	srv, h := testServer(t)
	sid, _ := initialize(t, srv, "2025-06-18")
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`

	if r := send(t, srv, http.MethodGet, sid, ""); r.status != http.StatusMethodNotAllowed ||
		r.header.Get("Allow") != "POST, DELETE" {
		t.Errorf("GET: %d (Allow %q)", r.status, r.header.Get("Allow"))
	}
	if r := send(t, srv, http.MethodPost, sid, ping, "Content-Type", "text/plain"); r.status != 415 {
		t.Errorf("text/plain body: %d", r.status)
	}
	if r := send(t, srv, http.MethodPost, sid, ping, "Accept", "text/html"); r.status != 406 {
		t.Errorf("Accept text/html: %d", r.status)
	}
	if r := send(t, srv, http.MethodPost, sid, ping, headerProtocolVersion, "2030-01-01"); r.status != 400 {
		t.Errorf("unsupported protocol version header: %d", r.status)
	}
	h.maxBody = 64
	if r := send(t, srv, http.MethodPost, sid, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"`+
		strings.Repeat("a", 100)+`"}}`); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", r.status)
	}
}

func TestDNSRebindingProtection(t *testing.T) {
	srv, _ := testServer(t)
	ping := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`
	for _, c := range []struct {
		header, value string
		status        int
	}{
		{"Host", "localhost:8088", 200},
		{"Host", "127.0.0.1:9999", 200},
		{"Host", "[::1]:8088", 200},
		{"Host", "evil.example:8088", 421},
		{"Host", "localhost", 421},
		{"Host", "localhost:80x", 421},
		{"Origin", "http://localhost:3000", 200},
		{"Origin", "http://evil.example", 403},
		{"Origin", "http://localhost.evil.example:80", 403},
	} {
		if r := send(t, srv, http.MethodPost, "", ping, c.header, c.value); r.status != c.status {
			t.Errorf("%s: %s -> %d, want %d", c.header, c.value, r.status, c.status)
		}
	}
}

func TestNoHostChecksWhenBoundToAllInterfaces(t *testing.T) {
	if g := newHostGuard("0.0.0.0", nil, nil); g != nil {
		t.Fatal("0.0.0.0 should not check Host")
	}
	g := newHostGuard("0.0.0.0", []string{"mcp.example:*"}, nil)
	req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	req.Host = "mcp.example:443"
	if status, _ := g.check(req); status != 0 {
		t.Errorf("allowed extra host refused: %d", status)
	}
	req.Host = "other.example:443"
	if status, _ := g.check(req); status != 421 {
		t.Errorf("foreign host: %d, want 421", status)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	env := map[string]string{"PORT": "9090", "MCP_PATH": "custom/", "HOST": "0.0.0.0"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil || cfg.port != 9090 || cfg.path != "/custom" || cfg.host != "0.0.0.0" {
		t.Errorf("cfg = %+v, err %v", cfg, err)
	}
	defaults, _ := loadConfig(func(string) string { return "" })
	if defaults.port != 8088 || defaults.path != "/mcp" {
		t.Errorf("defaults = %+v", defaults)
	}
	if _, err := loadConfig(func(k string) string { return map[string]string{"PORT": "http"}[k] }); err == nil {
		t.Error("PORT=http accepted")
	}
}

func TestSessionStoreIsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSessionStore(3, time.Hour)
	s.now = func() time.Time { return now }
	first := s.create()
	var rest []string
	for i := 0; i < 3; i++ {
		now = now.Add(time.Second)
		rest = append(rest, s.create())
	}
	if s.size() != 3 || s.touch(first) {
		t.Errorf("least recently used session was not evicted (size %d)", s.size())
	}
	now = now.Add(2 * time.Hour)
	if s.touch(rest[2]) {
		t.Error("idle session still valid after its TTL")
	}
}
