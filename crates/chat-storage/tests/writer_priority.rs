//! The embedded store's writer thread runs `storage.embedded_writer_nice` nice steps
//! below the thread that opened the store, and nothing else in the process moves.
//! A test binary of its own: the only writer threads in this process are its own.
#![cfg(target_os = "linux")]
// Fixtures outside #[test] fns: a failure should stop the test loudly.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::Path;

use chat_session::model::SessionSnapshot;
use chat_storage::{EmbeddedOptions, EmbeddedStore, Encryptor, SessionStore};
use chrono::Utc;

/// The nice value in a `/proc/.../stat` file (field 19; the name, field 2, may hold
/// spaces and parentheses, so fields are counted after its closing parenthesis).
fn nice_in(stat: &Path) -> i32 {
    let text = std::fs::read_to_string(stat).unwrap_or_else(|e| panic!("{stat:?}: {e}"));
    let after_name = &text[text.rfind(')').expect("stat has a name") + 2..];
    // Fields from 3 (state) on: the nice value is the 17th of them.
    after_name
        .split_whitespace()
        .nth(16)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no nice value in {text:?}"))
}

/// Every writer thread of this process (its name is cut to 15 bytes) with its nice.
fn writer_threads() -> Vec<(String, i32)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let task = task.expect("task entry").path();
        let Ok(name) = std::fs::read_to_string(task.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        if name.trim_end().starts_with("embedded-store-") {
            found.push((task.display().to_string(), nice_in(&task.join("stat"))));
        }
    }
    found
}

/// Opens a store with `writer_nice` and has it commit one write: the writer thread
/// sets its priority before it answers any, so its nice value is final afterwards.
async fn open_and_write(dir: &Path, writer_nice: u8) -> EmbeddedStore {
    let options = EmbeddedOptions {
        writer_nice,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(&dir.join("chat.redb"), Encryptor::disabled(), options)
        .expect("open the store");
    let (id, user) = (format!("{writer_nice:032x}"), format!("user-{writer_nice}"));
    store
        .create_session(&SessionSnapshot::new_active(id, user, Utc::now()))
        .await
        .expect("the writer commits");
    store
}

#[tokio::test]
async fn the_writer_thread_alone_runs_the_configured_steps_below_the_opener() {
    let opener = nice_in(Path::new("/proc/thread-self/stat"));
    let process = nice_in(Path::new("/proc/self/stat"));
    let dir = tempfile::tempdir().expect("tempdir");

    let store = open_and_write(dir.path(), 7).await;
    let writers = writer_threads();
    assert_eq!(
        writers.iter().map(|(_, nice)| *nice).collect::<Vec<_>>(),
        vec![(opener + 7).min(19)],
        "one writer thread, 7 steps below its opener at {opener}: {writers:?}"
    );
    // Only that thread: not the opener, not the process's main thread.
    assert_eq!(nice_in(Path::new("/proc/thread-self/stat")), opener);
    assert_eq!(nice_in(Path::new("/proc/self/stat")), process);
    drop(store); // joins the writer thread

    // 0 leaves the writer where its opener is.
    let store = open_and_write(dir.path(), 0).await;
    let writers = writer_threads();
    assert_eq!(
        writers.iter().map(|(_, nice)| *nice).collect::<Vec<_>>(),
        vec![opener],
        "one writer thread, at its opener's {opener}: {writers:?}"
    );
    drop(store);
}
