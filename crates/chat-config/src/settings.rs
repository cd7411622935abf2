//! The configuration sections as plain data, with their documented defaults.
//!
//! Every struct rejects unknown fields so a typo in a key is an error, not a silently
//! ignored setting. Durations are written the humantime way (`"30s"`, `"5m"`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;

/// How strict the service is: development runs with nothing installed, production
/// demands every secret and refuses insecure defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Embedded store, echo provider, generated JWT secret, loopback origins only.
    #[default]
    Development,
    /// MongoDB, real providers, explicit secrets and origins.
    Production,
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// development | production.
    pub mode: Mode,
    /// Listening socket, URL layout, proxies, shutdown.
    pub server: ServerSettings,
    /// JWT validation.
    pub auth: AuthSettings,
    /// Encryption at rest of message content and session names.
    pub encryption: EncryptionSettings,
    /// Where sessions are kept.
    pub storage: StorageSettings,
    /// LLM providers, deadlines and the prompt budget.
    pub llm: LlmSettings,
    /// Keyed rate limits.
    pub rate_limits: RateLimitSettings,
    /// WebSocket limits and heartbeat.
    pub websocket: WebSocketSettings,
    /// In-memory session lifetime.
    pub sessions: SessionSettings,
    /// File uploads (`POST /uploads`).
    pub uploads: UploadSettings,
    /// Log output.
    pub logging: LoggingSettings,
    /// Alerts raised by `help_request`.
    pub notifications: NotificationSettings,
}

/// Listening socket, URL layout and network trust.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind; 0 asks the OS for a free one (tests).
    pub port: i64,
    /// Prefix of every route; starts with `/`, no trailing slash (`/` alone = root).
    pub path_prefix: String,
    /// Origins allowed to open a WebSocket (`scheme://host[:port]`). Empty in development
    /// means "loopback origins only"; empty in production is an error.
    pub allowed_origins: Vec<String>,
    /// Origins that get CORS headers on the HTTP API; CORS is off when empty.
    pub cors_allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed when computing the client IP.
    pub trusted_proxies: Vec<IpNet>,
    /// Client networks allowed to read `/metrics/prometheus`.
    pub metrics_allowed_networks: Vec<IpNet>,
    /// How long a graceful shutdown may take before remaining work is abandoned.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Per-request timeout of the plain HTTP API (not WebSocket, not streaming).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Base URL printed in development sign-in links; defaults to `http://host:port`.
    pub public_url: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            path_prefix: "/chatbox".to_owned(),
            allowed_origins: Vec::new(),
            cors_allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            metrics_allowed_networks: default_metrics_networks(),
            shutdown_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            public_url: None,
        }
    }
}

/// Loopback plus the private ranges: where a Prometheus scraper normally lives.
fn default_metrics_networks() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
}

/// HMAC algorithms accepted for JWTs. `none` and asymmetric algorithms are not
/// representable, which rules out algorithm-confusion attacks by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256.
    HS256,
    /// HMAC-SHA384.
    HS384,
    /// HMAC-SHA512.
    HS512,
}

/// JWT validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// HMAC secret (env `JWT_SECRET`). Generated at start in development when absent.
    pub jwt_secret: Option<SecretString>,
    /// Accepted algorithms; tokens signed otherwise are refused.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Refuse tokens without `exp` (defaults to on in production, off in development).
    pub require_exp: Option<bool>,
    /// Clock skew tolerated for `exp`/`nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            algorithms: vec![
                JwtAlgorithm::HS256,
                JwtAlgorithm::HS384,
                JwtAlgorithm::HS512,
            ],
            require_exp: None,
            leeway: Duration::from_secs(30),
        }
    }
}

/// One AES-256 key: 32 raw bytes (the legacy `ENCRYPTION_KEY` format) or
/// `base64:<44 chars>` decoding to 32 bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionKeySettings {
    /// Short id written in front of every value encrypted with this key.
    pub id: String,
    /// The key material.
    pub key: SecretString,
}

/// Encryption at rest of message content and session names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionSettings {
    /// The key new values are written with (env `ENCRYPTION_KEY`). Required in production.
    pub key: Option<SecretString>,
    /// Id of `key`, written as a prefix of new values so keys can rotate.
    pub key_id: String,
    /// Older keys, kept for reading values written before a rotation.
    pub previous_keys: Vec<EncryptionKeySettings>,
}

impl Default for EncryptionSettings {
    fn default() -> Self {
        Self {
            key: None,
            key_id: "k1".to_owned(),
            previous_keys: Vec::new(),
        }
    }
}

/// Which `SessionStore` backs the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// File-backed store on local disk; single node; the development default.
    #[default]
    Embedded,
    /// MongoDB with the legacy `chat.sessions` schema; required in production.
    Mongodb,
}

/// Where sessions are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// embedded | mongodb (setting env `MONGO_URI` selects mongodb).
    pub backend: StorageBackend,
    /// Embedded store file.
    pub embedded_path: PathBuf,
    /// Memory the embedded store may use to cache database pages, in bytes (env
    /// `CHATBOX_EMBEDDED_CACHE_SIZE`). redb's own default is 1 GiB, reached as the file
    /// grows; the hot pages of a chat service (recent sessions, indexes) are far fewer,
    /// the OS page cache holds the file anyway, and redb never gives its cache back:
    /// the default (2 MiB) is what stays in memory once a load has gone.
    pub embedded_cache_size: usize,
    /// How far below the server's own priority the embedded store's writer thread
    /// runs, in nice steps, 0–19 (env `CHATBOX_EMBEDDED_WRITER_NICE`; Linux only; 0
    /// leaves it at the server's). Its commits then wait while the request handlers
    /// want the cores instead of preempting them; nearly all the writes it applies were
    /// already acknowledged by the write-behind queue, which bounds how far it may fall
    /// behind.
    pub embedded_writer_nice: u8,
    /// MongoDB settings, used when `backend = "mongodb"`.
    pub mongodb: MongoSettings,
    /// Retry policy for transient storage errors.
    pub retry: RetrySettings,
    /// Writes waiting for the database (per process) before new writes are refused.
    pub write_queue_capacity: usize,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Embedded,
            embedded_path: PathBuf::from("./data/chatbox.redb"),
            embedded_cache_size: 2 * 1024 * 1024,
            embedded_writer_nice: 5,
            mongodb: MongoSettings::default(),
            retry: RetrySettings::default(),
            write_queue_capacity: 10_000,
        }
    }
}

/// MongoDB connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MongoSettings {
    /// Connection string (env `MONGO_URI`); secret because it may carry a password.
    pub uri: Option<SecretString>,
    /// Database name (legacy: `chat`).
    pub database: String,
    /// Collection name (legacy: `sessions`).
    pub collection: String,
    /// Time allowed to establish a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for one attempt of one operation.
    #[serde(with = "humantime_serde")]
    pub operation_timeout: Duration,
}

impl Default for MongoSettings {
    fn default() -> Self {
        Self {
            uri: None,
            database: "chat".to_owned(),
            collection: "sessions".to_owned(),
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(5),
        }
    }
}

/// Exponential backoff with jitter for transient storage errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts in total, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Upper bound of one delay.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// The wire format an LLM provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions, or any compatible server (vLLM, llama.cpp, Ollama).
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Dify `/chat-messages`.
    Dify,
    /// The built-in development echo model; refused in production.
    Echo,
}

/// One configured LLM provider (`[[llm.providers]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Stable id clients select with `model_select`.
    pub id: String,
    /// Human name shown in the model selector.
    pub name: String,
    /// Wire format.
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// Base URL (https, or http only to internal hosts). Unused by `echo`.
    #[serde(default)]
    pub endpoint: String,
    /// API key (env `LLM_PROVIDER_<n>_API_KEY`, n counting from 1, or
    /// `LLM_PROVIDER_<ID>_API_KEY`). Required for anthropic and dify.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Model name sent to the provider (required for openai and anthropic).
    #[serde(default)]
    pub model: String,
    /// Upper bound of generated tokens, when the provider takes one.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Delay between words of the echo provider.
    #[serde(default, with = "humantime_serde")]
    pub echo_delay: Option<Duration>,
}

/// LLM providers, deadlines and the prompt budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSettings {
    /// Providers in the order the model selector shows them (default first).
    pub providers: Vec<ProviderSettings>,
    /// Id of the provider new sessions use; defaults to the first.
    pub default_provider: Option<String>,
    /// Provider ids tried in order when the selected one fails before its first token.
    pub fallback: Vec<String>,
    /// Deadline for the first token of a reply.
    #[serde(with = "humantime_serde")]
    pub first_token_timeout: Duration,
    /// Longest silence allowed between two chunks.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Deadline for a whole reply.
    #[serde(with = "humantime_serde")]
    pub total_timeout: Duration,
    /// At most this many history messages are sent with a new message.
    pub history_max_messages: usize,
    /// At most this many characters of history are sent (oldest dropped first).
    pub history_max_chars: usize,
    /// Optional system prompt sent with every conversation.
    pub system_prompt: Option<String>,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            default_provider: None,
            fallback: Vec::new(),
            first_token_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(300),
            history_max_messages: 50,
            history_max_chars: 32_000,
            system_prompt: None,
        }
    }
}

/// Keyed rate limits (GCRA), all per minute.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Chat messages per user per minute.
    pub user_messages_per_minute: u32,
    /// Admin API requests per admin per minute.
    pub admin_requests_per_minute: u32,
    /// Public endpoint requests per client IP per minute.
    pub public_requests_per_minute: u32,
    /// Keys tracked per limiter; beyond it new keys are limited instead of growing memory.
    pub max_tracked_keys: usize,
    /// How often idle keys are dropped.
    #[serde(with = "humantime_serde")]
    pub cleanup_interval: Duration,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            user_messages_per_minute: 100,
            admin_requests_per_minute: 20,
            public_requests_per_minute: 60,
            max_tracked_keys: 100_000,
            cleanup_interval: Duration::from_secs(60),
        }
    }
}

/// WebSocket limits and heartbeat.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketSettings {
    /// Largest inbound frame (env `MAX_MESSAGE_SIZE`); larger closes with 1009.
    pub max_message_size: usize,
    /// Interval of server pings.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A connection silent this long is closed; must exceed `ping_interval`.
    #[serde(with = "humantime_serde")]
    pub pong_timeout: Duration,
    /// Frames queued for one connection; a consumer that falls this far behind is dropped.
    pub send_queue_capacity: usize,
    /// Concurrent WebSocket connections per user.
    pub max_connections_per_user: usize,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        Self {
            max_message_size: 1024 * 1024,
            ping_interval: Duration::from_secs(54),
            pong_timeout: Duration::from_secs(60),
            send_queue_capacity: 256,
            max_connections_per_user: 10,
        }
    }
}

/// In-memory session lifetime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Ended sessions are dropped from memory this long after they ended.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Active sessions without activity for this long are ended.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How often the sweeper runs.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Streamed chunks kept per session for `resume`.
    pub replay_buffer_frames: usize,
    /// Messages kept in memory per session (older ones stay in storage). The LLM
    /// history (`llm.history_max_messages`) is taken from them; HTTP reads of a longer
    /// conversation go to the store.
    pub max_messages_in_memory: usize,
    /// How long a session nobody is connected to (and with no reply being generated)
    /// keeps its replay buffer and its in-memory messages (env
    /// `CHATBOX_SESSION_RELEASE_GRACE`). A client that reconnects within it resumes
    /// without a gap; afterwards both are released and the history is reloaded from
    /// the store on the next message (a later `resume` reports a replay gap).
    #[serde(with = "humantime_serde")]
    pub release_grace: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60 * 60),
            idle_timeout: Duration::from_secs(30 * 60),
            sweep_interval: Duration::from_secs(60),
            replay_buffer_frames: 2048,
            max_messages_in_memory: 100,
            release_grace: Duration::from_secs(30),
        }
    }
}

/// File uploads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadSettings {
    /// Directory uploaded files are written to.
    pub dir: PathBuf,
    /// Largest accepted file.
    pub max_file_size: usize,
    /// Accepted MIME types.
    pub allowed_mime_types: Vec<String>,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data/uploads"),
            max_file_size: 10 * 1024 * 1024,
            allowed_mime_types: [
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "application/pdf",
                "text/plain",
                "audio/mpeg",
                "audio/ogg",
                "audio/wav",
                "audio/webm",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable in development, JSON in production.
    #[default]
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSettings {
    /// auto | text | json.
    pub format: LogFormat,
    /// `tracing` filter directive (overridden by `RUST_LOG`).
    pub level: String,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".to_owned(),
        }
    }
}

/// Alerts raised when a user asks for a human.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// Optional webhook that receives a JSON POST for every help request.
    pub help_webhook_url: Option<String>,
}
