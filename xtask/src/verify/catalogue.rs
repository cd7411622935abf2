//! The 19 production issues of the legacy service (`READINESS.md`): number, title, what
//! must hold here, and where the evidence comes from. The *tests* are not listed here —
//! they are found by name (`production_issue_NN_*`), so adding a test needs no edit.

use serde::Serialize;

/// A check whose failure also counts against an issue, beside its named tests (the loom
/// models prove #4 and #10, the race run #4, the manifest audit #6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// The loom models (`--cfg loom`).
    Loom,
    /// The ThreadSanitizer run.
    Race,
    /// The Kubernetes manifest audit.
    ManifestAudit,
}

impl Anchor {
    /// The id of the check that backs this anchor (see [`super::check::CheckId`]).
    pub fn check_id(self) -> &'static str {
        match self {
            Anchor::Loom => "loom",
            Anchor::Race => "race",
            Anchor::ManifestAudit => "manifest-audit",
        }
    }
}

/// One legacy issue and what proves it resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issue {
    /// 1..=19, as numbered in `READINESS.md`; tests carry it as `production_issue_NN_`.
    pub number: u8,
    /// The problem in the legacy service.
    pub title: &'static str,
    /// What must hold here (each point is a test).
    pub must_hold: &'static str,
    /// Other issues whose tests are this issue's evidence too: #16 (insecure default
    /// origin policy) is covered by the #13 tests.
    pub evidence_from: &'static [u8],
    /// Checks whose failure regresses this issue as well.
    pub anchors: &'static [Anchor],
    /// Where the tests are expected to live, as a hint when evidence is missing.
    pub owner: &'static str,
}

impl Issue {
    /// The issue numbers whose tests count as this issue's evidence (itself first).
    pub fn evidence_issues(&self) -> impl Iterator<Item = u8> + '_ {
        std::iter::once(self.number).chain(self.evidence_from.iter().copied())
    }

    /// `production_issue_NN`: the prefix that selects this issue's own tests.
    pub fn test_prefix(&self) -> String {
        format!("production_issue_{:02}", self.number)
    }
}

/// The catalogue, in issue order. A test pins that it has exactly 19 entries numbered
/// 1..=19.
pub const ISSUES: [Issue; 19] = [
    Issue {
        number: 1,
        title: "Ended sessions stayed in memory forever",
        must_hold: "end_session marks inactive, sets the end time and removes the user→session mapping; a sweeper removes ended sessions after the TTL (paused time); 1 000 sessions created and ended leave nothing behind; memory stats add up",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-session",
    },
    Issue {
        number: 2,
        title: "Session ID mismatch between manager and router",
        must_hold: "the server generates the id; the same id reaches the manager, the store and the connection registry; a store failure rolls the in-memory session back completely and the user can retry",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-router",
    },
    Issue {
        number: 3,
        title: "A connection registered twice replaced the old one without cleanup",
        must_hold: "registration is idempotent; a second device joins instead of muting the first; unregistering removes only that connection's entry; no task is left behind",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-router",
    },
    Issue {
        number: 4,
        title: "Data race on the connection's session id",
        must_hold: "concurrent readers/writers of connection and session state (threads + a loom model); race run under ThreadSanitizer",
        evidence_from: &[],
        anchors: &[Anchor::Loom, Anchor::Race],
        owner: "chat-session, chat-router",
    },
    Issue {
        number: 5,
        title: "main never started the HTTP server",
        must_hold: "the real binary starts, registers every route, answers /healthz, exits cleanly and promptly on SIGTERM/SIGINT",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-server",
    },
    Issue {
        number: 6,
        title: "Placeholder secrets in Kubernetes manifests",
        must_hold: "no committed manifest contains a real or placeholder secret value; the secret comes from a script/template that startup rejects if left with placeholders; a test scans every manifest",
        evidence_from: &[],
        anchors: &[Anchor::ManifestAudit],
        owner: "xtask (manifest audit)",
    },
    Issue {
        number: 7,
        title: "WebSocket messages were not validated or sanitized",
        must_hold: "through the real handler: invalid frames get INVALID_FORMAT naming the field and never reach the router; NUL bytes stripped; content is not HTML-escaped",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-protocol, chat-ws",
    },
    Issue {
        number: 8,
        title: "LLM streaming had no deadline",
        must_hold: "the provider call carries first-token, idle and total deadlines from config; a hanging provider produces LLM_TIMEOUT within the deadline and releases its connection and task",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-llm",
    },
    Issue {
        number: 9,
        title: "No MongoDB retry",
        must_hold: "transient errors are retried with exponential backoff and jitter, permanent errors are not, each attempt has a timeout; exercised against a real MongoDB-wire server with injected faults",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-storage",
    },
    Issue {
        number: 10,
        title: "Session serialization raced with mutation",
        must_hold: "the document is built from a consistent snapshot; concurrent mutation cannot tear it (loom model + stress test); every field round-trips with the schema's BSON names",
        evidence_from: &[],
        anchors: &[Anchor::Loom],
        owner: "chat-session, chat-storage",
    },
    Issue {
        number: 11,
        title: "Rate limiter cleanup never ran",
        must_hold: "expired keys are dropped; 10 000 distinct keys leave bounded memory; the number of tracked keys is capped",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-ratelimit",
    },
    Issue {
        number: 12,
        title: "Response-time list grew without bound",
        must_hold: "10 000 recorded response times keep bounded memory and correct max/avg",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-session",
    },
    Issue {
        number: 13,
        title: "Allowed-origins list raced; empty list allowed every origin",
        must_hold: "origin checks and live updates are race-free; production mode refuses to start without allowed origins; development mode allows loopback only",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-ws, chat-config",
    },
    Issue {
        number: 14,
        title: "Connection-limit notice iterated the connection map unlocked",
        must_hold: "over-limit handshake gets 429 and the user's other sockets a notification, with no lock held across sends",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-ws",
    },
    Issue {
        number: 15,
        title: "Shutdown ignored its deadline",
        must_hold: "with live sockets and an in-flight stream, shutdown finishes within the deadline; clients get close 1001; new upgrades get 503 while draining",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-server, chat-ws",
    },
    Issue {
        number: 16,
        title: "Insecure default origin policy",
        must_hold: "covered with #13: no default allows every origin (production requires an explicit list, development allows loopback only)",
        evidence_from: &[13],
        anchors: &[],
        owner: "chat-ws, chat-config (the #13 tests)",
    },
    Issue {
        number: 17,
        title: "Weak JWT secrets were accepted",
        must_hold: "test123, password, short or placeholder secrets make the binary exit non-zero with a clear message; a strong secret starts",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-config, chat-server",
    },
    Issue {
        number: 18,
        title: "Admin endpoints were not rate limited",
        must_hold: "1 000 rapid admin requests → 429 with Retry-After after the quota; non-admin 403, no token 401",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-server",
    },
    Issue {
        number: 19,
        title: "Config validation was not automatic",
        must_hold: "there is no way to obtain an unvalidated config; every rule has a test that names its message",
        evidence_from: &[],
        anchors: &[],
        owner: "chat-config",
    },
];

/// The catalogue entry for `number`, if it is one of the 19.
pub fn issue(number: u8) -> Option<&'static Issue> {
    ISSUES.iter().find(|i| i.number == number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_numbers_the_nineteen_issues_in_order() {
        let numbers: Vec<u8> = ISSUES.iter().map(|i| i.number).collect();
        assert_eq!(numbers, (1..=19).collect::<Vec<u8>>());
    }

    #[test]
    fn issue_16_takes_its_evidence_from_issue_13() {
        let sixteen = issue(16).map(|i| i.evidence_issues().collect::<Vec<_>>());
        assert_eq!(sixteen, Some(vec![16, 13]));
        assert!(ISSUES
            .iter()
            .filter(|i| i.number != 16)
            .all(|i| i.evidence_from.is_empty()));
    }

    #[test]
    fn test_prefix_is_zero_padded() {
        assert_eq!(
            issue(8).map(Issue::test_prefix).as_deref(),
            Some("production_issue_08")
        );
    }
}
