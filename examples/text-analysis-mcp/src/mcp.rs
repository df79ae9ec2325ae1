//! MCP over Streamable HTTP (protocol 2025-06-18, also 2025-03-26): JSON-RPC on POST, sessions via
//! the `Mcp-Session-Id` header, and the Host/Origin checks that stop DNS-rebinding attacks.
//! Answers are always plain JSON (`application/json`); this server never needs an SSE stream.

use crate::http::{Handler, Request, Response};
use crate::tools;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Newest first; the first one is what we answer when the client asks for one we do not know.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] = &["2025-06-18", "2025-03-26"];
pub const SERVER_NAME: &str = "text-analysis-mcp";
const SESSION_HEADER: &str = "Mcp-Session-Id";
const MAX_SESSIONS: usize = 10_000;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const SESSION_NOT_FOUND: i64 = -32001;

/// Who may talk to the server: Host and Origin values (lower-case `host:port` / `scheme://host:port`).
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// `None` accepts any Host (bound to a public interface, e.g. in a container behind a gateway).
    pub allowed_hosts: Option<Vec<String>>,
    /// A request carrying an Origin header must match one of these. Non-browser clients send none.
    pub allowed_origins: Vec<String>,
}

impl Access {
    /// The rules for a bind address: loopback binds only answer to loopback names (DNS rebinding).
    pub fn for_bind(host: &str, port: u16) -> Access {
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]");
        if !loopback {
            return Access { allowed_hosts: None, allowed_origins: Vec::new() };
        }
        let names = [format!("localhost:{}", port), format!("127.0.0.1:{}", port), format!("[::1]:{}", port)];
        Access {
            allowed_hosts: Some(names.to_vec()),
            allowed_origins: names.iter().map(|n| format!("http://{}", n)).collect(),
        }
    }
}

struct Session {
    protocol_version: String,
    last_seen: Instant,
}

/// The MCP endpoint. One per process, shared by all worker threads.
pub struct McpServer {
    path: String,
    access: Access,
    sessions: Mutex<HashMap<String, Session>>,
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
    Request { id: Value, method: String, params: Option<Value> },
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
        return Err((id.unwrap_or(Value::Null), rpc_error(INVALID_REQUEST, "Invalid Request: jsonrpc must be \"2.0\"")));
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
        (None, Some(_)) if object.contains_key("result") || object.contains_key("error") => Ok(Message::NoReply),
        (_, id) => Err((id.unwrap_or(Value::Null), rpc_error(INVALID_REQUEST, "Invalid Request: no method"))),
    }
}

/// 128 random bits, hex: from the kernel, or failing that from std's randomly keyed hasher.
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    let from_kernel = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    if !from_kernel {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        for half in 0..2 {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u128(nanos);
            hasher.write_usize(half);
            bytes[half * 8..half * 8 + 8].copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{:02x}", b)).collect()
}

fn json_response(status: u16, body: &Value) -> Response {
    Response::json(status, body)
}

impl McpServer {
    pub fn new(path: &str, access: Access) -> McpServer {
        McpServer { path: path.to_string(), access, sessions: Mutex::new(HashMap::new()) }
    }

    fn host_allowed(&self, request: &Request) -> bool {
        match &self.access.allowed_hosts {
            None => true,
            Some(allowed) => match request.header("host") {
                Some(host) => allowed.iter().any(|a| a.eq_ignore_ascii_case(host)),
                None => false,
            },
        }
    }

    fn origin_allowed(&self, request: &Request) -> bool {
        match request.header("origin") {
            None => true,
            Some(origin) => self.access.allowed_origins.iter().any(|a| a.eq_ignore_ascii_case(origin)),
        }
    }

    fn create_session(&self, protocol_version: &str) -> String {
        let id = new_session_id();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            // Bounded memory: forget the session idle the longest.
            let oldest = sessions.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), Session { protocol_version: protocol_version.to_string(), last_seen: Instant::now() });
        id
    }

    /// The session's negotiated version, marking it used; `None` when unknown.
    fn touch_session(&self, id: &str) -> Option<String> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get_mut(id).map(|s| {
            s.last_seen = Instant::now();
            s.protocol_version.clone()
        })
    }

    fn remove_session(&self, id: &str) -> bool {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(id).is_some()
    }

    /// Check the session header of a non-initialize message: `Err` is the HTTP answer.
    fn require_session(&self, request: &Request) -> Result<String, Response> {
        let id = match request.header(SESSION_HEADER) {
            Some(id) => id,
            None => {
                let error = rpc_error(INVALID_REQUEST, "Bad Request: missing Mcp-Session-Id header; send initialize first");
                return Err(json_response(400, &error_body(&Value::Null, &error)));
            }
        };
        match self.touch_session(id) {
            Some(_) => Ok(id.to_string()),
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
                let error = rpc_error(INVALID_REQUEST, format!(
                    "Bad Request: unsupported MCP-Protocol-Version {}; supported: {}",
                    version, SUPPORTED_PROTOCOL_VERSIONS.join(", ")));
                return json_response(400, &error_body(&Value::Null, &error));
            }
        }
        let body: Value = match serde_json::from_slice(&request.body) {
            Ok(v) => v,
            Err(_) => return json_response(400, &error_body(&Value::Null, &rpc_error(PARSE_ERROR, "Parse error"))),
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
            Message::Request { id, method, params } => json_response(200, &self.answer(&id, &method, params.as_ref())),
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
                Ok(Message::Request { id, method, params }) => answers.push(self.answer(&id, &method, params.as_ref())),
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
        let version = if SUPPORTED_PROTOCOL_VERSIONS.contains(&requested) { requested } else { SUPPORTED_PROTOCOL_VERSIONS[0] };
        let session_id = self.create_session(version);
        let result = json!({
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": SERVER_NAME, "title": "Text Analysis", "version": env!("CARGO_PKG_VERSION")},
            "instructions": "Text tools: repeat a text, count its words/lines/characters, extract its keywords.",
        });
        json_response(200, &json!({"jsonrpc": "2.0", "id": id, "result": result})).with_header(SESSION_HEADER, &session_id)
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
            Some(id) if self.remove_session(id) => Response::empty(200),
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
        if !self.host_allowed(request) {
            return Response::text(421, "Invalid Host header");
        }
        if !self.origin_allowed(request) {
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
        Request { method: method.to_string(), path: "/mcp".to_string(), headers: all, body: body.as_bytes().to_vec() }
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
        assert_eq!(body(&parse), json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}));
        let unknown = body(&post(&s, Some(&session), r#"{"jsonrpc":"2.0","id":3,"method":"resources/list"}"#));
        assert_eq!(unknown["error"]["code"], -32601);
        assert_eq!(unknown["id"], 3);
        let call = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope","arguments":{}}}"#;
        let answer = body(&post(&s, Some(&session), call));
        assert_eq!(answer["error"]["code"], -32602);
        assert!(answer["error"]["message"].as_str().unwrap().contains("nope"));
        let no_name = body(&post(&s, Some(&session), r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{}}"#));
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
        assert_eq!(body(&post(&s, Some(&session), call))["result"],
                   json!({"content": [{"type": "text", "text": "abab"}], "isError": false}));
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
        let origin = request("POST", &[("content-type", "application/json"), ("origin", "http://evil.example")], "{}");
        assert_eq!(s.handle(&origin).status, 403);
        assert_eq!(s.handle(&request("POST", &[("content-type", "text/plain")], "{}")).status, 415);
        let old = request("POST", &[("content-type", "application/json"), ("mcp-protocol-version", "1999-01-01")], "{}");
        assert_eq!(s.handle(&old).status, 400);
        let mut elsewhere = request("POST", &[("content-type", "application/json")], "{}");
        elsewhere.path = "/other".to_string();
        assert_eq!(s.handle(&elsewhere).status, 404);
        // Bound to all interfaces: any Host (a gateway or a Kubernetes Service name) is fine.
        let open = McpServer::new("/mcp", Access::for_bind("0.0.0.0", 8088));
        assert_eq!(open.handle(&evil).status, 400);
    }
}
