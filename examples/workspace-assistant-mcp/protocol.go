package main

// JSON-RPC 2.0 message shapes and the MCP method dispatcher. The transport
// (transport.go) decides sessions and HTTP status codes; this file only turns
// one request into one result or error.

import (
	"bytes"
	"encoding/json"
	"fmt"
)

const jsonrpcVersion = "2.0"

// JSON-RPC error codes used by this server.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeInternalError  = -32603
	// codeSessionNotFound is what the MCP Python SDK sends with its 404 for an unknown session.
	codeSessionNotFound = -32001
)

// Protocol versions this server speaks, newest first. initialize answers with the
// client's version when it is one of these, else with the newest.
var supportedProtocolVersions = []string{"2025-06-18", "2025-03-26"}

const (
	serverName    = "workspace-assistant-mcp"
	serverVersion = "0.1.0"
)

// message is any incoming JSON-RPC message; which fields are set tells its kind.
type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  *string         `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

type messageKind int

const (
	kindInvalid messageKind = iota
	kindRequest
	kindNotification
	kindResponse
)

// kind classifies a message: a request has a method and an id, a notification a
// method and no id, a response an id and a result or error.
func (m *message) kind() messageKind {
	if m.JSONRPC != jsonrpcVersion {
		return kindInvalid
	}
	hasID := len(m.ID) > 0
	if hasID && !validID(m.ID) {
		return kindInvalid
	}
	switch {
	case m.Method != nil && hasID:
		return kindRequest
	case m.Method != nil:
		return kindNotification
	case hasID && (len(m.Result) > 0) != (len(m.Error) > 0):
		return kindResponse
	}
	return kindInvalid
}

// validID accepts the ids MCP allows: a string or an integer (never null).
func validID(raw json.RawMessage) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		return false
	}
	switch id := v.(type) {
	case string:
		return true
	case json.Number:
		_, err := id.Int64()
		return err == nil
	}
	return false
}

type rpcError struct {
	Code    int         `json:"code"`
	Message string      `json:"message"`
	Data    interface{} `json:"data,omitempty"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  interface{}     `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

var nullID = json.RawMessage("null")

func resultResponse(id json.RawMessage, result interface{}) response {
	return response{JSONRPC: jsonrpcVersion, ID: id, Result: result}
}

func errorResponse(id json.RawMessage, code int, msg string) response {
	if len(id) == 0 {
		id = nullID
	}
	return response{JSONRPC: jsonrpcVersion, ID: id, Error: &rpcError{Code: code, Message: msg}}
}

type initializeParams struct {
	ProtocolVersion *string         `json:"protocolVersion"`
	Capabilities    json.RawMessage `json:"capabilities"`
	ClientInfo      json.RawMessage `json:"clientInfo"`
}

type callParams struct {
	Name      *string         `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// negotiateVersion answers with the client's version when supported, else the newest.
func negotiateVersion(requested string) string {
	for _, v := range supportedProtocolVersions {
		if v == requested {
			return v
		}
	}
	return supportedProtocolVersions[0]
}

func isSupportedVersion(v string) bool {
	for _, s := range supportedProtocolVersions {
		if s == v {
			return true
		}
	}
	return false
}

// emptyObject is `{}` on the wire (ping's result, the tools capability).
type emptyObject struct{}

// handleRequest answers one JSON-RPC request (never a notification).
func handleRequest(tools *toolbox, msg *message) response {
	switch *msg.Method {
	case "initialize":
		var p initializeParams
		if err := decodeParams(msg.Params, &p); err != nil || p.ProtocolVersion == nil {
			return errorResponse(msg.ID, codeInvalidParams, "initialize needs params.protocolVersion (a string)")
		}
		return resultResponse(msg.ID, map[string]interface{}{
			"protocolVersion": negotiateVersion(*p.ProtocolVersion),
			"capabilities":    map[string]interface{}{"tools": emptyObject{}},
			"serverInfo":      map[string]string{"name": serverName, "version": serverVersion},
			"instructions": "Workspace helpers: echo, arithmetic, text case, slugs, " +
				"task creation and release-note drafts.",
		})
	case "ping":
		return resultResponse(msg.ID, emptyObject{})
	case "tools/list":
		return resultResponse(msg.ID, map[string]interface{}{"tools": tools.list()})
	case "tools/call":
		var p callParams
		if err := decodeParams(msg.Params, &p); err != nil || p.Name == nil {
			return errorResponse(msg.ID, codeInvalidParams, "tools/call needs params.name (a string)")
		}
		result, found := tools.call(*p.Name, p.Arguments)
		if !found {
			return errorResponse(msg.ID, codeInvalidParams, fmt.Sprintf("Unknown tool: %s", *p.Name))
		}
		return resultResponse(msg.ID, result)
	}
	return errorResponse(msg.ID, codeMethodNotFound, fmt.Sprintf("Method not found: %s", *msg.Method))
}

// decodeParams reads params into v; absent or null params leave v at its zero value.
func decodeParams(raw json.RawMessage, v interface{}) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return json.Unmarshal(raw, v)
}
