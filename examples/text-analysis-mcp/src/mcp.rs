//! MCP over Streamable HTTP (protocol 2025-06-18, also 2025-03-26): JSON-RPC on POST, sessions via
//! the `Mcp-Session-Id` header, and the Host/Origin checks that stop DNS-rebinding attacks.
//! Answers are always plain JSON (`application/json`); this server never needs an SSE stream.

use crate::access::Access;
use crate::http::{Handler, Request, Response};
use crate::sessions::Sessions;
use crate::tools;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Newest first; the first one is what we answer when the client asks for one we do not know.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] = &["2025-06-18", "2025-03-26"];
pub const SERVER_NAME: &str = "text-analysis-mcp";
const SESSION_HEADER: &str = "Mcp-Session-Id";
const MAX_SESSIONS: usize = 10_000;
/// Sessions unused this long are forgotten (the client gets 404 and initializes again).
const SESSION_IDLE_LIMIT: Duration = Duration::from_secs(3600);

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const SESSION_NOT_FOUND: i64 = -32001;

/// The MCP endpoint. One per process, shared by all worker threads.
pub struct McpServer {
    path: String,
    access: Access,
    sessions: Sessions,
}

#[derive(Debug)]
struct RpcError {
    code: i64,
    message: String,
}

fn rpc_error(code: i64, message: impl Into<String>) -> RpcError {
    RpcError { code, message: message.into() }
}

fn error_body(id: &Value, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": error.code, "message": error.message}})
}

/// One JSON-RPC message, classified.
enum Message {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    /// Notifications and responses: accepted, never answered.
    NoReply,
}

fn classify(value: &Value) -> Result<Message, (Value, RpcError)> {
    let object = match value.as_object() {
        Some(o) => o,
        None => return Err((Value::Null, rpc_error(INVALID_REQUEST, "Invalid Request: not an object"))),
    };
    let id = match object.get("id") {
        None => None,
        Some(id @ Value::String(_)) | Some(id @ Value::Number(_)) => Some(id.clone()),
        Some(_) => return Err((Value::Null, rpc_error(INVALID_REQUEST, "Invalid Request: bad id"))),
    };
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return Err((
            id.unwrap_or(Value::Null),
            rpc_error(INVALID_REQUEST, "Invalid Request: jsonrpc must be \"2.0\""),
        ));
    }
    match (object.get("method"), id) {
        (Some(Value::String(method)), Some(id)) => {
            let params = object.get("params").cloned();
            if !matches!(params, None | Some(Value::Object(_))) {
                return Err((id, rpc_error(INVALID_PARAMS, "Invalid params: params must be an object")));
            }
            Ok(Message::Request { id, method: method.clone(), params })
        }
        (Some(Value::String(_)), None) => Ok(Message::NoReply),
        (None, Some(_)) if object.contains_key("result") || object.contains_key("error") => {
            Ok(Message::NoReply)
        }
        (_, id) => Err((
            id.unwrap_or(Value::Null),
            rpc_error(INVALID_REQUEST, "Invalid Request: method must be a string"),
        )),
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    Response::json(status, body)
}

impl McpServer {
    pub fn new(path: &str, access: Access) -> McpServer {
        McpServer {
            path: path.to_string(),
            access,
            sessions: Sessions::new(MAX_SESSIONS, SESSION_IDLE_LIMIT),
        }
    }

    /// Check the session header of a non-initialize message: `Err` is the HTTP answer.
    fn require_session(&self, request: &Request) -> Result<(), Response> {
        let id = match request.header(SESSION_HEADER) {
            Some(id) => id,
            None => {
                let error = rpc_error(
                    INVALID_REQUEST,
                    "Bad Request: missing Mcp-Session-Id header; send initialize first",
                );
                return Err(json_response(400, &error_body(&Value::Null, &error)));
            }
        };
        match self.sessions.touch(id) {
            Some(_) => Ok(()),
            None => {
                let error = rpc_error(SESSION_NOT_FOUND, "Session not found: initialize a new session");
                Err(json_response(404, &error_body(&Value::Null, &error)))
            }
        }
    }

    fn handle_post(&self, request: &Request) -> Response {
        let content_type = request.header("content-type").unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Response::text(415, "Content-Type must be application/json");
        }
        if let Some(version) = request.header("mcp-protocol-version") {
            if !SUPPORTED_PROTOCOL_VERSIONS.contains(&version) {
                let error = rpc_error(
                    INVALID_REQUEST,
                    format!(
                        "Bad Request: unsupported MCP-Protocol-Version {}; supported: {}",
                        version,
                        SUPPORTED_PROTOCOL_VERSIONS.join(", ")
                    ),
                );
                return json_response(400, &error_body(&Value::Null, &error));
            }
        }
        let body: Value = match serde_json::from_slice(&request.body) {
            Ok(v) => v,
            Err(_) => {
                return json_response(400, &error_body(&Value::Null, &rpc_error(PARSE_ERROR, "Parse error")))
            }
        };
        match body {
            Value::Array(batch) => self.handle_batch(request, &batch),
            single => self.handle_single(request, &single),
        }
    }

    fn handle_single(&self, request: &Request, message: &Value) -> Response {
        let message = match classify(message) {
            Ok(m) => m,
            Err((id, error)) => return json_response(400, &error_body(&id, &error)),
        };
        if let Message::Request { id, method, params } = &message {
            if method == "initialize" {
                return self.initialize(id, params.as_ref());
            }
        }
        if let Err(response) = self.require_session(request) {
            return response;
        }
        match message {
            Message::NoReply => Response::empty(202),
            Message::Request { id, method, params } => {
                json_response(200, &self.answer(&id, &method, params.as_ref()))
            }
        }
    }

    /// JSON-RPC batches (allowed by 2025-03-26): answers for the requests, in order.
    fn handle_batch(&self, request: &Request, batch: &[Value]) -> Response {
        if batch.is_empty() {
            let error = rpc_error(INVALID_REQUEST, "Invalid Request: empty batch");
            return json_response(400, &error_body(&Value::Null, &error));
        }
        if let Err(response) = self.require_session(request) {
            return response;
        }
        let mut answers = Vec::new();
        for message in batch {
            match classify(message) {
                Err((id, error)) => answers.push(error_body(&id, &error)),
                Ok(Message::NoReply) => {}
                Ok(Message::Request { id, method, .. }) if method == "initialize" => {
                    let error = rpc_error(INVALID_REQUEST, "Invalid Request: initialize cannot be batched");
                    answers.push(error_body(&id, &error));
                }
                Ok(Message::Request { id, method, params }) => {
                    answers.push(self.answer(&id, &method, params.as_ref()))
                }
            }
        }
        if answers.is_empty() {
            Response::empty(202)
        } else {
            json_response(200, &Value::Array(answers))
        }
    }

    fn initialize(&self, id: &Value, params: Option<&Value>) -> Response {
        let requested = params.and_then(|p| p.get("protocolVersion")).and_then(Value::as_str);
        let requested = match requested {
            Some(v) => v,
            None => {
                let error = rpc_error(INVALID_PARAMS, "Invalid params: protocolVersion is required");
                return json_response(200, &error_body(id, &error));
            }
        };
        // Answer with the client's version when we speak it, else our latest (the client decides).
        let version = if SUPPORTED_PROTOCOL_VERSIONS.contains(&requested) {
            requested
        } else {
            SUPPORTED_PROTOCOL_VERSIONS[0]
        };
        let session_id = self.sessions.create(version);
        let result = json!({
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": SERVER_NAME, "title": "Text Analysis", "version": env!("CARGO_PKG_VERSION")},
            "instructions": "Text tools: repeat a text, count its words/lines/characters, extract its keywords.",
        });
        json_response(200, &json!({"jsonrpc": "2.0", "id": id, "result": result}))
            .with_header(SESSION_HEADER, &session_id)
    }

    /// The JSON-RPC answer to one request inside an established session.
    fn answer(&self, id: &Value, method: &str, params: Option<&Value>) -> Value {
        match self.dispatch(method, params) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(error) => error_body(id, &error),
        }
    }

    fn dispatch(&self, method: &str, params: Option<&Value>) -> Result<Value, RpcError> {
        match method {
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({"tools": tools::definitions()})),
            "tools/call" => call_tool(params),
            "initialize" => Err(rpc_error(INVALID_REQUEST, "Invalid Request: already initialized")),
            _ => Err(rpc_error(METHOD_NOT_FOUND, format!("Method not found: {}", method))),
        }
    }

    fn handle_delete(&self, request: &Request) -> Response {
        match request.header(SESSION_HEADER) {
            None => Response::text(400, "Mcp-Session-Id header required"),
            Some(id) if self.sessions.remove(id) => Response::empty(200),
            Some(_) => Response::text(404, "Session not found"),
        }
    }

    fn is_mcp_path(&self, path: &str) -> bool {
        path == self.path || path.strip_suffix('/') == Some(self.path.as_str())
    }
}

fn call_tool(params: Option<&Value>) -> Result<Value, RpcError> {
    let params = params.and_then(Value::as_object);
    let name = match params.and_then(|p| p.get("name")).and_then(Value::as_str) {
        Some(name) => name,
        None => return Err(rpc_error(INVALID_PARAMS, "Invalid params: name (a string) is required")),
    };
    let empty = Map::new();
    let arguments = match params.and_then(|p| p.get("arguments")) {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(arguments)) => arguments,
        Some(_) => return Err(rpc_error(INVALID_PARAMS, "Invalid params: arguments must be an object")),
    };
    match tools::call(name, arguments) {
        None => Err(rpc_error(INVALID_PARAMS, format!("Unknown tool: {}", name))),
        Some(Ok(text)) => Ok(json!({"content": [{"type": "text", "text": text}], "isError": false})),
        Some(Err(message)) => Ok(json!({"content": [{"type": "text", "text": message}], "isError": true})),
    }
}

impl Handler for McpServer {
    fn handle(&self, request: &Request) -> Response {
        if !self.access.host_allowed(request.header("host")) {
            return Response::text(421, "Invalid Host header");
        }
        if !self.access.origin_allowed(request.header("origin")) {
            return Response::text(403, "Invalid Origin header");
        }
        if request.path == "/healthz" && request.method == "GET" {
            return json_response(200, &json!({"status": "ok"}));
        }
        if !self.is_mcp_path(&request.path) {
            return Response::text(404, "Not Found");
        }
        match request.method.as_str() {
            "POST" => self.handle_post(request),
            "DELETE" => self.handle_delete(request),
            // No server-initiated stream: GET (and anything else) is not offered on this endpoint.
            _ => Response::text(405, "Method Not Allowed").with_header("Allow", "POST, DELETE"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> McpServer {
        McpServer::new("/mcp", Access::for_bind("127.0.0.1", 8088))
    }

    fn request(method: &str, headers: &[(&str, &str)], body: &str) -> Request {
        let mut all = vec![("host".to_string(), "localhost:8088".to_string())];
        all.extend(headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())));
        Request {
            method: method.to_string(),
            path: "/mcp".to_string(),
            headers: all,
            body: body.as_bytes().to_vec(),
        }
    }

    fn post(server: &McpServer, session: Option<&str>, body: &str) -> Response {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(session) = session {
            headers.push(("mcp-session-id", session));
        }
        server.handle(&request("POST", &headers, body))
    }

    fn body(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    fn initialize(server: &McpServer, version: &str) -> (String, Value) {
        let message = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                             "params": {"protocolVersion": version, "capabilities": {},
                                        "clientInfo": {"name": "t", "version": "1"}}});
        let response = post(server, None, &message.to_string());
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("application/json"));
        (response.header("mcp-session-id").unwrap().to_string(), body(&response))
    }

    #[test]
    fn initialize_negotiates_the_version() {
        let s = server();
        let (session, answer) = initialize(&s, "2025-03-26");
        assert_eq!(session.len(), 32);
        assert_eq!(answer["result"]["protocolVersion"], "2025-03-26");
        assert_eq!(answer["result"]["capabilities"], json!({"tools": {}}));
        assert_eq!(answer["result"]["serverInfo"]["name"], SERVER_NAME);
        let (_, answer) = initialize(&s, "2099-01-01");
        assert_eq!(answer["result"]["protocolVersion"], "2025-06-18");
    }

    #[test]
    fn session_lifecycle() {
        let s = server();
        let (session, _) = initialize(&s, "2025-06-18");
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let response = post(&s, Some(&session), note);
        assert_eq!((response.status, response.body.len()), (202, 0));
        assert_eq!(post(&s, Some(&session), r#"{"jsonrpc":"2.0","id":"r","result":{}}"#).status, 202);
        let ping = post(&s, Some(&session), r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#);
        assert_eq!(body(&ping), json!({"jsonrpc": "2.0", "id": "p", "result": {}}));
        assert_eq!(post(&s, None, r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).status, 400);
        assert_eq!(post(&s, Some("nope"), r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).status, 404);
        let delete = s.handle(&request("DELETE", &[("mcp-session-id", &session)], ""));
        assert_eq!(delete.status, 200);
        assert_eq!(post(&s, Some(&session), r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).status, 404);
        assert_eq!(s.handle(&request("DELETE", &[("mcp-session-id", &session)], "")).status, 404);
    }

    #[test]
    fn json_rpc_errors() {
        let s = server();
        let (session, _) = initialize(&s, "2025-06-18");
        let parse = post(&s, Some(&session), "{not json");
        assert_eq!(parse.status, 400);
        assert_eq!(
            body(&parse),
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}})
        );
        let unknown =
            body(&post(&s, Some(&session), r#"{"jsonrpc":"2.0","id":3,"method":"resources/list"}"#));
        assert_eq!(unknown["error"]["code"], -32601);
        assert_eq!(unknown["id"], 3);
        let call =
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope","arguments":{}}}"#;
        let answer = body(&post(&s, Some(&session), call));
        assert_eq!(answer["error"]["code"], -32602);
        assert!(answer["error"]["message"].as_str().unwrap().contains("nope"));
        let no_name =
            body(&post(&s, Some(&session), r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{}}"#));
        assert_eq!(no_name["error"]["code"], -32602);
        assert_eq!(post(&s, Some(&session), r#"{"jsonrpc":"1.0","id":6,"method":"ping"}"#).status, 400);
    }

    #[test]
    fn tool_calls() {
        let s = server();
        let (session, _) = initialize(&s, "2025-06-18");
        let list = body(&post(&s, Some(&session), r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#));
        assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 3);
        let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"repeat","arguments":{"text":"ab","times":2}}}"#;
        assert_eq!(
            body(&post(&s, Some(&session), call))["result"],
            json!({"content": [{"type": "text", "text": "abab"}], "isError": false})
        );
        let bad = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"repeat","arguments":{"text":"ab"}}}"#;
        let answer = body(&post(&s, Some(&session), bad));
        assert_eq!(answer["result"]["isError"], true);
    }

    #[test]
    fn batches_answer_requests_only() {
        let s = server();
        let (session, _) = initialize(&s, "2025-03-26");
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},
                        {"jsonrpc":"2.0","id":2,"method":"nope"}]"#;
        let answer = body(&post(&s, Some(&session), batch));
        assert_eq!(answer.as_array().unwrap().len(), 2);
        assert_eq!(answer[1]["error"]["code"], -32601);
        assert_eq!(post(&s, Some(&session), r#"[{"jsonrpc":"2.0","method":"notifications/x"}]"#).status, 202);
    }

    #[test]
    fn http_level_rules() {
        let s = server();
        assert_eq!(s.handle(&request("GET", &[], "")).status, 405);
        let mut evil = request("POST", &[("content-type", "application/json")], "{}");
        evil.headers[0].1 = "evil.example:8088".to_string();
        assert_eq!(s.handle(&evil).status, 421);
        let origin =
            request("POST", &[("content-type", "application/json"), ("origin", "http://evil.example")], "{}");
        assert_eq!(s.handle(&origin).status, 403);
        assert_eq!(s.handle(&request("POST", &[("content-type", "text/plain")], "{}")).status, 415);
        let old = request(
            "POST",
            &[("content-type", "application/json"), ("mcp-protocol-version", "1999-01-01")],
            "{}",
        );
        assert_eq!(s.handle(&old).status, 400);
        let mut elsewhere = request("POST", &[("content-type", "application/json")], "{}");
        elsewhere.path = "/other".to_string();
        assert_eq!(s.handle(&elsewhere).status, 404);
        // Bound to all interfaces: any Host (a gateway or a Kubernetes Service name) is fine.
        let open = McpServer::new("/mcp", Access::for_bind("0.0.0.0", 8088));
        assert_eq!(open.handle(&evil).status, 400);
    }
}
