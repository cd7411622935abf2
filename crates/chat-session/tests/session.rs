//! Behaviour of one `Session`: appends, naming, model, statistics, admin assistance,
//! the AI gate, ending and snapshots — including the concurrency tests of READINESS
//! #4 and #10 and the bounded statistics of #12.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use chat_session::{
    ResponseStats, Sender, Session, SessionError, SessionSnapshot, StoredMessage, TakeoverOutcome,
    DEFAULT_NAME,
};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

fn session() -> Session {
    Session::new("0123456789abcdef0123456789abcdef", "user-1", t0(), 1000)
}

fn user_msg(text: &str, secs: i64) -> StoredMessage {
    StoredMessage::text(Sender::User, text, at(secs))
}

#[test]
fn new_session_is_active_unnamed_and_empty() {
    let s = session();
    assert_eq!(s.id(), "0123456789abcdef0123456789abcdef");
    assert_eq!(s.user_id(), "user-1");
    assert!(s.is_active());
    assert_eq!(s.name(), DEFAULT_NAME);
    assert_eq!(s.message_count(), 0);
    assert_eq!(s.start_time(), t0());
    assert_eq!(s.last_activity(), t0());
    assert_eq!(s.end_time(), None);
    assert!(!s.is_admin_assisted());
    assert!(!s.help_requested());
}

#[test]
fn append_stores_message_and_moves_last_activity_forward_only() {
    let s = session();
    s.append(user_msg("hello", 10)).unwrap();
    assert_eq!(s.last_activity(), at(10));
    s.append(StoredMessage::text(Sender::Ai, "old clock", at(5)))
        .unwrap();
    assert_eq!(
        s.last_activity(),
        at(10),
        "an older timestamp never moves it back"
    );
    let msgs = s.recent_messages(10);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].content, "hello");
    assert_eq!(msgs[1].content, "old clock");
}

#[test]
fn ended_session_refuses_messages_and_model_changes() {
    let s = session();
    assert!(s.end(at(1)));
    let err = s.append(user_msg("late", 2)).unwrap_err();
    assert_eq!(
        err,
        SessionError::Ended {
            session_id: s.id().to_owned()
        }
    );
    assert_eq!(err.wire_code(), chat_protocol::ErrorCode::SessionEnded);
    assert_eq!(err.http_status(), 409);
    assert!(s.set_model("gpt").is_err());
    assert_eq!(s.message_count(), 0);
}

#[test]
fn ending_twice_keeps_first_end_time() {
    let s = session();
    assert!(s.end(at(5)));
    assert!(!s.end(at(50)));
    assert_eq!(s.end_time(), Some(at(5)));
    assert!(!s.is_active());
}

#[test]
fn only_newest_messages_stay_in_memory_but_all_are_counted() {
    let s = Session::new("id", "u", t0(), 3);
    for i in 0..10 {
        s.append(user_msg(&format!("m{i}"), i)).unwrap();
    }
    assert_eq!(s.message_count(), 10);
    let contents: Vec<_> = s
        .recent_messages(100)
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(contents, ["m7", "m8", "m9"]);
    assert_eq!(s.snapshot().messages.len(), 3);
    let last_two: Vec<_> = s
        .recent_messages(2)
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(last_two, ["m8", "m9"]);
}

#[test]
fn first_user_message_names_the_session() {
    let s = session();
    s.append(StoredMessage::text(
        Sender::System,
        "Welcome. Ask me",
        at(0),
    ))
    .unwrap();
    assert_eq!(s.name(), DEFAULT_NAME, "only a user message names it");
    s.append(user_msg("How do I bake bread? I have flour.", 1))
        .unwrap();
    assert_eq!(s.name(), "How do I bake bread?");
    s.append(user_msg("Another question", 2)).unwrap();
    assert_eq!(s.name(), "How do I bake bread?");
}

#[test]
fn set_name_if_unset_applies_the_naming_rule_once() {
    let s = session();
    assert!(s.set_name_if_unset(&"x".repeat(80)));
    assert_eq!(s.name().chars().count(), 50);
    assert!(!s.set_name_if_unset("other"));
    assert!(s.name().ends_with("..."));
}

#[test]
fn set_model_is_visible_in_snapshot() {
    let s = session();
    assert_eq!(s.model_id(), "");
    s.set_model("claude").unwrap();
    assert_eq!(s.model_id(), "claude");
    assert_eq!(s.snapshot().model_id, "claude");
}

#[test]
fn record_response_keeps_exact_stats_and_refuses_negatives() {
    let s = session();
    s.record_response(100, 7).unwrap();
    s.record_response(50, 3).unwrap();
    assert!(matches!(
        s.record_response(-5, 1),
        Err(SessionError::InvalidStatistic {
            field: "duration_ms",
            value: -5
        })
    ));
    assert!(matches!(
        s.record_response(5, -1),
        Err(SessionError::InvalidStatistic {
            field: "tokens",
            value: -1
        })
    ));
    let snap = s.snapshot();
    assert_eq!(snap.response_count, 2);
    assert_eq!(snap.max_response_time_ms, 100);
    assert_eq!(snap.avg_response_time_ms, 75);
    assert_eq!(snap.total_tokens, 10);
}

#[test]
fn production_issue_12_response_times_growth() {
    let s = session();
    let stats_size = std::mem::size_of::<ResponseStats>();
    for i in 1..=10_000_i64 {
        s.record_response(i, 2).unwrap();
    }
    let stats = s.stats();
    // Constant memory: the aggregate is a fixed-size `Copy` value with no heap part,
    // so 10 000 records occupy exactly what 0 records did.
    assert_eq!(std::mem::size_of_val(&stats), stats_size);
    assert!(stats_size <= 48, "ResponseStats grew to {stats_size} bytes");
    fn assert_copy<T: Copy>(_: &T) {}
    assert_copy(&stats);
    assert_eq!(stats.count(), 10_000);
    assert_eq!(stats.max_ms(), 10_000);
    assert_eq!(stats.mean_ms(), 5000.5);
    assert_eq!(stats.avg_ms(), 5001);
    assert_eq!(stats.total_tokens(), 20_000);
    let snap = s.snapshot();
    assert_eq!(
        (
            snap.response_count,
            snap.max_response_time_ms,
            snap.avg_response_time_ms
        ),
        (10_000, 10_000, 5001)
    );
}

#[test]
fn takeover_first_admin_wins_same_admin_is_idempotent() {
    let s = session();
    assert_eq!(
        s.try_takeover("admin-1", "Alice").unwrap(),
        TakeoverOutcome {
            newly_assisted: true
        }
    );
    assert_eq!(
        s.try_takeover("admin-1", "Alice").unwrap(),
        TakeoverOutcome {
            newly_assisted: false
        }
    );
    let err = s.try_takeover("admin-2", "Bob").unwrap_err();
    assert_eq!(
        err,
        SessionError::AlreadyAssisted {
            admin_id: "admin-1".into(),
            admin_name: "Alice".into()
        }
    );
    assert_eq!(err.http_status(), 409);
    let snap = s.snapshot();
    assert!(snap.admin_assisted);
    assert_eq!(snap.assisting_admin_id.as_deref(), Some("admin-1"));
    assert_eq!(snap.assisting_admin_name.as_deref(), Some("Alice"));
}

#[test]
fn release_by_assisting_admin_reopens_ai_other_admin_refused() {
    let s = session();
    assert_eq!(s.release("admin-1"), Ok(false), "nothing to release");
    s.try_takeover("admin-1", "Alice").unwrap();
    assert_eq!(
        s.release("admin-2"),
        Err(SessionError::NotAssistingAdmin {
            admin_id: "admin-2".into()
        })
    );
    assert!(s.is_admin_assisted());
    assert_eq!(s.release("admin-1"), Ok(true));
    assert!(!s.is_admin_assisted());
    assert_eq!(s.assisting_admin(), None);
    assert_eq!(s.if_ai_may_speak(|| 1), Some(1));
    assert_eq!(
        s.try_takeover("admin-2", "Bob").unwrap(),
        TakeoverOutcome {
            newly_assisted: true
        }
    );
}

#[test]
fn takeover_of_ended_session_is_refused() {
    let s = session();
    s.end(at(1));
    assert!(matches!(
        s.try_takeover("a", "A"),
        Err(SessionError::Ended { .. })
    ));
}

#[test]
fn ai_gate_is_closed_while_assisted_or_ended() {
    let s = session();
    assert_eq!(s.if_ai_may_speak(|| "sent"), Some("sent"));
    s.try_takeover("admin-1", "Alice").unwrap();
    let mut ran = false;
    assert_eq!(s.if_ai_may_speak(|| ran = true), None);
    assert!(!ran, "the closure must not run while assisted");
    s.release("admin-1").unwrap();
    s.end(at(2));
    assert_eq!(s.if_ai_may_speak(|| ()), None);
}

#[test]
fn no_ai_send_after_takeover_returns_under_contention() {
    // Senders push through the gate as fast as they can; the moment takeover returns
    // we raise a flag. A send that observes the flag already raised would be an AI
    // frame after admin_join.
    for _ in 0..50 {
        let s = Arc::new(session());
        let taken = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(3));
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let (s, taken, violations, start) =
                    (s.clone(), taken.clone(), violations.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    for _ in 0..2_000 {
                        s.if_ai_may_speak(|| {
                            if taken.load(Ordering::SeqCst) {
                                violations.fetch_add(1, Ordering::SeqCst);
                            }
                        });
                    }
                })
            })
            .collect();
        start.wait();
        s.try_takeover("admin", "Admin").unwrap();
        taken.store(true, Ordering::SeqCst);
        for h in senders {
            h.join().unwrap();
        }
        assert_eq!(violations.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn help_flag_round_trips() {
    let s = session();
    s.set_help_requested(true);
    assert!(s.help_requested());
    assert!(s.snapshot().help_requested);
    s.set_help_requested(false);
    assert!(!s.help_requested());
}

#[test]
fn share_token_is_stable_until_revoked() {
    let s = session();
    let first = s.share_token_or_insert_with(|| "tok-1".into());
    let again = s.share_token_or_insert_with(|| "tok-2".into());
    assert_eq!(first, "tok-1");
    assert_eq!(again, "tok-1");
    assert_eq!(s.share_token().as_deref(), Some("tok-1"));
    assert_eq!(s.revoke_share_token().as_deref(), Some("tok-1"));
    assert_eq!(s.share_token(), None);
    assert_eq!(s.share_token_or_insert_with(|| "tok-3".into()), "tok-3");
}

#[test]
fn snapshot_carries_every_field() {
    let s = session();
    s.append(user_msg("Hi there", 3)).unwrap();
    s.set_model("m1").unwrap();
    s.record_response(40, 4).unwrap();
    s.set_help_requested(true);
    s.share_token_or_insert_with(|| "share".into());
    s.end(at(9));
    let snap = s.snapshot();
    assert_eq!(
        snap,
        SessionSnapshot {
            id: s.id().to_owned(),
            user_id: "user-1".into(),
            name: "Hi there".into(),
            model_id: "m1".into(),
            messages: vec![user_msg("Hi there", 3)],
            start_time: t0(),
            end_time: Some(at(9)),
            last_activity: at(9),
            admin_assisted: false,
            assisting_admin_id: None,
            assisting_admin_name: None,
            help_requested: true,
            total_tokens: 4,
            max_response_time_ms: 40,
            avg_response_time_ms: 40,
            response_count: 1,
            share_token: Some("share".into()),
        }
    );
    assert_eq!(snap.duration_secs(at(100)), 9);
}

#[test]
fn from_snapshot_round_trips_and_continues() {
    let s = session();
    s.append(user_msg("Name me", 1)).unwrap();
    s.try_takeover("adm", "Ann").unwrap();
    s.record_response(10, 1).unwrap();
    s.record_response(30, 1).unwrap();
    let snap = s.snapshot();
    let back = Session::from_snapshot(snap.clone(), 1000).unwrap();
    assert_eq!(back.snapshot(), snap);
    assert_eq!(back.message_count(), 1);
    back.record_response(50, 1).unwrap();
    assert_eq!(back.stats().avg_ms(), 30);
    assert_eq!(
        back.try_takeover("other", "O").unwrap_err(),
        SessionError::AlreadyAssisted {
            admin_id: "adm".into(),
            admin_name: "Ann".into()
        }
    );
}

#[test]
fn from_snapshot_keeps_newest_messages_and_treats_default_name_as_unset() {
    let mut snap = session().snapshot();
    snap.messages = (0..5)
        .map(|i| StoredMessage::text(Sender::Ai, format!("m{i}"), at(i)))
        .collect();
    snap.name = DEFAULT_NAME.into();
    let s = Session::from_snapshot(snap, 2).unwrap();
    assert_eq!(s.message_count(), 5);
    let kept: Vec<_> = s
        .recent_messages(10)
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(kept, ["m3", "m4"]);
    s.append(user_msg("Real name", 10)).unwrap();
    assert_eq!(s.name(), "Real name");
}

#[test]
fn from_snapshot_refuses_empty_ids_and_ignores_anonymous_assistance() {
    let mut snap = session().snapshot();
    snap.id.clear();
    assert!(matches!(
        Session::from_snapshot(snap, 10),
        Err(SessionError::InvalidSnapshot { .. })
    ));
    let mut snap = session().snapshot();
    snap.user_id.clear();
    assert!(Session::from_snapshot(snap, 10).is_err());
    let mut snap = session().snapshot();
    snap.admin_assisted = true;
    snap.assisting_admin_id = None;
    let s = Session::from_snapshot(snap, 10).unwrap();
    assert!(!s.is_admin_assisted());
}

#[test]
fn production_issue_04_concurrent_session_access() {
    const WRITERS: usize = 3;
    const PER_WRITER: usize = 500;
    let s = Arc::new(Session::new("id", "user", t0(), 10_000));
    let start = Arc::new(Barrier::new(WRITERS + 3));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let (s, start) = (s.clone(), start.clone());
        handles.push(thread::spawn(move || {
            start.wait();
            for i in 0..PER_WRITER {
                s.append(StoredMessage::text(
                    Sender::User,
                    format!("w{w}-{i}"),
                    at(i as i64),
                ))
                .unwrap();
                s.record_response(i as i64, 1).unwrap();
                if i % 50 == 0 {
                    s.set_model(format!("model-{w}")).unwrap();
                    s.set_help_requested(i % 100 == 0);
                }
            }
        }));
    }
    // A reader checking invariants of the live session.
    {
        let (s, start) = (s.clone(), start.clone());
        handles.push(thread::spawn(move || {
            start.wait();
            let mut last_count = 0;
            for _ in 0..2_000 {
                let count = s.message_count();
                assert!(count >= last_count, "message count went backwards");
                last_count = count;
                assert!(s.is_active());
                assert!(s.model_id().is_empty() || s.model_id().starts_with("model-"));
            }
        }));
    }
    // A snapshotter checking each snapshot is internally consistent.
    {
        let (s, start) = (s.clone(), start.clone());
        handles.push(thread::spawn(move || {
            start.wait();
            for _ in 0..300 {
                let snap = s.snapshot();
                // Per writer, its messages appear in order with no gap.
                for w in 0..WRITERS {
                    let prefix = format!("w{w}-");
                    let seq: Vec<usize> = snap
                        .messages
                        .iter()
                        .filter_map(|m| m.content.strip_prefix(&prefix))
                        .map(|n| n.parse().unwrap())
                        .collect();
                    assert!(
                        seq.iter().enumerate().all(|(i, &n)| i == n),
                        "gap in writer {w}"
                    );
                }
                let newest = snap.messages.iter().map(|m| m.timestamp).max();
                assert!(newest.is_none_or(|ts| snap.last_activity >= ts));
                assert!(snap.response_count <= snap.messages.len() as u64);
                assert!(snap.total_tokens == snap.response_count);
            }
        }));
    }
    start.wait();
    for h in handles {
        h.join().unwrap();
    }
    let total = (WRITERS * PER_WRITER) as u64;
    assert_eq!(s.message_count(), total);
    assert_eq!(s.snapshot().messages.len() as u64, total);
    assert_eq!(s.stats().count(), total);
    assert_eq!(s.stats().max_ms(), PER_WRITER as u64 - 1);
}

#[test]
fn snapshot_is_never_torn_under_concurrent_mutation() {
    // Each mutation below changes several fields at once; a torn snapshot would show
    // one half without the other. (Room for every message, so `n` counts them all.)
    let s = Arc::new(Session::new("id", "user-1", t0(), 10_000));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        thread::spawn(move || {
            for i in 1..=3_000_i64 {
                // append: message + last_activity + count together
                s.append(user_msg(&format!("msg {i}"), i)).unwrap();
                // record: count + max + mean + tokens together
                s.record_response(i, i).unwrap();
                // takeover/release: flag + admin id + admin name together
                if i % 2 == 0 {
                    s.try_takeover(&format!("a{i}"), &format!("Admin {i}"))
                        .unwrap();
                } else {
                    let _ = s.assisting_admin().map(|a| s.release(&a.id).unwrap());
                }
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let mut checked = 0;
    while !stop.load(Ordering::SeqCst) || checked == 0 {
        let snap = s.snapshot();
        let n = snap.messages.len() as i64;
        if let Some(last) = snap.messages.last() {
            assert_eq!(last.content, format!("msg {n}"));
            assert_eq!(snap.last_activity, at(n));
        }
        // Responses are recorded after the append of the same i: n or n - 1 of them.
        let r = snap.response_count as i64;
        assert!(r == n || r == n - 1, "responses {r} vs messages {n}");
        assert_eq!(snap.max_response_time_ms as i64, r);
        assert_eq!(snap.total_tokens as i64, r * (r + 1) / 2);
        match (&snap.assisting_admin_id, &snap.assisting_admin_name) {
            (Some(id), Some(name)) => {
                assert!(snap.admin_assisted);
                assert_eq!(name, &format!("Admin {}", &id[1..]));
            }
            (None, None) => assert!(!snap.admin_assisted),
            torn => panic!("torn assistance state: {torn:?}"),
        }
        checked += 1;
    }
    writer.join().unwrap();
    assert!(checked > 0);
}

#[test]
fn error_codes_follow_the_protocol() {
    use chat_protocol::{ApiErrorCode, ErrorCode};
    let assisted = SessionError::AlreadyAssisted {
        admin_id: "a".into(),
        admin_name: "A".into(),
    };
    assert_eq!(assisted.api_code(), ApiErrorCode::Conflict);
    assert_eq!(assisted.wire_code(), ErrorCode::Forbidden);
    assert_eq!(assisted.to_string(), "session is already assisted by A (a)");
    let corrupt = SessionError::InvalidSnapshot {
        reason: "empty user id",
    };
    assert_eq!(corrupt.wire_code(), ErrorCode::DatabaseError);
    assert_eq!(corrupt.http_status(), 500);
    assert_eq!(corrupt.log_level(), tracing::Level::ERROR);
    let stat = SessionError::InvalidStatistic {
        field: "tokens",
        value: -1,
    };
    assert_eq!(stat.api_code(), ApiErrorCode::InternalError);
}

fn contents(s: &Session) -> Vec<String> {
    s.recent_messages(usize::MAX)
        .into_iter()
        .map(|m| m.content)
        .collect()
}

#[test]
fn released_history_is_restored_from_the_stored_conversation() {
    let s = Session::new("id", "u", t0(), 5);
    let stored: Vec<StoredMessage> = (0..8).map(|i| user_msg(&format!("m{i}"), i)).collect();
    for m in &stored {
        s.append(m.clone()).unwrap();
    }
    assert!(!s.history_missing(5));
    assert_eq!(s.release_history(), 5);
    assert_eq!(s.release_history(), 0, "idempotent");
    assert!(contents(&s).is_empty());
    assert_eq!(s.message_count(), 8, "the count survives the release");
    assert_eq!(s.name(), "m0", "so does everything else");
    assert!(s.history_missing(1));
    assert!(
        s.history_missing(50),
        "asking for more than memory holds is capped"
    );

    // Only the newest `max_messages_in_memory` come back.
    assert_eq!(s.restore_history(stored.clone()), 5);
    assert_eq!(contents(&s), ["m3", "m4", "m5", "m6", "m7"]);
    assert!(!s.history_missing(50));
    assert_eq!(s.restore_history(stored), 0, "restoring twice adds nothing");
    assert_eq!(contents(&s), ["m3", "m4", "m5", "m6", "m7"]);
}

#[test]
fn restore_keeps_messages_appended_after_the_release_in_place() {
    let s = Session::new("id", "u", t0(), 10);
    for i in 0..4 {
        s.append(user_msg(&format!("m{i}"), i)).unwrap();
    }
    s.release_history();
    // A new message arrives before the reload; the store has it too (position 4).
    s.append(user_msg("m4", 4)).unwrap();
    assert!(s.history_missing(2));
    let stored: Vec<StoredMessage> = (0..5).map(|i| user_msg(&format!("m{i}"), i)).collect();
    assert_eq!(s.restore_history(stored), 4);
    assert_eq!(contents(&s), ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(s.snapshot().messages.len() as u64, s.message_count());
}

#[test]
fn restore_from_a_store_that_is_behind_takes_what_it_has() {
    let s = Session::new("id", "u", t0(), 10);
    for i in 0..6 {
        s.append(user_msg(&format!("m{i}"), i)).unwrap();
    }
    s.release_history();
    // The store only has the first three (writes still queued): memory then holds them,
    // and is not complete, so readers keep going to the store.
    let stored: Vec<StoredMessage> = (0..3).map(|i| user_msg(&format!("m{i}"), i)).collect();
    assert_eq!(s.restore_history(stored), 3);
    assert!((s.snapshot().messages.len() as u64) < s.message_count());
}

#[test]
fn a_never_released_session_has_no_missing_history() {
    let s = session();
    assert!(!s.history_missing(10), "empty conversation");
    s.append(user_msg("hi", 1)).unwrap();
    assert!(!s.history_missing(10));
    assert_eq!(s.restore_history(vec![user_msg("hi", 1)]), 0);
    assert_eq!(contents(&s), ["hi"]);
}

#[test]
fn a_message_that_could_not_be_stored_is_taken_back_with_the_name_it_gave() {
    let s = session();
    assert!(!s.is_named());
    let first = user_msg("what is the weather like on Mars today?", 1);
    s.append(first.clone()).unwrap();
    assert!(s.is_named());
    assert!(s.retract_last(&first, true));
    assert!(!s.is_named(), "the name came from the retracted message");
    assert_eq!(s.message_count(), 0);
    assert!(s.recent_messages(10).is_empty());

    // Sent again and stored: exactly once in the history.
    s.append(first.clone()).unwrap();
    let second = user_msg("and on Venus?", 2);
    s.append(second.clone()).unwrap();
    assert!(
        !s.retract_last(&first, false),
        "not the newest any more: left alone"
    );
    assert!(s.retract_last(&second, false));
    assert!(s.is_named(), "a name given by an earlier message stays");
    let contents: Vec<_> = s
        .recent_messages(10)
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(contents, vec![first.content]);
    assert_eq!(s.message_count(), 1);
}
