//! text-analysis-mcp: an example MCP server (Streamable HTTP) with three text tools.
//!
//! Environment: `HOST` (default `127.0.0.1`; the container image sets `0.0.0.0`), `PORT` (default
//! 8088), `MCP_PATH` (default `/mcp`), `MCP_ALLOWED_HOSTS` / `MCP_ALLOWED_ORIGINS` (extra accepted
//! Host / Origin values, comma-separated), `WORKERS` (connection threads, default 32).

mod access;
mod http;
mod mcp;
mod sessions;
mod tools;

use std::net::TcpListener;
use std::process::exit;
use std::sync::Arc;

struct Config {
    host: String,
    port: u16,
    path: String,
    workers: usize,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
}

fn config_from_env() -> Result<Config, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let host = var("HOST").unwrap_or_else(|| "127.0.0.1".to_string());
    let port = match var("PORT") {
        None => 8088,
        Some(p) => p.trim().parse::<u16>().map_err(|_| format!("PORT must be a port number, got {:?}", p))?,
    };
    let mut path = var("MCP_PATH").unwrap_or_else(|| "/mcp".to_string());
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if path.len() > 1 && path.ends_with('/') {
        path.pop();
    }
    let workers = match var("WORKERS") {
        None => 32,
        Some(w) => match w.trim().parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => n,
            _ => return Err(format!("WORKERS must be between 1 and 1024, got {:?}", w)),
        },
    };
    let list = |name: &str| -> Vec<String> {
        var(name).map_or_else(Vec::new, |v| {
            v.split(',').map(|item| item.trim().to_string()).filter(|item| !item.is_empty()).collect()
        })
    };
    Ok(Config {
        host,
        port,
        path,
        workers,
        allowed_hosts: list("MCP_ALLOWED_HOSTS"),
        allowed_origins: list("MCP_ALLOWED_ORIGINS"),
    })
}

/// Exit promptly on SIGTERM/SIGINT, also as PID 1 in a container (where the default is to ignore
/// them). Requests are short and nothing is buffered, so there is nothing to drain.
#[cfg(unix)]
fn exit_on_signals() {
    extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
        fn _exit(status: i32) -> !;
    }
    extern "C" fn on_signal(_: i32) {
        // Only async-signal-safe calls here.
        unsafe { _exit(0) }
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    unsafe {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
}

#[cfg(not(unix))]
fn exit_on_signals() {}

fn main() {
    let config = match config_from_env() {
        Ok(c) => c,
        Err(message) => {
            eprintln!("text-analysis-mcp: {}", message);
            exit(2);
        }
    };
    exit_on_signals();
    let bind_host = if config.host.contains(':') && !config.host.starts_with('[') {
        format!("[{}]", config.host)
    } else {
        config.host.clone()
    };
    let address = format!("{}:{}", bind_host, config.port);
    let listener = match TcpListener::bind(&address) {
        Ok(l) => l,
        Err(error) => {
            eprintln!("text-analysis-mcp: cannot listen on {}: {}", address, error);
            exit(1);
        }
    };
    let access =
        access::Access::new(&config.host, config.port, &config.allowed_hosts, &config.allowed_origins);
    let server = Arc::new(mcp::McpServer::new(&config.path, access));
    eprintln!(
        "text-analysis-mcp {} listening on http://{}{} (MCP {})",
        env!("CARGO_PKG_VERSION"),
        address,
        config.path,
        mcp::SUPPORTED_PROTOCOL_VERSIONS.join(", ")
    );
    if let Err(error) = http::serve(listener, server, config.workers) {
        eprintln!("text-analysis-mcp: {}", error);
        exit(1);
    }
}
