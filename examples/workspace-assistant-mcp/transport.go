package main

// MCP Streamable HTTP (2025-06-18, 2025-03-26), answered with plain JSON:
//   POST <path>   one JSON-RPC message. A request gets 200 and its response as
//                 application/json; a notification or response gets 202, no body.
//   GET <path>    405: this server never starts a server-to-client stream.
//   DELETE <path> ends the session named by Mcp-Session-Id (204).
// JSON-RPC batches (allowed by 2025-03-26, removed in 2025-06-18) are refused
// with one -32600 error, id null, status 400.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

const (
	headerSessionID       = "Mcp-Session-Id"
	headerProtocolVersion = "Mcp-Protocol-Version"
	defaultMaxBodyBytes   = 4 << 20 // the Python SDK's limit too
)

type mcpHandler struct {
	path     string
	tools    *toolbox
	sessions *sessionStore
	guard    *hostGuard
	maxBody  int64
}

func (h *mcpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	if r.URL.Path != h.path && r.URL.Path != h.path+"/" {
		http.NotFound(w, r)
		return
	}
	if status, msg := h.guard.check(r); status != 0 {
		http.Error(w, msg, status)
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.handlePost(w, r)
	case http.MethodDelete:
		h.handleDelete(w, r)
	default:
		w.Header().Set("Allow", "POST, DELETE")
		writeJSON(w, http.StatusMethodNotAllowed, errorResponse(nil, codeInvalidRequest,
			fmt.Sprintf("Method Not Allowed: %s (this server answers POST and DELETE; it opens no SSE stream)",
				r.Method)))
	}
}

func (h *mcpHandler) handlePost(w http.ResponseWriter, r *http.Request) {
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		writeJSON(w, http.StatusUnsupportedMediaType, errorResponse(nil, codeInvalidRequest,
			"Unsupported Media Type: Content-Type must be application/json"))
		return
	}
	if !acceptsJSON(r.Header.Values("Accept")) {
		writeJSON(w, http.StatusNotAcceptable, errorResponse(nil, codeInvalidRequest,
			"Not Acceptable: Accept must allow application/json"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorResponse(nil, codeInvalidRequest,
				fmt.Sprintf("Request body too large (limit %d bytes)", h.maxBody)))
			return
		}
		writeJSON(w, http.StatusBadRequest, errorResponse(nil, codeParseError, "Parse error: could not read body"))
		return
	}
	body = bytes.TrimSpace(body)
	if !json.Valid(body) {
		writeJSON(w, http.StatusBadRequest, errorResponse(nil, codeParseError, "Parse error: body is not valid JSON"))
		return
	}
	if body[0] == '[' {
		writeJSON(w, http.StatusBadRequest, errorResponse(nil, codeInvalidRequest,
			"Invalid Request: JSON-RPC batches are not supported; send one message per POST"))
		return
	}
	var msg message
	kind := kindInvalid
	if body[0] == '{' && json.Unmarshal(body, &msg) == nil {
		kind = msg.kind()
	}
	if kind == kindInvalid {
		id := nullID
		if len(msg.ID) > 0 && validID(msg.ID) {
			id = msg.ID
		}
		writeJSON(w, http.StatusBadRequest, errorResponse(id, codeInvalidRequest,
			`Invalid Request: expected a JSON-RPC 2.0 request, notification or response object`))
		return
	}

	if kind == kindRequest && *msg.Method == "initialize" {
		h.initialize(w, &msg)
		return
	}
	if !h.checkSession(w, r, msg.ID) || !checkProtocolVersion(w, r, msg.ID) {
		return
	}
	if kind != kindRequest {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	writeJSON(w, http.StatusOK, handleRequest(h.tools, &msg))
}

// initialize answers the handshake and, when it succeeds, starts a session.
func (h *mcpHandler) initialize(w http.ResponseWriter, msg *message) {
	resp := handleRequest(h.tools, msg)
	if resp.Error == nil {
		w.Header().Set(headerSessionID, h.sessions.create())
	}
	writeJSON(w, http.StatusOK, resp)
}

// checkSession requires a known Mcp-Session-Id: 400 when absent, 404 when unknown
// (the client's cue to initialize again). It writes the refusal itself.
func (h *mcpHandler) checkSession(w http.ResponseWriter, r *http.Request, id json.RawMessage) bool {
	sid := r.Header.Get(headerSessionID)
	if sid == "" {
		writeJSON(w, http.StatusBadRequest, errorResponse(id, codeInvalidRequest,
			"Bad Request: missing Mcp-Session-Id header (send initialize first)"))
		return false
	}
	if !h.sessions.touch(sid) {
		writeJSON(w, http.StatusNotFound, errorResponse(id, codeSessionNotFound,
			"Session not found: initialize a new session"))
		return false
	}
	return true
}

// checkProtocolVersion refuses an MCP-Protocol-Version header naming a version
// this server does not speak; without the header 2025-03-26 is assumed, per spec.
func checkProtocolVersion(w http.ResponseWriter, r *http.Request, id json.RawMessage) bool {
	v := r.Header.Get(headerProtocolVersion)
	if v == "" || isSupportedVersion(v) {
		return true
	}
	writeJSON(w, http.StatusBadRequest, errorResponse(id, codeInvalidRequest, fmt.Sprintf(
		"Bad Request: unsupported MCP-Protocol-Version %q (supported: %s)", v,
		strings.Join(supportedProtocolVersions, ", "))))
	return false
}

func (h *mcpHandler) handleDelete(w http.ResponseWriter, r *http.Request) {
	sid := r.Header.Get(headerSessionID)
	if sid == "" {
		writeJSON(w, http.StatusBadRequest, errorResponse(nil, codeInvalidRequest,
			"Bad Request: DELETE needs the Mcp-Session-Id header of the session to end"))
		return
	}
	if !h.sessions.remove(sid) {
		writeJSON(w, http.StatusNotFound, errorResponse(nil, codeSessionNotFound, "Session not found"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func isJSONContentType(value string) bool {
	mediaType, _, err := mime.ParseMediaType(value)
	return err == nil && mediaType == "application/json"
}

// acceptsJSON is lenient: no Accept header, */*, application/* or application/json will do.
func acceptsJSON(values []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mediaType, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || params["q"] == "0" {
				continue
			}
			switch mediaType {
			case "application/json", "application/*", "*/*":
				return true
			}
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorResponse(nil, codeInternalError, "Internal error: could not encode response"))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
