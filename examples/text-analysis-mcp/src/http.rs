//! Serving: hyper's HTTP/1.1 connections on tokio, `MCP_PATH` to rmcp's Streamable HTTP service,
//! `GET /healthz` for container probes, bounded connections and sessions, exit on SIGTERM/SIGINT.

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::server::{SERVER_NAME, TextAnalysis};

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 1024;
/// MCP sessions kept at once; a new one beyond that is refused with 503.
const MAX_SESSIONS: usize = 10_000;
/// An MCP session idle this long is closed.
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// A request head must arrive within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

type Body = BoxBody<Bytes, Infallible>;

struct App {
    path: String,
    max_sessions: usize,
    sessions: Arc<LocalSessionManager>,
    mcp: StreamableHttpService<TextAnalysis, LocalSessionManager>,
}

impl App {
    fn new(config: &Config, max_sessions: usize) -> App {
        let mut sessions = LocalSessionManager::default();
        sessions.session_config.keep_alive = Some(SESSION_IDLE);
        let sessions = Arc::new(sessions);
        let mcp =
            StreamableHttpService::new(|| Ok(TextAnalysis::new()), sessions.clone(), config.transport());
        App { path: config.path.clone(), max_sessions, sessions, mcp }
    }

    async fn route<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let path = request.uri().path();
        if path == self.path || path.strip_suffix('/') == Some(self.path.as_str()) {
            if request.method() == Method::POST
                && !request.headers().contains_key("mcp-session-id")
                && self.sessions.sessions.read().await.len() >= self.max_sessions
            {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many open MCP sessions; end one with DELETE or retry later",
                );
            }
            return self.mcp.handle(request).await;
        }
        if path == "/healthz" && request.method() == Method::GET {
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from_static(b"{\"status\":\"ok\"}")).boxed())
                .expect("a valid response");
        }
        text(StatusCode::NOT_FOUND, "not found")
    }
}

fn text(status: StatusCode, message: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(message.as_bytes())).boxed())
        .expect("a valid response")
}

/// Listen and serve until SIGTERM or SIGINT (also as PID 1 in a container). Requests are short and
/// the tools keep no state, so nothing needs draining: open sessions simply end with the process.
pub async fn serve(config: Config) -> Result<(), String> {
    let address = config.bind_address();
    let listener =
        TcpListener::bind(&address).await.map_err(|e| format!("cannot listen on {}: {}", address, e))?;
    eprintln!(
        "{} {} listening on http://{}{} (rmcp Streamable HTTP)",
        SERVER_NAME,
        env!("CARGO_PKG_VERSION"),
        address,
        config.path
    );
    let app = Arc::new(App::new(&config, MAX_SESSIONS));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {}", e))?;
    loop {
        let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    eprintln!("{}: accept: {}", SERVER_NAME, error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = terminate.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.route(request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = connection.await; // a client that goes away is not the server's error
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &'static str, session: Option<&str>) -> Request<Full<Bytes>> {
        let mut request = Request::post("/mcp")
            .header(header::HOST, "127.0.0.1:8088")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(id) = session {
            request = request.header("mcp-session-id", id);
        }
        request.body(Full::new(Bytes::from_static(body.as_bytes()))).unwrap()
    }

    const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

    #[tokio::test]
    async fn sessions_beyond_the_bound_are_refused_until_one_ends() {
        let config = Config::from_env(|_| None).unwrap();
        let app = App::new(&config, 1);
        let first = app.route(post(INITIALIZE, None)).await;
        assert_eq!(first.status(), StatusCode::OK);
        let id = first.headers()["mcp-session-id"].to_str().unwrap().to_string();
        assert_eq!(app.route(post(INITIALIZE, None)).await.status(), StatusCode::SERVICE_UNAVAILABLE);
        // requests in the open session still pass
        let ping = app.route(post(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#, Some(&id))).await;
        assert_ne!(ping.status(), StatusCode::SERVICE_UNAVAILABLE);
        let delete =
            Request::delete("/mcp").header(header::HOST, "127.0.0.1:8088").header("mcp-session-id", &id);
        app.route(delete.body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(app.route(post(INITIALIZE, None)).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn routes_the_mcp_path_and_healthz_only() {
        let app = App::new(&Config::from_env(|_| None).unwrap(), 10);
        let health = Request::get("/healthz").body(Full::new(Bytes::new())).unwrap();
        assert_eq!(app.route(health).await.status(), StatusCode::OK);
        let other = Request::get("/other").body(Full::new(Bytes::new())).unwrap();
        assert_eq!(app.route(other).await.status(), StatusCode::NOT_FOUND);
        let mut trailing = post(INITIALIZE, None);
        *trailing.uri_mut() = "/mcp/".parse().unwrap();
        assert_eq!(app.route(trailing).await.status(), StatusCode::OK);
    }
}
