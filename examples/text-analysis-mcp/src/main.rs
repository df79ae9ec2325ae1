//! text-analysis-mcp: an example MCP server on the official Rust SDK (rmcp), Streamable HTTP, with
//! three text tools.
//!
//! Environment: `HOST` (default `127.0.0.1`; the container image sets `0.0.0.0`), `PORT` (default
//! 8088), `MCP_PATH` (default `/mcp`), `MCP_ALLOWED_HOSTS` / `MCP_ALLOWED_ORIGINS` (extra accepted
//! Host / browser Origin values, comma-separated).

mod config;
mod http;
mod server;
mod tools;

use std::process::exit;

#[tokio::main]
async fn main() {
    let config = match config::Config::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{}: {}", server::SERVER_NAME, message);
            exit(2);
        }
    };
    if let Err(message) = http::serve(config).await {
        eprintln!("{}: {}", server::SERVER_NAME, message);
        exit(1);
    }
}
