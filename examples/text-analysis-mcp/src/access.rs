//! Host and Origin checks: the MCP transport's defence against DNS rebinding, where a web page
//! on another site reaches a server on the user's machine through a hostname that resolves to
//! 127.0.0.1. Browsers always send the name they think they talk to (Host) and, on POST, where the
//! page came from (Origin); non-browser MCP clients send no Origin.

/// Who may talk to the server: Host and Origin values (`host:port` / `scheme://host:port`,
/// compared case-insensitively; a Host entry `name:*` allows any port).
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// `None` accepts any Host (bound to a public interface, e.g. in a container behind a gateway).
    pub allowed_hosts: Option<Vec<String>>,
    /// A request carrying an Origin header must match one of these. Non-browser clients send none.
    pub allowed_origins: Vec<String>,
}

pub fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]")
}

impl Access {
    /// The rules for a bind address plus configured extras (`MCP_ALLOWED_HOSTS`/`_ORIGINS`):
    /// loopback binds only answer to loopback names (DNS rebinding); other binds check Host only
    /// when extra hosts are configured.
    pub fn new(host: &str, port: u16, extra_hosts: &[String], extra_origins: &[String]) -> Access {
        let mut hosts: Vec<String> = Vec::new();
        let mut origins: Vec<String> = Vec::new();
        if is_loopback(host) {
            for name in ["localhost", "127.0.0.1", "[::1]"] {
                hosts.push(format!("{}:{}", name, port));
                origins.push(format!("http://{}:{}", name, port));
            }
        }
        hosts.extend(extra_hosts.iter().cloned());
        origins.extend(extra_origins.iter().cloned());
        Access { allowed_hosts: if hosts.is_empty() { None } else { Some(hosts) }, allowed_origins: origins }
    }

    #[cfg(test)]
    pub fn for_bind(host: &str, port: u16) -> Access {
        Access::new(host, port, &[], &[])
    }

    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let allowed = match &self.allowed_hosts {
            None => return true,
            Some(allowed) => allowed,
        };
        let host = match host {
            Some(h) => h,
            None => return false,
        };
        allowed.iter().any(|a| match a.strip_suffix(":*") {
            Some(name) => {
                host.rsplit_once(':').map_or(false, |(h, p)| {
                    h.eq_ignore_ascii_case(name) && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
                }) || host.eq_ignore_ascii_case(name)
            }
            None => a.eq_ignore_ascii_case(host),
        })
    }

    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(origin) => self.allowed_origins.iter().any(|a| a.eq_ignore_ascii_case(origin)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_binds_accept_only_loopback_names() {
        let access = Access::for_bind("127.0.0.1", 8088);
        for host in ["localhost:8088", "127.0.0.1:8088", "[::1]:8088", "LOCALHOST:8088"] {
            assert!(access.host_allowed(Some(host)), "{}", host);
        }
        for host in ["evil.example:8088", "localhost:9999", "localhost", "127.0.0.1.evil.example:8088"] {
            assert!(!access.host_allowed(Some(host)), "{}", host);
        }
        assert!(!access.host_allowed(None));
        assert!(access.origin_allowed(None));
        assert!(access.origin_allowed(Some("http://localhost:8088")));
        assert!(!access.origin_allowed(Some("http://evil.example:8088")));
    }

    #[test]
    fn public_binds_check_only_what_is_configured() {
        let open = Access::for_bind("0.0.0.0", 8088);
        assert!(open.host_allowed(Some("text-analysis.team-a.svc:8088")) && open.host_allowed(None));
        assert!(!open.origin_allowed(Some("http://evil.example")), "browsers are refused unless configured");
        let extra = Access::new(
            "0.0.0.0",
            8088,
            &["mcp.example:*".to_string()],
            &["https://app.example".to_string()],
        );
        assert!(extra.host_allowed(Some("mcp.example:443")) && extra.host_allowed(Some("MCP.example")));
        assert!(
            !extra.host_allowed(Some("mcp.example.evil:80")) && !extra.host_allowed(Some("mcp.example:x"))
        );
        assert!(extra.origin_allowed(Some("https://app.example")));
    }
}
