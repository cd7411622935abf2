//! `cargo xtask verify --config FILE`: the file is loaded through the server's own
//! validating constructor, and every problem is reported.

use xtask::verify::audits::audit_config;

#[test]
fn an_invalid_config_file_lists_each_problem_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nport = 70000\n[websocket]\nsend_queue_capacity = 0\n",
    )
    .unwrap();
    let audit = audit_config(&file);
    assert!(!audit.passed());
    assert!(audit.problems.len() >= 2, "{:?}", audit.problems);
    assert!(
        audit.problems.iter().any(|p| p.starts_with("server.port")),
        "{:?}",
        audit.problems
    );
    assert!(
        audit
            .problems
            .iter()
            .any(|p| p.starts_with("websocket.send_queue_capacity")),
        "{:?}",
        audit.problems
    );
}

#[test]
fn a_missing_file_is_a_problem_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let audit = audit_config(&dir.path().join("absent.toml"));
    assert!(!audit.passed());
    assert!(
        audit.problems[0].contains("cannot read"),
        "{:?}",
        audit.problems
    );
}

#[test]
fn the_example_config_is_accepted() {
    let example = xtask::run::workspace_root().join("config.example.toml");
    let audit = audit_config(&example);
    assert!(audit.passed(), "{:?}", audit.problems);
    assert!(audit.notes.iter().any(|n| n.starts_with("mode: ")));
}
