//! Configuration from the environment, and the rmcp transport settings it implies.

use rmcp::transport::StreamableHttpServerConfig;

const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// Larger request bodies get 413: the tools' texts are bounded well below this.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

#[derive(Debug, PartialEq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
}

impl Config {
    /// Reads `HOST`, `PORT`, `MCP_PATH`, `MCP_ALLOWED_HOSTS`, `MCP_ALLOWED_ORIGINS` through `var`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let var = |name: &str| var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let port = match var("PORT") {
            None => 8088,
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(format!("PORT must be a number from 1 to 65535, got {:?}", p)),
            },
        };
        let path = format!("/{}", var("MCP_PATH").unwrap_or_else(|| "mcp".to_string()).trim_matches('/'));
        let list = |name: &str| -> Vec<String> {
            var(name).map_or_else(Vec::new, |v| {
                v.split(',').map(str::trim).filter(|item| !item.is_empty()).map(String::from).collect()
            })
        };
        Ok(Config {
            host: var("HOST").unwrap_or_else(|| "127.0.0.1".to_string()),
            port,
            path,
            allowed_hosts: list("MCP_ALLOWED_HOSTS"),
            allowed_origins: list("MCP_ALLOWED_ORIGINS"),
        })
    }

    pub fn is_loopback(&self) -> bool {
        LOOPBACK_HOSTS.contains(&self.host.trim_matches(|c| c == '[' || c == ']'))
    }

    /// The address to bind, with IPv6 literals bracketed.
    pub fn bind_address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// DNS-rebinding protection as in the MCP Python SDK: bound to loopback, the `Host` must be a
    /// loopback name (rmcp's default) and a browser `Origin` must be `http://` one of them on this
    /// port; bound to all interfaces there is no Host check unless `MCP_ALLOWED_HOSTS` names some,
    /// and browser requests are refused unless their Origin is in `MCP_ALLOWED_ORIGINS`.
    pub fn transport(&self) -> StreamableHttpServerConfig {
        let mut origins = self.allowed_origins.clone();
        let mut transport = StreamableHttpServerConfig::default();
        if self.is_loopback() {
            let loopback = LOOPBACK_HOSTS.iter().map(|h| h.to_string());
            transport = transport.with_allowed_hosts(loopback.chain(self.allowed_hosts.iter().cloned()));
            for host in ["localhost", "127.0.0.1", "[::1]"] {
                origins.push(format!("http://{}:{}", host, self.port));
            }
        } else if self.allowed_hosts.is_empty() {
            transport = transport.disable_allowed_hosts();
        } else {
            let loopback = LOOPBACK_HOSTS.iter().map(|h| h.to_string());
            transport = transport.with_allowed_hosts(loopback.chain(self.allowed_hosts.iter().cloned()));
        }
        transport
            .with_allowed_origins(origins)
            .enforce_origin_validation()
            .with_max_request_body_bytes(MAX_REQUEST_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let env: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_env(|name| env.get(name).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let defaults = config(&[]).unwrap();
        assert_eq!(
            (defaults.host.as_str(), defaults.port, defaults.path.as_str()),
            ("127.0.0.1", 8088, "/mcp")
        );
        let custom =
            config(&[("PORT", "9000"), ("MCP_PATH", "text-mcp/"), ("MCP_ALLOWED_HOSTS", " a, ,b ")]).unwrap();
        assert_eq!((custom.port, custom.path.as_str()), (9000, "/text-mcp"));
        assert_eq!(custom.allowed_hosts, vec!["a", "b"]);
        for bad in ["0", "65536", "http"] {
            assert!(config(&[("PORT", bad)]).unwrap_err().contains("PORT must be"));
        }
    }

    #[test]
    fn host_checks_follow_the_bind_address() {
        let loopback = config(&[]).unwrap().transport();
        assert!(loopback.allowed_hosts.contains(&"127.0.0.1".to_string()));
        assert!(loopback.allowed_origins.contains(&"http://localhost:8088".to_string()));
        let open = config(&[("HOST", "0.0.0.0")]).unwrap().transport();
        assert!(open.allowed_hosts.is_empty() && open.allowed_origins.is_empty());
        let named = config(&[("HOST", "0.0.0.0"), ("MCP_ALLOWED_HOSTS", "mcp.example")]).unwrap().transport();
        assert!(named.allowed_hosts.contains(&"mcp.example".to_string()));
        assert_eq!(config(&[("HOST", "::1")]).unwrap().bind_address(), "[::1]:8088");
    }
}
