//! The real `chat-server` binary as a child process with a benchmark configuration:
//! loopback only, embedded store in a temporary directory, one OpenAI-compatible
//! provider (the fake server), limits raised so the load generator measures the
//! gateway rather than its protections, and tokens minted with its own secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_auth::TokenIssuer;
use chat_config::JwtAlgorithm;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use tokio::process::Command;

use crate::process::ChildServer;
use crate::BenchError;

/// Seed of the JWT secret: runs are reproducible (the secret never leaves loopback).
const SECRET_SEED: u64 = 0x00C4_A7B0_0011;

/// Token lifetime: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(4 * 60 * 60);

/// What differs between the servers of one run.
#[derive(Debug, Clone)]
pub struct ChatboxOptions {
    /// The `chat-server` binary.
    pub binary: PathBuf,
    /// The provider endpoint (`http://127.0.0.1:PORT/v1`).
    pub provider_endpoint: String,
    /// `sessions.release_grace`, when not the server's default.
    pub release_grace: Option<Duration>,
}

/// A running chatbox server. Killed when dropped; its data directory goes with it.
#[derive(Debug)]
pub struct ChatboxServer {
    child: ChildServer,
    issuer: TokenIssuer,
    _dir: tempfile::TempDir,
}

impl ChatboxServer {
    /// Writes the configuration and starts the server on a free loopback port.
    pub async fn start(options: &ChatboxOptions) -> Result<Self, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("chatbox-bench-")
            .tempdir()?;
        let secret = jwt_secret();
        let mut config = config_toml(dir.path(), &secret, &options.provider_endpoint);
        if let Some(grace) = options.release_grace {
            config.push_str(&sessions_toml(grace));
        }
        let path = dir.path().join("bench.toml");
        tokio::fs::write(&path, config).await?;
        let mut command = Command::new(&options.binary);
        command
            .arg("--config")
            .arg(&path)
            .env_remove("JWT_SECRET")
            .env_remove("CHATBOX_CONFIG")
            .env_remove("CHATBOX_PORT")
            .env_remove("MONGO_URI")
            .env("RUST_LOG", "error");
        let child = ChildServer::spawn(command).await?;
        let issuer = TokenIssuer::new(&SecretString::from(secret), JwtAlgorithm::HS256)
            .map_err(|e| BenchError::Process(format!("token issuer: {e}")))?;
        Ok(Self {
            child,
            issuer,
            _dir: dir,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.child.addr()
    }

    /// The server's resident memory now.
    pub fn rss_bytes(&self) -> Result<u64, BenchError> {
        self.child.rss_bytes()
    }

    /// CPU time the server has used so far.
    pub fn cpu_time(&self) -> Result<std::time::Duration, BenchError> {
        self.child.cpu_time()
    }

    /// The WebSocket path with a fresh token for `user` in the query.
    pub fn ws_path(&self, user: &str) -> Result<String, BenchError> {
        let token = self
            .issuer
            .issue::<&str>(user, None, &[], TOKEN_TTL)
            .map_err(|e| BenchError::Process(format!("token: {e}")))?;
        Ok(format!("/chatbox/ws?token={token}"))
    }

    /// Kills the server and waits for it.
    pub async fn stop(self) -> Result<(), BenchError> {
        self.child.stop().await
    }
}

/// 64 hex characters from the fixed seed (passes the secret-strength checks).
fn jwt_secret() -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(SECRET_SEED);
    let bytes: [u8; 32] = rng.random();
    hex::encode(bytes)
}

/// The benchmark configuration. Limits that would otherwise throttle one load
/// generator (per-user messages, connections, tracked keys) are raised; heartbeats are
/// slowed so idle sockets that do not read stay open for the whole measurement.
pub fn config_toml(dir: &Path, secret: &str, endpoint: &str) -> String {
    format!(
        r#"mode = "development"

[server]
host = "127.0.0.1"
port = 0
shutdown_timeout = "5s"

[auth]
jwt_secret = "{secret}"

[storage]
embedded_path = "{db}"

[uploads]
dir = "{uploads}"

[logging]
level = "error"

[rate_limits]
user_messages_per_minute = 1000000
max_tracked_keys = 200000

[websocket]
max_connections_per_user = 100
ping_interval = "10m"
pong_timeout = "11m"
send_queue_capacity = 4096

[llm]
first_token_timeout = "60s"
idle_timeout = "60s"
total_timeout = "600s"

[[llm.providers]]
id = "fake"
name = "Fake"
type = "openai"
endpoint = "{endpoint}"
model = "m"
"#,
        db = dir.join("bench.redb").display(),
        uploads = dir.join("uploads").display(),
    )
}

/// A `[sessions]` section setting the release grace period (whole milliseconds).
fn sessions_toml(release_grace: Duration) -> String {
    format!(
        "\n[sessions]\nrelease_grace = \"{}ms\"\n",
        release_grace.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_configuration_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let toml = config_toml(dir.path(), &jwt_secret(), "http://127.0.0.1:9/v1");
        let config = chat_config::Config::from_toml_str(
            &toml,
            &std::collections::HashMap::<String, String>::new(),
        );
        let config = config.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.websocket.max_connections_per_user, 100);
        assert_eq!(config.llm.providers.len(), 1);
        assert_eq!(config.sessions.release_grace, Duration::from_secs(30));
    }

    #[test]
    fn the_smoke_release_grace_reaches_the_server_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = config_toml(dir.path(), &jwt_secret(), "http://127.0.0.1:9/v1");
        toml.push_str(&sessions_toml(crate::plan::SMOKE_RELEASE_GRACE));
        let config = chat_config::Config::from_toml_str(
            &toml,
            &std::collections::HashMap::<String, String>::new(),
        );
        let config = config.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.sessions.release_grace,
            crate::plan::SMOKE_RELEASE_GRACE
        );
    }

    #[test]
    fn the_secret_is_fixed_and_long() {
        assert_eq!(jwt_secret(), jwt_secret());
        assert_eq!(jwt_secret().len(), 64);
    }
}
