//! Loom models of the session core (2–3 threads each). Compiled only under
//! `--cfg loom`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p chat-session -p chat-ratelimit --release
//! ```
#![cfg(loom)]

use std::sync::Arc;
use std::time::Duration;

use chat_config::SessionSettings;
use chat_session::{Sender, SessionError, SessionManager, StoredMessage};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

fn manager() -> SessionManager {
    SessionManager::new(&SessionSettings {
        ttl: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(1800),
        sweep_interval: Duration::from_secs(60),
        replay_buffer_frames: 4,
        max_messages_in_memory: 16,
        release_grace: Duration::from_secs(30),
    })
}

fn msg(text: &str, secs: i64) -> StoredMessage {
    StoredMessage::text(Sender::User, text, at(secs))
}

/// Concurrent creates for one user: one session, exactly one `created`.
#[test]
fn loom_one_active_session_per_user_under_concurrent_create() {
    loom::model(|| {
        let m = Arc::new(manager());
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    let (s, created) = m.get_or_create_active("u", t0());
                    (s.id().to_owned(), created)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(
            results[0].0, results[1].0,
            "two active sessions for one user"
        );
        assert_eq!(results.iter().filter(|(_, c)| *c).count(), 1);
        let stats = m.stats();
        assert_eq!((stats.active, stats.total), (1, 1));
        assert_eq!(m.active_for_user("u").unwrap().id(), results[0].0);
    });
}

/// Two creates race with an end of the user's session (3 threads): whatever the
/// order, the user never has two active sessions and the mapping points at the one.
#[test]
fn loom_one_active_session_per_user_with_concurrent_end() {
    loom::model(|| {
        let m = Arc::new(manager());
        let creators: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || m.get_or_create_active("u", t0()).0.id().to_owned())
            })
            .collect();
        let ender = {
            let m = m.clone();
            thread::spawn(move || {
                m.active_for_user("u")
                    .map(|s| m.end(s.id(), at(1)).unwrap())
                    .unwrap_or(false)
            })
        };
        let ids: Vec<_> = creators.into_iter().map(|h| h.join().unwrap()).collect();
        let ended = ender.join().unwrap();
        let stats = m.stats();
        assert!(stats.active <= 1, "two active sessions for one user");
        assert_eq!(stats.total, stats.active + stats.ended);
        assert_eq!(stats.ended, usize::from(ended));
        match m.active_for_user("u") {
            Some(active) => {
                assert!(active.is_active());
                assert!(ids.iter().any(|id| id == active.id()));
            }
            None => assert!(ended && ids[0] == ids[1]),
        }
        if ids[0] != ids[1] {
            // The second session can only exist because the first was ended in between.
            assert!(ended);
            assert_eq!(stats.total, 2);
        }
    });
}

/// The idle sweep vs. a bind-and-append of a fresh message: the message is never
/// lost (it ends up in the user's active session), and a session the sweeper ended is
/// never handed out or written to again.
#[test]
fn loom_sweeper_vs_append_no_lost_message_no_resurrection() {
    loom::model(|| {
        let m = Arc::new(manager());
        let (s0, _) = m.get_or_create_active("u", t0());
        let s0_id = s0.id().to_owned();

        let writer = {
            let m = m.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    let (s, _) = m.get_or_create_active("u", at(1800));
                    match s.append(msg("fresh", 1800)) {
                        Ok(()) => return s.id().to_owned(),
                        Err(SessionError::Ended { .. }) => continue,
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                panic!("append failed twice: the sweeper resurrected or re-ended a session");
            })
        };
        let sweeper = {
            let m = m.clone();
            thread::spawn(move || m.sweep(at(1801)))
        };
        let written_to = writer.join().unwrap();
        let report = sweeper.join().unwrap();

        let active = m
            .active_for_user("u")
            .expect("the user has an active session");
        assert_eq!(active.id(), written_to);
        assert!(active.is_active());
        assert_eq!(active.recent_messages(10).len(), 1, "message lost");
        if report.ended.contains(&s0_id) {
            assert!(!s0.is_active());
            assert_ne!(written_to, s0_id, "ended session was written to");
            assert_eq!(s0.message_count(), 0);
        } else {
            assert_eq!(written_to, s0_id);
            assert!(s0.is_active());
        }
    });
}

/// TTL removal vs. a client binding the removed session by id: the removed session
/// never accepts the message and never comes back; the message goes to a new session.
#[test]
fn loom_sweeper_removal_vs_bind_by_id() {
    loom::model(|| {
        let m = Arc::new(manager());
        let (s0, _) = m.get_or_create_active("u", t0());
        let s0_id = s0.id().to_owned();
        m.end(&s0_id, at(1)).unwrap();

        let client = {
            let m = m.clone();
            let s0_id = s0_id.clone();
            thread::spawn(move || {
                if let Some(bound) = m.get(&s0_id) {
                    assert!(matches!(
                        bound.append(msg("late", 3700)),
                        Err(SessionError::Ended { .. })
                    ));
                }
                let (s, _) = m.get_or_create_active("u", at(3700));
                assert_ne!(s.id(), s0_id, "ended session handed out again");
                s.append(msg("late", 3700)).unwrap();
                s.id().to_owned()
            })
        };
        let sweeper = {
            let m = m.clone();
            thread::spawn(move || m.sweep(at(3601)))
        };
        let new_id = client.join().unwrap();
        let report = sweeper.join().unwrap();
        assert_eq!(report.removed, vec![s0_id.clone()]);
        assert!(m.get(&s0_id).is_none(), "removed session resurrected");
        assert_eq!(m.active_for_user("u").unwrap().id(), new_id);
        let stats = m.stats();
        assert_eq!((stats.active, stats.ended, stats.total), (1, 0, 1));
    });
}

/// Two admins take over at once: exactly one wins and the other is told who.
#[test]
fn loom_takeover_check_and_set_exactly_one_admin_wins() {
    loom::model(|| {
        let m = manager();
        let (s, _) = m.get_or_create_active("u", t0());
        let handles: Vec<_> = ["a1", "a2"]
            .into_iter()
            .map(|admin| {
                let s = s.clone();
                thread::spawn(move || (admin, s.try_takeover(admin, &admin.to_uppercase())))
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results
            .iter()
            .filter(|(_, r)| matches!(r, Ok(o) if o.newly_assisted))
            .map(|(a, _)| *a)
            .collect();
        assert_eq!(winners.len(), 1, "exactly one admin must win");
        let winner = winners[0];
        for (admin, result) in &results {
            if *admin != winner {
                assert_eq!(
                    result,
                    &Err(SessionError::AlreadyAssisted {
                        admin_id: winner.to_owned(),
                        admin_name: winner.to_uppercase(),
                    })
                );
            }
        }
        assert_eq!(s.assisting_admin().unwrap().id, winner);
    });
}

/// Takeover vs. gated AI sends: once `try_takeover` has returned, no AI send happens.
#[test]
fn loom_takeover_vs_gated_ai_send_no_send_after_takeover() {
    loom::model(|| {
        let m = manager();
        let (s, _) = m.get_or_create_active("u", t0());
        let taken = Arc::new(AtomicBool::new(false));
        let sends_after = Arc::new(AtomicUsize::new(0));

        let ai = {
            let (s, taken, sends_after) = (s.clone(), taken.clone(), sends_after.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    s.if_ai_may_speak(|| {
                        if taken.load(Ordering::SeqCst) {
                            sends_after.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
            })
        };
        let admin = {
            let (s, taken) = (s.clone(), taken.clone());
            thread::spawn(move || {
                assert!(s.try_takeover("admin", "Admin").unwrap().newly_assisted);
                taken.store(true, Ordering::SeqCst);
            })
        };
        ai.join().unwrap();
        admin.join().unwrap();
        assert_eq!(
            sends_after.load(Ordering::SeqCst),
            0,
            "AI frame after admin_join"
        );
        assert_eq!(s.if_ai_may_speak(|| ()), None);
    });
}

/// Snapshot vs. mutation: each snapshot shows every multi-field mutation entirely or
/// not at all.
#[test]
fn loom_snapshot_vs_mutation_is_never_torn() {
    loom::model(|| {
        let m = manager();
        let (s, _) = m.get_or_create_active("u", t0());
        let writer = {
            let s = s.clone();
            thread::spawn(move || {
                s.append(msg("Hello there", 10)).unwrap();
                s.record_response(250, 42).unwrap();
                s.try_takeover("adm", "Ann").unwrap();
            })
        };
        let reader = {
            let s = s.clone();
            thread::spawn(move || {
                let snap = s.snapshot();
                match snap.messages.len() {
                    0 => {
                        assert_eq!(snap.last_activity, t0());
                        assert_eq!(snap.name, chat_session::DEFAULT_NAME);
                        assert_eq!(snap.response_count, 0);
                    }
                    1 => {
                        assert_eq!(snap.last_activity, at(10));
                        assert_eq!(snap.name, "Hello there");
                    }
                    n => panic!("{n} messages"),
                }
                match snap.response_count {
                    0 => assert_eq!(
                        (
                            snap.max_response_time_ms,
                            snap.avg_response_time_ms,
                            snap.total_tokens
                        ),
                        (0, 0, 0)
                    ),
                    1 => {
                        assert_eq!(snap.messages.len(), 1);
                        assert_eq!(
                            (
                                snap.max_response_time_ms,
                                snap.avg_response_time_ms,
                                snap.total_tokens
                            ),
                            (250, 250, 42)
                        );
                    }
                    n => panic!("{n} responses"),
                }
                if snap.admin_assisted {
                    assert_eq!(snap.response_count, 1);
                    assert_eq!(snap.assisting_admin_id.as_deref(), Some("adm"));
                    assert_eq!(snap.assisting_admin_name.as_deref(), Some("Ann"));
                } else {
                    assert_eq!(snap.assisting_admin_id, None);
                    assert_eq!(snap.assisting_admin_name, None);
                }
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
        assert!(s.snapshot().admin_assisted);
    });
}
