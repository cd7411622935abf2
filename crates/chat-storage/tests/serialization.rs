//! PROTOCOL §4 serialization: every field maps to its legacy BSON name and value and
//! back (READINESS #10), and documents are built from consistent snapshots even while
//! the session is being mutated concurrently.

// Fixtures outside #[test] fns: a failure should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bson::{doc, Bson};
use chat_session::model::{Sender, SessionSnapshot, StoredMessage};
use chat_storage::document::{self, fields as f};
use chat_storage::Encryptor;
use common::*;

fn date(t: chrono::DateTime<chrono::Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_chrono(t))
}

#[test]
fn production_issue_10_serialization_accuracy() {
    let s = full_session();
    let d = document::to_document(&s, &Encryptor::disabled()).unwrap();
    let expected = doc! {
        "_id": "0123456789abcdef0123456789abcdef",
        "uid": "user-42",
        "nm": "Weekend trip to Lisbon...",
        "modelId": "claude",
        "msgs": [
            { "content": "Plan a weekend in Lisbon", "ts": date(t(1)), "sender": "user" },
            { "content": "Here is a plan: ☀️ day 1…", "ts": date(t(2) + chrono::Duration::milliseconds(345)), "sender": "ai",
              "meta": { "stopped": "true", "streaming": "false" } },
            { "content": "photo", "ts": date(t(3)), "sender": "user",
              "fileId": "file-1", "fileUrl": "https://files.example.com/file-1.png" },
            { "content": "An agent is here", "ts": date(t(4)), "sender": "admin" },
            { "content": "notice", "ts": date(t(5)), "sender": "system" },
        ],
        "ts": date(t(0)),
        "lastActivity": date(t(125)),
        "adminAssisted": true,
        "helpRequested": true,
        "totalTokens": 1234i64,
        "maxRespTime": 4321i64,
        "avgRespTime": 2100i64,
        "respCount": 3i64,
        "endTs": date(t(125)),
        "dur": 125i64,
        "assistingAdminId": "admin-7",
        "assistingAdminName": "Ada Admin",
        "shareToken": "feedfacefeedfacefeedfacefeedface",
    };
    // Same fields, same names, same values and BSON types (order-insensitive).
    let mut got_keys: Vec<_> = d.keys().cloned().collect();
    let mut want_keys: Vec<_> = expected.keys().cloned().collect();
    got_keys.sort();
    want_keys.sort();
    assert_eq!(got_keys, want_keys);
    for (key, value) in &expected {
        assert_eq!(d.get(key), Some(value), "field {key}");
    }
    // And back, to the identical snapshot.
    assert_eq!(
        document::from_document(&d, &Encryptor::disabled()).unwrap(),
        s
    );

    // Through real BSON bytes, with encryption on.
    let enc = encryptor(&[("k1", KEY_A)]);
    let bytes = bson::to_vec(&document::to_document(&s, &enc).unwrap()).unwrap();
    let parsed: bson::Document = bson::from_slice(&bytes).unwrap();
    assert_eq!(document::from_document(&parsed, &enc).unwrap(), s);

    // An active session carries the `active` marker and no end fields.
    let mut active = s.clone();
    active.end_time = None;
    let d = document::to_document(&active, &Encryptor::disabled()).unwrap();
    assert_eq!(d.get(f::ACTIVE), Some(&Bson::Boolean(true)));
    assert!(d.get(f::END).is_none() && d.get(f::DURATION).is_none());
    assert_eq!(
        document::from_document(&d, &Encryptor::disabled()).unwrap(),
        active
    );
}

#[test]
fn field_name_constants_are_the_protocol_names() {
    let pinned = [
        (f::ID, "_id"),
        (f::USER_ID, "uid"),
        (f::NAME, "nm"),
        (f::MODEL_ID, "modelId"),
        (f::MESSAGES, "msgs"),
        (f::START, "ts"),
        (f::END, "endTs"),
        (f::DURATION, "dur"),
        (f::LAST_ACTIVITY, "lastActivity"),
        (f::ADMIN_ASSISTED, "adminAssisted"),
        (f::ASSISTING_ADMIN_ID, "assistingAdminId"),
        (f::ASSISTING_ADMIN_NAME, "assistingAdminName"),
        (f::HELP_REQUESTED, "helpRequested"),
        (f::TOTAL_TOKENS, "totalTokens"),
        (f::MAX_RESP_TIME, "maxRespTime"),
        (f::AVG_RESP_TIME, "avgRespTime"),
        (f::RESP_COUNT, "respCount"),
        (f::SHARE_TOKEN, "shareToken"),
        (f::ACTIVE, "active"),
        (f::MSG_CONTENT, "content"),
        (f::MSG_TS, "ts"),
        (f::MSG_SENDER, "sender"),
        (f::MSG_FILE_ID, "fileId"),
        (f::MSG_FILE_URL, "fileUrl"),
        (f::MSG_META, "meta"),
    ];
    for (constant, name) in pinned {
        assert_eq!(constant, name);
    }
}

/// The invariant every mutation below keeps: n messages, n replies, 10 tokens each,
/// last activity = the last message's time.
fn assert_consistent(s: &SessionSnapshot) {
    let n = s.messages.len() as u64;
    assert_eq!(s.response_count, n, "torn snapshot: counts");
    assert_eq!(s.total_tokens, 10 * n, "torn snapshot: tokens");
    if let Some(last) = s.messages.last() {
        assert_eq!(s.last_activity, last.timestamp, "torn snapshot: activity");
        assert_eq!(s.max_response_time_ms, n, "torn snapshot: max");
    }
    for (i, m) in s.messages.iter().enumerate() {
        assert_eq!(
            m.content,
            format!("message {}", i + 1),
            "torn snapshot: order"
        );
    }
}

#[test]
fn production_issue_10_serialization_data_race() {
    const WRITER_CAP: usize = 3_000;
    const READS_PER_READER: usize = 200;
    let session = Arc::new(Mutex::new(session("race", "u", 0)));
    let readers_done = Arc::new(AtomicU64::new(0));
    let observed_lengths = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let enc = Encryptor::disabled();
    let start = Arc::new(std::sync::Barrier::new(4));
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let (session, readers_done, start) =
                (session.clone(), readers_done.clone(), start.clone());
            scope.spawn(move || {
                start.wait();
                while readers_done.load(Ordering::SeqCst) < 2 {
                    // One logical mutation = several field writes under one lock.
                    let mut s = session.lock().unwrap();
                    if s.messages.len() >= WRITER_CAP {
                        break;
                    }
                    let n = s.messages.len() as i64 + 1;
                    let m = StoredMessage::text(Sender::Ai, format!("message {n}"), t(n));
                    s.last_activity = m.timestamp;
                    s.messages.push(m);
                    s.response_count += 1;
                    s.total_tokens += 10;
                    s.max_response_time_ms = s.response_count;
                    drop(s);
                    // Pace the writers so the readers overlap many mutations.
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            });
        }
        for _ in 0..2 {
            let (session, readers_done, observed, enc, start) = (
                session.clone(),
                readers_done.clone(),
                observed_lengths.clone(),
                enc.clone(),
                start.clone(),
            );
            scope.spawn(move || {
                start.wait();
                // At least READS_PER_READER reads, and on until the writers made some
                // progress (a loaded machine may schedule the readers first), bounded.
                let began = std::time::Instant::now();
                let mut reads = 0;
                while reads < READS_PER_READER
                    || (session.lock().unwrap().messages.len() < 50
                        && began.elapsed() < std::time::Duration::from_secs(20))
                {
                    reads += 1;
                    // The snapshot is taken under the lock; the document is built
                    // outside it from the copy, so writers are never blocked by BSON work.
                    let snapshot = session.lock().unwrap().clone();
                    let d = document::to_document(&snapshot, &enc).unwrap();
                    let back = document::from_document(&d, &enc).unwrap();
                    assert_eq!(back, snapshot);
                    assert_consistent(&back);
                    assert_eq!(
                        d.get_array(f::MESSAGES).unwrap().len() as i64,
                        d.get_i64(f::RESP_COUNT).unwrap()
                    );
                    observed.lock().unwrap().insert(snapshot.messages.len());
                }
                readers_done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    assert_consistent(&session.lock().unwrap());
    let observed = observed_lengths.lock().unwrap();
    assert!(
        observed.len() > 1,
        "the readers serialized while writers mutated: {observed:?}"
    );
}
