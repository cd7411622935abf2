//! Behaviour of the `SessionManager`: one active session per user, lookup, end,
//! rollback, rehydration, memory stats and the sweeper (READINESS #1).
#![cfg(not(loom))]

use std::collections::HashSet;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use chat_config::SessionSettings;
use chat_session::{MemoryStats, Sender, SessionError, SessionManager, StoredMessage, SweepReport};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

fn settings() -> SessionSettings {
    SessionSettings {
        ttl: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(1800),
        sweep_interval: Duration::from_secs(60),
        replay_buffer_frames: 16,
        max_messages_in_memory: 100,
        release_grace: Duration::from_secs(30),
    }
}

fn manager() -> SessionManager {
    SessionManager::new(&settings())
}

fn msg(text: &str, secs: i64) -> StoredMessage {
    StoredMessage::text(Sender::User, text, at(secs))
}

#[test]
fn new_session_gets_a_32_lowercase_hex_server_id() {
    let m = manager();
    let (s, created) = m.get_or_create_active("u1", t0());
    assert!(created);
    assert_eq!(s.id().len(), 32);
    assert!(s
        .id()
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert_eq!(s.user_id(), "u1");
    assert_eq!(s.start_time(), t0());
}

/// Ids begin with their creation time, so a store's index keeps the sessions that are
/// being written (the recent ones) on a few neighbouring pages instead of scattering
/// them (docs/STORAGE.md, "Session ids").
#[test]
fn session_ids_begin_with_their_creation_time_and_sort_by_it() {
    let m = manager();
    let times = [
        at(0),
        at(0) + TimeDelta::milliseconds(1),
        at(1),
        at(3600),
        at(86_400 * 400),
    ];
    let ids: Vec<String> = times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            m.get_or_create_active(&format!("u{i}"), t)
                .0
                .id()
                .to_owned()
        })
        .collect();
    for (id, t) in ids.iter().zip(times) {
        let millis = u64::from_str_radix(&id[..12], 16).unwrap();
        assert_eq!(i64::try_from(millis).unwrap(), t.timestamp_millis(), "{id}");
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "ids sort in creation order");
    // Before the epoch (only a test clock goes there) the time part is zero.
    let (old, _) =
        m.get_or_create_active("u-old", Utc.with_ymd_and_hms(1960, 1, 1, 0, 0, 0).unwrap());
    assert_eq!(&old.id()[..12], "000000000000");
    assert_eq!(old.id().len(), 32);
}

#[test]
fn session_ids_are_unique() {
    // All in the same millisecond: the 80 random bits alone keep them apart.
    let m = manager();
    let ids: HashSet<String> = (0..500)
        .map(|i| {
            m.get_or_create_active(&format!("u{i}"), t0())
                .0
                .id()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 500);
}

#[test]
fn second_create_for_same_user_returns_the_active_session() {
    let m = manager();
    let (a, created_a) = m.get_or_create_active("u1", t0());
    let (b, created_b) = m.get_or_create_active("u1", at(5));
    assert!(created_a);
    assert!(!created_b);
    assert!(Arc::ptr_eq(&a, &b));
    let (other, created) = m.get_or_create_active("u2", t0());
    assert!(created);
    assert_ne!(other.id(), a.id());
}

#[test]
fn concurrent_creates_for_one_user_yield_one_session() {
    let m = Arc::new(manager());
    let start = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (m, start) = (m.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let (s, created) = m.get_or_create_active("same-user", t0());
                (s.id().to_owned(), created)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ids: HashSet<_> = results.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(results.iter().filter(|(_, c)| *c).count(), 1);
    assert_eq!(
        m.stats(),
        MemoryStats {
            active: 1,
            ended: 0,
            total: 1
        }
    );
}

#[test]
fn get_and_active_for_user_find_the_session() {
    let m = manager();
    let (s, _) = m.get_or_create_active("u1", t0());
    assert!(Arc::ptr_eq(&m.get(s.id()).unwrap(), &s));
    assert!(Arc::ptr_eq(&m.active_for_user("u1").unwrap(), &s));
    assert!(m.get("nope").is_none());
    assert!(m.active_for_user("u2").is_none());
}

#[test]
fn end_marks_inactive_keeps_first_time_and_unmaps_user() {
    let m = manager();
    let (s, _) = m.get_or_create_active("u1", t0());
    assert_eq!(m.end(s.id(), at(10)), Ok(true));
    assert_eq!(m.end(s.id(), at(20)), Ok(false));
    assert_eq!(s.end_time(), Some(at(10)));
    assert!(m.active_for_user("u1").is_none());
    assert!(m.get(s.id()).is_some(), "ended sessions stay until the TTL");
    let (next, created) = m.get_or_create_active("u1", at(30));
    assert!(created);
    assert_ne!(next.id(), s.id());
    assert_eq!(
        m.stats(),
        MemoryStats {
            active: 1,
            ended: 1,
            total: 2
        }
    );
}

#[test]
fn ending_an_unknown_session_is_not_found() {
    let m = manager();
    let err = m.end("missing", t0()).unwrap_err();
    assert_eq!(
        err,
        SessionError::NotFound {
            session_id: "missing".into()
        }
    );
    assert_eq!(err.http_status(), 404);
    assert_eq!(err.wire_code(), chat_protocol::ErrorCode::NotFound);
    assert_eq!(err.log_level(), tracing::Level::DEBUG);
}

#[test]
fn session_ended_directly_is_not_handed_out_again() {
    let m = manager();
    let (s, _) = m.get_or_create_active("u1", t0());
    s.end(at(1));
    assert!(m.active_for_user("u1").is_none());
    let (next, created) = m.get_or_create_active("u1", at(2));
    assert!(created);
    assert_ne!(next.id(), s.id());
}

#[test]
fn remove_rolls_back_completely_and_user_can_retry() {
    let m = manager();
    let (s, created) = m.get_or_create_active("u1", t0());
    assert!(created);
    // persisting failed → rollback
    let removed = m.remove(s.id()).unwrap();
    assert!(Arc::ptr_eq(&removed, &s));
    assert!(m.get(s.id()).is_none());
    assert!(m.active_for_user("u1").is_none());
    assert_eq!(m.stats(), MemoryStats::default());
    // A holder of the old Arc cannot write into the orphan.
    assert!(matches!(
        s.append(msg("lost?", 1)),
        Err(SessionError::Ended { .. })
    ));
    // Retry creates a fresh session.
    let (retry, created) = m.get_or_create_active("u1", at(2));
    assert!(created);
    assert_ne!(retry.id(), s.id());
    assert!(m.remove("unknown").is_none());
}

#[test]
fn rehydrated_sessions_are_registered_with_their_state() {
    let m = manager();
    let (s, _) = m.get_or_create_active("u1", t0());
    s.append(msg("Persisted question", 5)).unwrap();
    let active_snap = s.snapshot();
    let (e, _) = m.get_or_create_active("u2", t0());
    m.end(e.id(), at(3)).unwrap();
    let ended_snap = e.snapshot();

    let fresh = manager();
    let back = fresh.insert_rehydrated(active_snap.clone()).unwrap();
    assert_eq!(back.snapshot(), active_snap);
    assert!(Arc::ptr_eq(&fresh.active_for_user("u1").unwrap(), &back));
    let (same, created) = fresh.get_or_create_active("u1", at(9));
    assert!(!created);
    assert_eq!(same.id(), active_snap.id);

    fresh.insert_rehydrated(ended_snap.clone()).unwrap();
    assert!(fresh.active_for_user("u2").is_none());
    assert_eq!(
        fresh.stats(),
        MemoryStats {
            active: 1,
            ended: 1,
            total: 2
        }
    );

    assert_eq!(
        fresh.insert_rehydrated(active_snap.clone()).unwrap_err(),
        SessionError::AlreadyExists {
            session_id: active_snap.id.clone()
        }
    );
    let mut second_active = active_snap.clone();
    second_active.id = "ffffffffffffffffffffffffffffffff".into();
    assert_eq!(
        fresh.insert_rehydrated(second_active).unwrap_err(),
        SessionError::UserHasActiveSession {
            user_id: "u1".into(),
            active_session_id: active_snap.id.clone()
        }
    );
}

#[test]
fn sweep_ends_idle_sessions_and_reports_them() {
    let m = manager();
    let (idle, _) = m.get_or_create_active("idle", t0());
    let (busy, _) = m.get_or_create_active("busy", t0());
    busy.append(msg("still here", 1700)).unwrap();
    let report = m.sweep(at(1800));
    assert_eq!(report.ended, vec![idle.id().to_owned()]);
    assert!(report.removed.is_empty());
    assert!(!idle.is_active());
    assert_eq!(idle.end_time(), Some(at(1800)));
    assert!(busy.is_active());
    assert!(m.active_for_user("idle").is_none());
    assert!(m.active_for_user("busy").is_some());
    assert!(m.sweep(at(1801)).is_empty());
}

#[test]
fn sweep_removes_ended_sessions_after_ttl_only() {
    let m = manager();
    let (s, _) = m.get_or_create_active("u1", t0());
    m.end(s.id(), at(10)).unwrap();
    assert!(m.sweep(at(10 + 3599)).removed.is_empty());
    assert!(m.get(s.id()).is_some());
    let report = m.sweep(at(10 + 3600));
    assert_eq!(
        report,
        SweepReport {
            ended: vec![],
            removed: vec![s.id().to_owned()]
        }
    );
    assert!(m.get(s.id()).is_none());
    assert_eq!(m.stats(), MemoryStats::default());
}

#[test]
fn sweep_never_unmaps_the_users_newer_session() {
    let m = manager();
    let (old, _) = m.get_or_create_active("u1", t0());
    m.end(old.id(), at(1)).unwrap();
    let (new, _) = m.get_or_create_active("u1", at(2));
    new.append(msg("hi", 3600)).unwrap();
    let report = m.sweep(at(3601));
    assert_eq!(report.removed, vec![old.id().to_owned()]);
    assert!(Arc::ptr_eq(&m.active_for_user("u1").unwrap(), &new));
}

#[test]
fn production_issue_01_memory_growth() {
    let m = manager();
    let mut ids = Vec::new();
    for i in 0..1_000 {
        let (s, created) = m.get_or_create_active(&format!("user-{i}"), at(i));
        assert!(created);
        s.append(msg("hello", i)).unwrap();
        ids.push(s.id().to_owned());
    }
    assert_eq!(
        m.stats(),
        MemoryStats {
            active: 1_000,
            ended: 0,
            total: 1_000
        }
    );
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(m.end(id, at(1_000 + i as i64)), Ok(true));
    }
    assert_eq!(
        m.stats(),
        MemoryStats {
            active: 0,
            ended: 1_000,
            total: 1_000
        }
    );
    for i in 0..1_000 {
        assert!(m.active_for_user(&format!("user-{i}")).is_none());
    }
    // Before the TTL of the last one: only the earliest are gone, stats add up.
    let partial = m.sweep(at(1_000 + 3_600 + 499));
    assert_eq!(partial.removed.len(), 500);
    let stats = m.stats();
    assert_eq!(
        stats,
        MemoryStats {
            active: 0,
            ended: 500,
            total: 500
        }
    );
    // After the TTL: nothing left.
    let rest = m.sweep(at(2_000 + 3_600));
    assert_eq!(rest.removed.len(), 500);
    assert_eq!(m.stats(), MemoryStats::default());
    assert!(ids.iter().all(|id| m.get(id).is_none()));
}

#[tokio::test(start_paused = true)]
async fn production_issue_01_session_cleanup() {
    let s = settings();
    let m = Arc::new(SessionManager::new(&s));
    let now = Utc::now();
    let ended = m.get_or_create_active("ender", now).0;
    m.end(ended.id(), now).unwrap();
    let idle = m.get_or_create_active("idler", now).0;
    for i in 0..1_000 {
        let (x, _) = m.get_or_create_active(&format!("bulk-{i}"), now);
        m.end(x.id(), now).unwrap();
    }
    assert_eq!(
        m.stats(),
        MemoryStats {
            active: 1,
            ended: 1_001,
            total: 1_002
        }
    );

    let reports = Arc::new(Mutex::new(Vec::<SweepReport>::new()));
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let sink = reports.clone();
    m.clone().spawn_sweeper(cancel.clone(), &tracker, move |r| {
        sink.lock().unwrap().push(r);
    });

    // After the idle timeout (plus a sweep interval) the idle session is ended…
    tokio::time::sleep(s.idle_timeout + s.sweep_interval).await;
    assert!(!idle.is_active());
    assert!(m.active_for_user("idler").is_none());
    assert_eq!(m.stats().active, 0);
    let ended_ids: Vec<String> = reports
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.ended.clone())
        .collect();
    assert_eq!(ended_ids, vec![idle.id().to_owned()]);

    // …and once the TTL has passed for everything, memory is empty.
    tokio::time::sleep(s.ttl).await;
    assert_eq!(m.stats(), MemoryStats::default());
    assert!(m.get(ended.id()).is_none());
    assert!(m.get(idle.id()).is_none());
    let removed: usize = reports
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.removed.len())
        .sum();
    assert_eq!(removed, 1_002);

    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    assert!(tracker.is_empty());
}

#[tokio::test(start_paused = true)]
async fn sweeper_stops_promptly_when_cancelled() {
    let m = Arc::new(manager());
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let handle = m.clone().spawn_sweeper(cancel.clone(), &tracker, |_| {});
    assert_eq!(tracker.len(), 1);
    cancel.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_millis(10), tracker.wait())
        .await
        .expect("sweeper did not stop on cancel");
    assert!(handle.is_finished());
    assert_eq!(Arc::strong_count(&m), 1, "the task released the manager");
}

#[test]
fn release_history_unless_spares_sessions_in_use_and_keeps_the_registry() {
    let m = manager();
    let (busy, _) = m.get_or_create_active("busy", t0());
    let (idle, _) = m.get_or_create_active("idle", t0());
    let (ended, _) = m.get_or_create_active("ended", t0());
    for s in [&busy, &idle, &ended] {
        s.append(msg("hello", 1)).unwrap();
        s.append(msg("again", 2)).unwrap();
    }
    m.end(ended.id(), at(3)).unwrap();
    let busy_id = busy.id().to_owned();
    assert_eq!(m.release_history_unless(|id| id == busy_id), 2);
    assert_eq!(busy.recent_messages(10).len(), 2, "in use: untouched");
    assert!(idle.recent_messages(10).is_empty());
    assert!(ended.recent_messages(10).is_empty());
    assert_eq!(idle.message_count(), 2);
    // Released sessions stay registered with their state and mapping.
    assert_eq!(
        m.active_for_user("idle").map(|s| s.id().to_owned()),
        Some(idle.id().to_owned())
    );
    assert!(!m.get(ended.id()).unwrap().is_active());
    assert_eq!(
        m.stats(),
        MemoryStats {
            active: 2,
            ended: 1,
            total: 3
        }
    );
    assert_eq!(
        m.release_history_unless(|_| false),
        1,
        "only the busy one still had messages"
    );
}
