//! A real chatbox server on an ephemeral port: embedded store in a temp dir (or
//! MongoDB when given), the fake LLM provider over real HTTP, tokens minted with the
//! server's own secret.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_config::Config;
use chat_server::app::{self, Services};
use chat_testkit::fake_llm::{FakeLlmHandle, FakeLlmServer, Script};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "Zq9Vx2Lm7Rt4Wp8Ks3Hd6Fg1Jc5Nb0Ya";

pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    pub services: Arc<Services>,
    pub fake: FakeLlmHandle,
    pub dir: tempfile::TempDir,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

pub fn config_toml(dir: &std::path::Path, fake: &FakeLlmHandle, extra: &str) -> String {
    format!(
        r#"
[server]
port = 0
shutdown_timeout = "5s"
[auth]
jwt_secret = "{SECRET}"
[storage]
embedded_path = "{db}"
[uploads]
dir = "{uploads}"
[llm]
first_token_timeout = "3s"
idle_timeout = "3s"
total_timeout = "20s"
[[llm.providers]]
id = "fake"
name = "Fake Model"
type = "openai"
endpoint = "{endpoint}"
model = "fake-model"
{extra}
"#,
        db = dir.join("chatbox.redb").display(),
        uploads = dir.join("uploads").display(),
        endpoint = fake.openai_endpoint(),
    )
}

/// Adds `extra` to `base`: lines under a `[table]` header that `base` already has are
/// inserted under that header (TOML forbids repeating a table); the rest is appended.
pub fn merge_toml(base: &str, extra: &str) -> String {
    let mut out = base.to_owned();
    let mut current: Option<String> = None;
    let mut appended = String::new();
    for line in extra.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && !trimmed.starts_with("[[") {
            let header = format!("{trimmed}\n");
            if out.contains(&header) {
                current = Some(header);
                continue;
            }
            current = None;
        } else if trimmed.starts_with("[[") {
            current = None;
        }
        match &current {
            Some(header) => {
                let at = out.find(header.as_str()).unwrap() + header.len();
                out.insert_str(at, &format!("{line}\n"));
                // Keep inserting after the line just added, preserving order.
                let new_header = format!("{header}{line}\n");
                current = Some(new_header);
            }
            None => {
                appended.push_str(line);
                appended.push('\n');
            }
        }
    }
    out.push_str(&appended);
    out
}

impl TestServer {
    pub async fn start(script: Script, extra: &str) -> Self {
        let fake = FakeLlmServer::start(script).await.expect("fake provider");
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_with(fake, dir, extra, &HashMap::new()).await
    }

    pub async fn start_with(
        fake: FakeLlmHandle,
        dir: tempfile::TempDir,
        extra: &str,
        env: &HashMap<String, String>,
    ) -> Self {
        let toml = merge_toml(&config_toml(dir.path(), &fake, ""), extra);
        let config = Config::from_toml_str(&toml, env).unwrap_or_else(|e| panic!("{e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let services = Arc::new(
            Services::start(config.clone(), format!("http://{addr}"))
                .await
                .expect("services start"),
        );
        let app = app::router(&services);
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
        });
        Self {
            addr,
            config,
            services,
            fake,
            dir,
            cancel,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/chatbox{}", self.addr, path)
    }

    pub fn token(&self, user: &str) -> String {
        chat_server::cli::mint(
            &self.config,
            user,
            Some(&format!("User {user}")),
            &[],
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    pub fn admin_token(&self, admin: &str) -> String {
        chat_server::cli::mint(
            &self.config,
            admin,
            Some(&format!("Admin {admin}")),
            &["admin"],
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    /// Stops the server: drains services, then the HTTP listener.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.services.shutdown(Duration::from_secs(5)).await;
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.dir
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub async fn get_json(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = client.post(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}
