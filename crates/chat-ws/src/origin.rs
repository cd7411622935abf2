//! Which browser origins may open a WebSocket (READINESS #13 and #16).
//!
//! # Rules
//!
//! - A listed origin is allowed; the comparison is on the normalized ASCII origin
//!   (`scheme://host[:port]`, lowercase host, default port dropped), so
//!   `https://Chat.Example.com:443` matches `https://chat.example.com`.
//! - **Development** mode with an empty list allows loopback origins only
//!   (`http(s)://localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`, any port).
//! - **Production** mode with an empty list allows no browser origin at all. Config
//!   validation already refuses to start that way; the policy never reads "empty" as
//!   "allow all", whatever the mode.
//! - `Origin: null`, a malformed origin or a non-http(s) scheme is refused.
//! - **A request without an `Origin` header is allowed.** Browsers always send
//!   `Origin` on a WebSocket upgrade (RFC 6455 §4.1 and the Fetch standard), so the
//!   cross-site attack this check exists for (a page on another site opening a socket
//!   with the victim's cookies or token) always carries one. Clients that send none
//!   are not browsers (mobile apps, servers, CLIs); they could forge any `Origin`
//!   anyway, so refusing them would add no security, only break them. They still need
//!   a valid token.
//!
//! # Live updates without races
//!
//! The allow-list is an immutable snapshot behind an `Arc`, swapped whole under a
//! short write lock by [`OriginPolicy::update`]. A check clones the current `Arc`
//! under the read lock and then evaluates against that snapshot, so every answer is
//! the answer of either the old list or the new one, never of a half-updated list
//! (the legacy service mutated the list in place while readers iterated it).

use std::collections::HashSet;
use std::sync::Arc;

use chat_config::{net, Config, Mode};
use http::HeaderValue;
use parking_lot::RwLock;

/// An origin in the allow-list could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Not `scheme://host[:port]` with http or https.
    #[error("{0}")]
    Invalid(String),
    /// Development mode serves loopback origins only (as config validation demands).
    #[error("origin {0:?}: development mode allows loopback origins only")]
    NotLoopback(String),
    /// `*` would mean "every site"; list the origins explicitly.
    #[error("'*' is not accepted: list the origins explicitly")]
    Wildcard,
}

/// One immutable version of the allow-list.
#[derive(Debug, PartialEq, Eq)]
enum AllowList {
    /// Exactly these normalized origins.
    Listed(HashSet<String>),
    /// Development with an empty list: loopback hosts, any port.
    LoopbackOnly,
    /// Production with an empty list: no browser origin (never "allow all").
    Nothing,
}

/// The live-updatable origin allow-list. Cloning shares the same list, so an update
/// through any clone is seen by every handshake.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    mode: Mode,
    current: Arc<RwLock<Arc<AllowList>>>,
}

impl OriginPolicy {
    /// A policy for `mode` with `origins` (each `scheme://host[:port]`).
    pub fn new(mode: Mode, origins: Vec<String>) -> Result<Self, OriginError> {
        let list = build(mode, origins)?;
        Ok(Self {
            mode,
            current: Arc::new(RwLock::new(Arc::new(list))),
        })
    }

    /// The policy of the validated configuration (`mode`, `server.allowed_origins`).
    /// Config validation has already checked every entry, so this cannot fail for a
    /// loaded [`Config`]; should an entry still be unusable, it is skipped with an
    /// error log rather than widening the policy.
    pub fn from_config(config: &Config) -> Self {
        let mode = config.mode;
        let usable: Vec<String> = config
            .server
            .allowed_origins
            .iter()
            .filter(|o| match normalize_entry(mode, o) {
                Ok(_) => true,
                Err(e) => {
                    tracing::error!(error = %e, "allowed origin skipped");
                    false
                }
            })
            .cloned()
            .collect();
        let list = if usable.is_empty() && !config.server.allowed_origins.is_empty() {
            // Every configured entry was unusable: allow nothing rather than fall back
            // to the development default.
            AllowList::Nothing
        } else {
            build(mode, usable).unwrap_or(AllowList::Nothing)
        };
        Self {
            mode,
            current: Arc::new(RwLock::new(Arc::new(list))),
        }
    }

    /// Replaces the whole list atomically (a configuration reload). An invalid entry
    /// refuses the whole update and keeps the current list.
    pub fn update(&self, origins: Vec<String>) -> Result<(), OriginError> {
        let list = Arc::new(build(self.mode, origins)?);
        *self.current.write() = list;
        Ok(())
    }

    /// Whether a handshake with this `Origin` header may proceed. `None` (no header:
    /// not a browser) is allowed; see the module docs for why.
    pub fn check(&self, origin: Option<&HeaderValue>) -> bool {
        let Some(value) = origin else {
            return true;
        };
        let Ok(text) = value.to_str() else {
            return false;
        };
        let snapshot = Arc::clone(&self.current.read());
        allows(&snapshot, text)
    }

    /// The mode the policy was built for.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The normalized listed origins of the current snapshot, sorted (empty for the
    /// loopback-only and allow-nothing policies). For diagnostics and tests.
    pub fn allowed_origins(&self) -> Vec<String> {
        let snapshot = Arc::clone(&self.current.read());
        match &*snapshot {
            AllowList::Listed(set) => {
                let mut out: Vec<String> = set.iter().cloned().collect();
                out.sort();
                out
            }
            AllowList::LoopbackOnly | AllowList::Nothing => Vec::new(),
        }
    }

    /// True when the current policy is development's loopback-only default.
    pub fn is_loopback_only(&self) -> bool {
        matches!(**self.current.read(), AllowList::LoopbackOnly)
    }
}

fn build(mode: Mode, origins: Vec<String>) -> Result<AllowList, OriginError> {
    if origins.is_empty() {
        return Ok(match mode {
            Mode::Development => AllowList::LoopbackOnly,
            Mode::Production => AllowList::Nothing,
        });
    }
    let mut set = HashSet::with_capacity(origins.len());
    for origin in &origins {
        set.insert(normalize_entry(mode, origin)?);
    }
    Ok(AllowList::Listed(set))
}

/// Validates one configured origin and returns its normalized form.
fn normalize_entry(mode: Mode, origin: &str) -> Result<String, OriginError> {
    let origin = origin.trim();
    if origin == "*" {
        return Err(OriginError::Wildcard);
    }
    let url = net::parse_origin(origin).map_err(OriginError::Invalid)?;
    let loopback = url.host().is_some_and(|h| net::is_loopback_host(&h));
    if mode == Mode::Development && !loopback {
        return Err(OriginError::NotLoopback(origin.to_owned()));
    }
    Ok(url.origin().ascii_serialization())
}

fn allows(list: &AllowList, origin: &str) -> bool {
    let Ok(url) = net::parse_origin(origin) else {
        return false;
    };
    match list {
        AllowList::Listed(set) => set.contains(&url.origin().ascii_serialization()),
        AllowList::LoopbackOnly => url.host().is_some_and(|h| net::is_loopback_host(&h)),
        AllowList::Nothing => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }

    #[test]
    fn development_empty_list_allows_loopback_only() {
        let policy = OriginPolicy::new(Mode::Development, vec![]).unwrap_or_else(|e| {
            unreachable!("{e}");
        });
        for ok in [
            "http://localhost:3000",
            "https://localhost",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:5173",
            "http://app.localhost:8080",
        ] {
            assert!(policy.check(Some(&header(ok))), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "http://10.0.0.1",
            "null",
            "file://localhost",
            "http://localhost.evil.example",
            "",
        ] {
            assert!(!policy.check(Some(&header(bad))), "{bad}");
        }
    }

    #[test]
    fn listed_origins_match_after_normalization() {
        let policy = OriginPolicy::new(
            Mode::Production,
            vec![
                "https://chat.example.com".into(),
                "http://localhost:3000".into(),
            ],
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(policy.check(Some(&header("https://Chat.Example.com:443"))));
        assert!(policy.check(Some(&header("http://localhost:3000"))));
        assert!(!policy.check(Some(&header("http://localhost:3001"))));
        assert!(!policy.check(Some(&header("http://chat.example.com"))));
        assert!(!policy.check(Some(&header("https://chat.example.com.evil.example"))));
    }

    #[test]
    fn production_empty_list_allows_no_browser_origin() {
        let policy =
            OriginPolicy::new(Mode::Production, vec![]).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!policy.check(Some(&header("http://localhost:3000"))));
        assert!(!policy.check(Some(&header("https://chat.example.com"))));
        assert!(policy.check(None), "non-browser clients send no Origin");
    }

    #[test]
    fn invalid_update_keeps_the_current_list() {
        let policy = OriginPolicy::new(Mode::Production, vec!["https://a.example".into()])
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            policy.update(vec!["https://b.example".into(), "*".into()]),
            Err(OriginError::Wildcard)
        );
        assert!(policy.update(vec!["not a url".into()]).is_err());
        assert_eq!(
            policy.allowed_origins(),
            vec!["https://a.example".to_owned()]
        );
    }

    #[test]
    fn development_refuses_non_loopback_entries() {
        assert!(matches!(
            OriginPolicy::new(Mode::Development, vec!["https://evil.example".into()]),
            Err(OriginError::NotLoopback(_))
        ));
    }
}
