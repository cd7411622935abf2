//! The one conformance suite of the `SessionStore` contract, run against the backend
//! selected by `CHATBOX_TEST_STORE=embedded|mongodb` (default embedded; `cargo xtask
//! test` runs it once per backend). For mongodb each test starts its own SecantusDB.

// Fixtures outside #[test] fns: a failure should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use chat_session::model::Sender;
use chat_storage::{
    AdminQuery, Encryptor, SortKey, SortOrder, StatusFilter, StoreError, UsageStats,
};
use common::*;

async fn plain() -> Harness {
    Harness::new(Encryptor::disabled()).await
}

#[tokio::test]
async fn every_field_round_trips_through_the_store() {
    for enc in [Encryptor::disabled(), encryptor(&[("k1", KEY_A)])] {
        let h = Harness::new(enc).await;
        let s = full_session();
        h.store.create_session(&s).await.unwrap();
        assert_eq!(h.store.get_session(&s.id).await.unwrap(), Some(s));
    }
}

#[tokio::test]
async fn unknown_sessions_read_as_none() {
    let h = plain().await;
    assert_eq!(h.store.get_session("nope").await.unwrap(), None);
    assert_eq!(h.store.get_by_share_token("nope").await.unwrap(), None);
    assert_eq!(h.store.get_by_share_token("").await.unwrap(), None);
}

#[tokio::test]
async fn a_second_active_session_for_a_user_is_refused() {
    let h = plain().await;
    h.store
        .create_session(&session("a1", "alice", 0))
        .await
        .unwrap();
    let err = h
        .store
        .create_session(&session("a2", "alice", 1))
        .await
        .unwrap_err();
    match err {
        StoreError::ActiveSessionExists { existing_id } => assert_eq!(existing_id, "a1"),
        other => panic!("unexpected {other:?}"),
    }
    // Other users are independent; ended sessions do not count.
    h.store
        .create_session(&session("b1", "bob", 0))
        .await
        .unwrap();
    h.store.end_session("a1", t(10)).await.unwrap();
    h.store
        .create_session(&session("a2", "alice", 11))
        .await
        .unwrap();
    let mut ended = session("a0", "alice", -100);
    ended.end_time = Some(t(-50));
    h.store.create_session(&ended).await.unwrap();
    assert!(matches!(
        h.store.create_session(&session("a3", "alice", 12)).await,
        Err(StoreError::ActiveSessionExists { .. })
    ));
}

#[tokio::test]
async fn duplicate_session_ids_are_refused() {
    let h = plain().await;
    h.store
        .create_session(&session("same", "alice", 0))
        .await
        .unwrap();
    h.store.end_session("same", t(1)).await.unwrap();
    let err = h
        .store
        .create_session(&session("same", "bob", 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateId(_)), "{err:?}");
}

#[tokio::test]
async fn concurrent_creates_for_one_user_admit_exactly_one() {
    let h = plain().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = h.store.clone();
        tasks.spawn(async move {
            store
                .create_session(&session(&format!("c{i}"), "carol", i))
                .await
        });
    }
    let mut ok = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::ActiveSessionExists { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(h.store.load_active().await.unwrap().len(), 1);
}

#[tokio::test]
async fn appended_messages_keep_their_order_and_bump_last_activity() {
    let h = plain().await;
    h.store.create_session(&session("s", "u", 0)).await.unwrap();
    for i in 1..=20 {
        let sender = if i % 2 == 0 { Sender::Ai } else { Sender::User };
        h.store
            .append_message("s", &msg(sender, &format!("m{i}"), i))
            .await
            .unwrap();
    }
    let s = h.store.get_session("s").await.unwrap().unwrap();
    let contents: Vec<_> = s.messages.iter().map(|m| m.content.as_str()).collect();
    let expected: Vec<_> = (1..=20).map(|i| format!("m{i}")).collect();
    assert_eq!(contents, expected);
    assert_eq!(s.last_activity, t(20));
}

#[tokio::test]
async fn updates_set_name_model_stats_assistance_and_help() {
    let h = plain().await;
    h.store.create_session(&session("s", "u", 0)).await.unwrap();
    h.store.update_name("s", "Renamed").await.unwrap();
    h.store.update_model("s", "other-model").await.unwrap();
    h.store.update_stats("s", 99, 800, 450, 4).await.unwrap();
    h.store
        .update_assistance("s", Some("adm"), Some("Admin Name"))
        .await
        .unwrap();
    h.store.set_help_requested("s", true).await.unwrap();
    let s = h.store.get_session("s").await.unwrap().unwrap();
    assert_eq!(s.name, "Renamed");
    assert_eq!(s.model_id, "other-model");
    assert_eq!(
        (
            s.total_tokens,
            s.max_response_time_ms,
            s.avg_response_time_ms,
            s.response_count
        ),
        (99, 800, 450, 4)
    );
    assert!(s.admin_assisted);
    assert_eq!(s.assisting_admin_id.as_deref(), Some("adm"));
    assert_eq!(s.assisting_admin_name.as_deref(), Some("Admin Name"));
    assert!(s.help_requested);

    h.store.update_assistance("s", None, None).await.unwrap();
    h.store.set_help_requested("s", false).await.unwrap();
    let s = h.store.get_session("s").await.unwrap().unwrap();
    assert!(!s.admin_assisted);
    assert_eq!(s.assisting_admin_id, None);
    assert_eq!(s.assisting_admin_name, None);
    assert!(!s.help_requested);
}

#[tokio::test]
async fn a_reply_is_appended_with_the_statistics_it_completed() {
    let h = plain().await;
    h.store.create_session(&session("s", "u", 0)).await.unwrap();
    h.store
        .append_message("s", &msg(Sender::User, "question", 1))
        .await
        .unwrap();
    let stats = UsageStats {
        total_tokens: 42,
        max_response_time_ms: 900,
        avg_response_time_ms: 600,
        response_count: 3,
    };
    h.store
        .append_reply("s", &msg(Sender::Ai, "answer", 2), Some(stats))
        .await
        .unwrap();
    // An interrupted reply is kept without statistics: the last ones stay.
    h.store
        .append_reply("s", &msg(Sender::Ai, "partial", 3), None)
        .await
        .unwrap();
    let s = h.store.get_session("s").await.unwrap().unwrap();
    let sent: Vec<_> = s
        .messages
        .iter()
        .map(|m| (m.sender, m.content.as_str()))
        .collect();
    assert_eq!(
        sent,
        [
            (Sender::User, "question"),
            (Sender::Ai, "answer"),
            (Sender::Ai, "partial")
        ]
    );
    assert_eq!(s.last_activity, t(3));
    assert_eq!(
        (
            s.total_tokens,
            s.max_response_time_ms,
            s.avg_response_time_ms,
            s.response_count
        ),
        (42, 900, 600, 3)
    );

    // Refused as a whole for an unknown session.
    assert!(matches!(
        h.store
            .append_reply("x", &msg(Sender::Ai, "a", 4), Some(stats))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(h.store.get_session("x").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_fail_or_succeed_each_on_their_own() {
    // Writes arriving together may share one commit (the embedded store groups them);
    // one that fails must not take the others down with it, nor leave a trace.
    let h = plain().await;
    h.store
        .create_session(&session("busy", "dave", 0))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = h.store.clone();
        tasks.spawn(async move {
            let target = if i % 10 == 3 { "missing" } else { "busy" };
            let result = store.update_name(target, &format!("name {i}")).await;
            (target, result)
        });
    }
    let (mut ok, mut not_found) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            ("busy", Ok(())) => ok += 1,
            ("missing", Err(StoreError::NotFound(_))) => not_found += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((ok, not_found), (36, 4));
    assert!(h.store.get_session("missing").await.unwrap().is_none());
    let name = h.store.get_session("busy").await.unwrap().unwrap().name;
    assert!(name.starts_with("name "), "{name}");
}

#[tokio::test]
async fn writes_to_an_unknown_session_are_not_found() {
    let h = plain().await;
    let s = &h.store;
    assert!(matches!(
        s.append_message("x", &msg(Sender::User, "m", 1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.update_name("x", "n").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.update_model("x", "m").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.update_stats("x", 1, 1, 1, 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.update_assistance("x", None, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.set_help_requested("x", true).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.end_session("x", t(1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.set_share_token("x", "tok").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.revoke_share_token("x").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn ending_twice_keeps_the_first_end_time() {
    let h = plain().await;
    h.store.create_session(&session("s", "u", 0)).await.unwrap();
    assert_eq!(h.store.end_session("s", t(90)).await.unwrap(), t(90));
    assert_eq!(h.store.end_session("s", t(500)).await.unwrap(), t(90));
    let s = h.store.get_session("s").await.unwrap().unwrap();
    assert_eq!(s.end_time, Some(t(90)));
    assert!(!s.is_active());
    assert_eq!(s.duration_secs(t(1000)), 90);
    assert!(h.store.load_active().await.unwrap().is_empty());
}

#[tokio::test]
async fn share_tokens_are_stable_and_revocable() {
    let h = plain().await;
    h.store.create_session(&session("s", "u", 0)).await.unwrap();
    h.store
        .append_message("s", &msg(Sender::User, "hi", 1))
        .await
        .unwrap();
    assert_eq!(h.store.set_share_token("s", "tok1").await.unwrap(), "tok1");
    assert_eq!(h.store.set_share_token("s", "tok2").await.unwrap(), "tok1");
    let shared = h.store.get_by_share_token("tok1").await.unwrap().unwrap();
    assert_eq!(shared.id, "s");
    assert_eq!(shared.messages.len(), 1);
    assert_eq!(h.store.get_by_share_token("tok2").await.unwrap(), None);

    h.store.revoke_share_token("s").await.unwrap();
    h.store.revoke_share_token("s").await.unwrap();
    assert_eq!(h.store.get_by_share_token("tok1").await.unwrap(), None);
    assert_eq!(
        h.store.get_session("s").await.unwrap().unwrap().share_token,
        None
    );
    assert_eq!(h.store.set_share_token("s", "tok3").await.unwrap(), "tok3");
    assert_eq!(
        h.store
            .get_by_share_token("tok3")
            .await
            .unwrap()
            .unwrap()
            .id,
        "s"
    );
}

#[tokio::test]
async fn a_user_lists_own_sessions_newest_first_with_truncation() {
    let h = plain().await;
    for i in 0..5 {
        let id = format!("u{i}");
        h.store
            .create_session(&session(&id, "dave", i * 10))
            .await
            .unwrap();
        h.store
            .append_message(&id, &msg(Sender::User, "x", i * 10 + 1))
            .await
            .unwrap();
        if i < 4 {
            h.store.end_session(&id, t(i * 10 + 5)).await.unwrap();
        }
    }
    h.store
        .create_session(&session("other", "erin", 100))
        .await
        .unwrap();
    let (items, truncated) = h.store.list_user_sessions("dave", 3).await.unwrap();
    let ids: Vec<_> = items.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["u4", "u3", "u2"]);
    assert!(truncated);
    assert_eq!(items[0].message_count, 1);
    assert!(items[0].is_active());
    assert_eq!(items[0].name, "chat u4");
    let (items, truncated) = h.store.list_user_sessions("dave", 5).await.unwrap();
    assert_eq!(items.len(), 5);
    assert!(!truncated);
    let (items, truncated) = h.store.list_user_sessions("nobody", 5).await.unwrap();
    assert!(items.is_empty() && !truncated);
}

/// id, user, start, message count, tokens, end offset (None = active), assisted.
type AdminRow = (
    &'static str,
    &'static str,
    i64,
    usize,
    u64,
    Option<i64>,
    bool,
);

/// Five sessions with distinct values for every sort key.
async fn seed_admin_data(h: &Harness) {
    let s = &h.store;
    // id, user, start, messages, tokens, end (None = active), assisted
    let rows: [AdminRow; 5] = [
        ("s1", "carol", 0, 3, 50, Some(100), false),
        ("s2", "alice", 10, 1, 500, Some(30), true),
        ("s3", "bob", 20, 5, 5, None, false),
        ("s4", "dave", 30, 0, 200, Some(1000), false),
        ("s5", "erin", 40, 2, 0, None, true),
    ];
    for (id, user, start, count, tokens, end, assisted) in rows {
        s.create_session(&session(id, user, start)).await.unwrap();
        for i in 0..count {
            s.append_message(id, &msg(Sender::User, "m", start + 1 + i as i64))
                .await
                .unwrap();
        }
        s.update_stats(id, tokens, 10, 10, 1).await.unwrap();
        if assisted {
            s.update_assistance(id, Some("adm"), Some("Adm"))
                .await
                .unwrap();
        }
        if let Some(end) = end {
            s.end_session(id, t(start + end)).await.unwrap();
        }
    }
}

fn ids(page: &chat_storage::Page) -> Vec<&str> {
    page.items.iter().map(|s| s.id.as_str()).collect()
}

#[tokio::test]
async fn admin_list_filters_and_counts() {
    let h = plain().await;
    seed_admin_data(&h).await;
    let q = |f: &dyn Fn(&mut AdminQuery)| {
        let mut q = AdminQuery {
            sort_by: SortKey::StartTime,
            sort_order: SortOrder::Asc,
            ..AdminQuery::default()
        };
        f(&mut q);
        q
    };
    let page = h.store.admin_list(&q(&|_| {})).await.unwrap();
    assert_eq!(
        (ids(&page), page.total),
        (vec!["s1", "s2", "s3", "s4", "s5"], 5)
    );
    let page = h
        .store
        .admin_list(&q(&|q| q.user_id = Some("bob".into())))
        .await
        .unwrap();
    assert_eq!((ids(&page), page.total), (vec!["s3"], 1));
    let page = h
        .store
        .admin_list(&q(&|q| q.status = Some(StatusFilter::Active)))
        .await
        .unwrap();
    assert_eq!((ids(&page), page.total), (vec!["s3", "s5"], 2));
    let page = h
        .store
        .admin_list(&q(&|q| q.status = Some(StatusFilter::Ended)))
        .await
        .unwrap();
    assert_eq!((ids(&page), page.total), (vec!["s1", "s2", "s4"], 3));
    let page = h
        .store
        .admin_list(&q(&|q| q.admin_assisted = Some(true)))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["s2", "s5"]);
    let page = h
        .store
        .admin_list(&q(&|q| q.admin_assisted = Some(false)))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["s1", "s3", "s4"]);
    let page = h
        .store
        .admin_list(&q(&|q| {
            q.start_time_from = Some(t(10));
            q.start_time_to = Some(t(30));
        }))
        .await
        .unwrap();
    assert_eq!((ids(&page), page.total), (vec!["s2", "s3", "s4"], 3));
    let page = h
        .store
        .admin_list(&q(&|q| {
            q.status = Some(StatusFilter::Ended);
            q.admin_assisted = Some(false);
            q.start_time_from = Some(t(5));
        }))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["s4"]);
    // Summaries carry the counts and no message bodies.
    let s3 = &h
        .store
        .admin_list(&q(&|q| q.user_id = Some("bob".into())))
        .await
        .unwrap()
        .items[0];
    assert_eq!(s3.message_count, 5);
    assert_eq!(s3.total_tokens, 5);
}

#[tokio::test]
async fn admin_list_sorts_by_every_key_and_pages() {
    let h = plain().await;
    seed_admin_data(&h).await;
    let sorted = |key, order| AdminQuery {
        sort_by: key,
        sort_order: order,
        ..AdminQuery::default()
    };
    let cases: [(SortKey, [&str; 5]); 7] = [
        (SortKey::StartTime, ["s1", "s2", "s3", "s4", "s5"]),
        // Active sessions have no end time and sort lowest.
        (SortKey::EndTime, ["s3", "s5", "s2", "s1", "s4"]),
        (SortKey::MessageCount, ["s4", "s2", "s5", "s1", "s3"]),
        (SortKey::TotalTokens, ["s5", "s3", "s1", "s4", "s2"]),
        (SortKey::UserId, ["s2", "s3", "s1", "s4", "s5"]),
        // last activity: s1 end 100, s2 end 40, s3 msg 25, s4 end 1030, s5 msg 42
        (SortKey::LastActivity, ["s3", "s2", "s5", "s1", "s4"]),
        // duration: active = 0 (ties by id), then 30, 100, 1000
        (SortKey::Duration, ["s3", "s5", "s2", "s1", "s4"]),
    ];
    for (key, asc) in cases {
        let page = h
            .store
            .admin_list(&sorted(key, SortOrder::Asc))
            .await
            .unwrap();
        assert_eq!(ids(&page), asc, "{key:?} asc");
        let page = h
            .store
            .admin_list(&sorted(key, SortOrder::Desc))
            .await
            .unwrap();
        let mut desc = asc.to_vec();
        desc.reverse();
        if matches!(key, SortKey::EndTime | SortKey::Duration) {
            // Ties (the two active sessions) stay in id order in both directions.
            desc = vec![desc[0], desc[1], desc[2], "s3", "s5"];
        }
        assert_eq!(ids(&page), desc, "{key:?} desc");
    }
    let page = h
        .store
        .admin_list(&AdminQuery {
            sort_order: SortOrder::Asc,
            limit: 2,
            offset: 1,
            ..AdminQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((ids(&page), page.total), (vec!["s2", "s3"], 5));
    let page = h
        .store
        .admin_list(&AdminQuery {
            limit: 2,
            offset: 4,
            ..AdminQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((ids(&page), page.total), (vec!["s1"], 5));
    let page = h
        .store
        .admin_list(&AdminQuery {
            limit: 10,
            offset: 50,
            ..AdminQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.total), (0, 5));
}

#[tokio::test]
async fn metrics_aggregate_sessions_started_in_the_range() {
    let h = plain().await;
    let s = &h.store;
    s.create_session(&session("m1", "a", 0)).await.unwrap();
    s.update_stats("m1", 100, 900, 300, 2).await.unwrap();
    s.create_session(&session("m2", "b", 50)).await.unwrap();
    s.update_stats("m2", 10, 200, 200, 1).await.unwrap();
    s.update_assistance("m2", Some("adm"), None).await.unwrap();
    s.end_session("m2", t(60)).await.unwrap();
    s.create_session(&session("m3", "c", 500)).await.unwrap();
    s.update_stats("m3", 7, 5000, 5000, 1).await.unwrap();

    let m = s.metrics(t(0), t(100)).await.unwrap();
    assert_eq!(m.total_sessions, 2);
    assert_eq!(m.active_sessions, 1);
    assert_eq!(m.total_tokens, 110);
    assert_eq!(m.max_response_time_ms, 900);
    assert_eq!(m.avg_response_time_ms, (300 * 2 + 200) / 3);
    assert_eq!(m.admin_assisted_count, 1);
    let all = s.metrics(t(-10), t(1000)).await.unwrap();
    assert_eq!(
        (
            all.total_sessions,
            all.total_tokens,
            all.max_response_time_ms
        ),
        (3, 117, 5000)
    );
    let none = s.metrics(t(2000), t(3000)).await.unwrap();
    assert_eq!(none, chat_storage::StoreMetrics::default());
}

#[tokio::test]
async fn load_active_returns_active_sessions_with_their_messages() {
    let h = plain().await;
    for (id, user) in [("x1", "a"), ("x2", "b"), ("x3", "c")] {
        h.store.create_session(&session(id, user, 0)).await.unwrap();
        h.store
            .append_message(id, &msg(Sender::User, id, 1))
            .await
            .unwrap();
    }
    h.store.end_session("x2", t(5)).await.unwrap();
    let active = h.store.load_active().await.unwrap();
    let ids: HashSet<_> = active.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, HashSet::from(["x1", "x3"]));
    assert!(active
        .iter()
        .all(|s| s.messages.len() == 1 && s.messages[0].content == s.id));
}

#[tokio::test]
async fn data_survives_reopening_the_store() {
    let mut h = Harness::new(encryptor(&[("k1", KEY_A)])).await;
    h.store.create_session(&full_session()).await.unwrap();
    h.store
        .create_session(&session("live", "u", 0))
        .await
        .unwrap();
    h.store
        .append_message("live", &msg(Sender::User, "remember me", 1))
        .await
        .unwrap();
    h.reopen().await;
    assert_eq!(
        h.store.get_session(&full_session().id).await.unwrap(),
        Some(full_session())
    );
    let live = h.store.load_active().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].messages[0].content, "remember me");
}

#[tokio::test]
async fn values_written_before_a_key_rotation_stay_readable() {
    let mut h = Harness::new(encryptor(&[("a", KEY_A)])).await;
    h.store
        .create_session(&session("old", "u1", 0))
        .await
        .unwrap();
    h.store
        .append_message("old", &msg(Sender::User, "written with A", 1))
        .await
        .unwrap();
    // Rotate: B becomes current, A stays as a previous key.
    h.reopen_with(encryptor(&[("b", KEY_B), ("a", KEY_A)]))
        .await;
    h.store
        .append_message("old", &msg(Sender::Ai, "written with B", 2))
        .await
        .unwrap();
    h.store
        .create_session(&session("new", "u2", 3))
        .await
        .unwrap();
    let old = h.store.get_session("old").await.unwrap().unwrap();
    let contents: Vec<_> = old.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["written with A", "written with B"]);
    assert_eq!(old.name, "chat old");
    assert_eq!(
        h.store.get_session("new").await.unwrap().unwrap().name,
        "chat new"
    );
    // Without key A the old values no longer decrypt, and that is an error, not garbage.
    h.reopen_with(encryptor(&[("b", KEY_B)])).await;
    assert!(matches!(
        h.store.get_session("old").await,
        Err(StoreError::Decrypt(_))
    ));
    assert_eq!(
        h.store.get_session("new").await.unwrap().unwrap().name,
        "chat new"
    );
}

#[tokio::test]
async fn ping_answers() {
    let h = plain().await;
    h.store.ping().await.unwrap();
    assert_eq!(h.store.health().pending_writes, 0);
}
