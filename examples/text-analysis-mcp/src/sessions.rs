//! The session store: which `Mcp-Session-Id`s are live and what protocol version each negotiated.
//! Bounded (idle sessions expire; when full, the least recently used one makes room) so clients
//! that never send DELETE cannot grow memory without limit.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Session {
    protocol_version: String,
    last_seen: Instant,
}

pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    capacity: usize,
    idle_limit: Duration,
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

impl Sessions {
    pub fn new(capacity: usize, idle_limit: Duration) -> Sessions {
        Sessions { live: Mutex::new(HashMap::new()), capacity: capacity.max(1), idle_limit }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // A panic elsewhere cannot leave a HashMap half-updated in a way that matters here.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session with its negotiated protocol version; returns its id.
    pub fn create(&self, protocol_version: &str) -> String {
        let id = new_session_id();
        let mut live = self.lock();
        if live.len() >= self.capacity {
            let idle_limit = self.idle_limit;
            live.retain(|_, s| s.last_seen.elapsed() < idle_limit);
        }
        if live.len() >= self.capacity {
            let oldest = live.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                live.remove(&oldest);
            }
        }
        live.insert(
            id.clone(),
            Session { protocol_version: protocol_version.to_string(), last_seen: Instant::now() },
        );
        id
    }

    /// The session's negotiated version, marking it used; `None` when unknown or expired.
    pub fn touch(&self, id: &str) -> Option<String> {
        let mut live = self.lock();
        if live.get(id).map_or(false, |s| s.last_seen.elapsed() >= self.idle_limit) {
            live.remove(id);
            return None;
        }
        live.get_mut(id).map(|s| {
            s.last_seen = Instant::now();
            s.protocol_version.clone()
        })
    }

    /// Forget a session; false when it was not live.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_hex() {
        let (a, b) = (new_session_id(), new_session_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn full_store_forgets_the_least_recently_used() {
        let sessions = Sessions::new(2, Duration::from_secs(3600));
        let first = sessions.create("2025-06-18");
        let second = sessions.create("2025-03-26");
        assert_eq!(sessions.touch(&first).as_deref(), Some("2025-06-18"));
        let third = sessions.create("2025-06-18");
        assert!(sessions.touch(&second).is_none());
        assert!(sessions.touch(&first).is_some() && sessions.touch(&third).is_some());
        assert!(sessions.remove(&first));
        assert!(!sessions.remove(&first));
    }

    #[test]
    fn idle_sessions_expire() {
        let sessions = Sessions::new(10, Duration::from_secs(0));
        let id = sessions.create("2025-06-18");
        assert!(sessions.touch(&id).is_none());
    }
}
