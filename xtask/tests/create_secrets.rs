//! `deployments/kubernetes/create-secrets.sh`: the values it generates are accepted by the
//! server's own validation, they never appear on a command line, and placeholder or weak
//! inputs are refused. `kubectl` is replaced by a stub on `PATH` that prints the keys and
//! values it was given as files.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chat_config::{Config, Mode};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deployments/kubernetes/create-secrets.sh")
}

/// A `kubectl` that prints `KEY=value` for every `--from-file=KEY=path` and its arguments.
const KUBECTL_STUB: &str = r#"#!/usr/bin/env bash
for arg in "$@"; do
    case "$arg" in
        --from-file=*)
            spec="${arg#--from-file=}"
            printf '%s=%s\n' "${spec%%=*}" "$(cat "${spec#*=}")"
            ;;
    esac
done
printf 'ARGS=%s\n' "$*"
"#;

const PROVIDER_KEYS: [(&str, &str); 2] = [
    ("LLM_PROVIDER_OPENAI_API_KEY", "sk-proj-8Yq2Lw7Rz4Nc1Vb6"),
    (
        "LLM_PROVIDER_ANTHROPIC_API_KEY",
        "sk-ant-api03-Jd9Kx2Pm5Qr8",
    ),
];

fn run(extra_env: &[(&str, &str)]) -> Output {
    let stub_dir = tempfile::tempdir().unwrap();
    let stub = stub_dir.path().join("kubectl");
    std::fs::write(&stub, KUBECTL_STUB).unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        stub_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .arg(script())
        .args(["--namespace", "chatbox-test"])
        .env("PATH", path);
    for name in [
        "JWT_SECRET",
        "ENCRYPTION_KEY",
        "MONGO_URI",
        "LLM_PROVIDER_OPENAI_API_KEY",
        "LLM_PROVIDER_ANTHROPIC_API_KEY",
    ] {
        command.env_remove(name);
    }
    for (name, value) in extra_env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn valid_inputs() -> Vec<(&'static str, &'static str)> {
    let mut env = vec![("MONGO_URI", "mongodb://mongodb.chatbox.svc:27017")];
    env.extend(PROVIDER_KEYS);
    env
}

fn values(output: &Output) -> HashMap<String, String> {
    assert!(
        output.status.success(),
        "create-secrets.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn generated_secrets_are_accepted_by_the_servers_production_validation() {
    let out = values(&run(&valid_inputs()));
    let jwt = &out["JWT_SECRET"];
    assert_eq!(jwt.len(), 64, "256 bits as hex: {jwt}");
    assert!(out["ENCRYPTION_KEY"].starts_with("base64:"));

    let toml = r#"
        mode = "production"
        [server]
        allowed_origins = ["https://chat.example.com"]
        [[llm.providers]]
        id = "openai"
        name = "OpenAI"
        type = "openai"
        endpoint = "https://api.openai.com/v1"
        model = "gpt-4o-mini"
    "#;
    let env: HashMap<String, String> = [
        "JWT_SECRET",
        "ENCRYPTION_KEY",
        "MONGO_URI",
        "LLM_PROVIDER_OPENAI_API_KEY",
    ]
    .into_iter()
    .map(|k| (k.to_owned(), out[k].clone()))
    .collect();
    let config = Config::from_toml_str(toml, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.mode, Mode::Production);
    assert_eq!(
        config.encryption_keys().len(),
        1,
        "the key decodes to 32 bytes"
    );
}

#[test]
fn each_run_generates_new_values() {
    let first = values(&run(&valid_inputs()));
    let second = values(&run(&valid_inputs()));
    assert_ne!(first["JWT_SECRET"], second["JWT_SECRET"]);
    assert_ne!(first["ENCRYPTION_KEY"], second["ENCRYPTION_KEY"]);
}

#[test]
fn values_go_to_kubectl_as_files_never_as_arguments() {
    let out = values(&run(&valid_inputs()));
    let args = &out["ARGS"];
    assert!(
        args.contains("create secret generic chatbox-secrets"),
        "{args}"
    );
    assert!(args.contains("--namespace chatbox-test"), "{args}");
    assert!(args.contains("--dry-run=client -o yaml"), "{args}");
    for key in [
        "JWT_SECRET",
        "ENCRYPTION_KEY",
        "MONGO_URI",
        "LLM_PROVIDER_OPENAI_API_KEY",
    ] {
        assert!(
            !args.contains(&out[key]),
            "{key} value on the command line: {args}"
        );
    }
}

#[test]
fn given_values_are_kept_for_re_creating_the_secret() {
    let mut env = valid_inputs();
    env.push(("JWT_SECRET", "Zq8vN3xR7tLm2Kp9Wd4Hs6Jf1Gb5Yc0Eu"));
    let out = values(&run(&env));
    assert_eq!(out["JWT_SECRET"], "Zq8vN3xR7tLm2Kp9Wd4Hs6Jf1Gb5Yc0Eu");
}

#[test]
fn placeholder_weak_or_missing_inputs_are_refused() {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("MONGO_URI", "mongodb://REPLACE_WITH_HOST:27017")],
            "MONGO_URI looks like a template placeholder",
        ),
        (
            &[
                ("MONGO_URI", "mongodb://m:27017"),
                ("JWT_SECRET", "my-test-secret-that-is-long-enough-yes"),
            ],
            "JWT_SECRET contains a weak word",
        ),
        (
            &[
                ("MONGO_URI", "mongodb://m:27017"),
                ("ENCRYPTION_KEY", "base64:c2hvcnQ="),
            ],
            "ENCRYPTION_KEY must be 32 bytes",
        ),
        (&[], "MONGO_URI is empty"),
    ];
    for (overrides, expected) in cases {
        let mut env: Vec<(&str, &str)> = PROVIDER_KEYS.to_vec();
        env.extend_from_slice(overrides);
        let output = run(&env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "accepted {overrides:?}");
        assert!(stderr.contains(expected), "{overrides:?}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "printed a Secret for {overrides:?}"
        );
    }
}
