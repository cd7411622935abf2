//! Loading: TOML file → sections → environment overrides → validation → [`Config`].

use std::ops::Deref;
use std::path::{Path, PathBuf};

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::env::EnvSource;
use crate::error::{ConfigError, ConfigErrors};
use crate::settings::*;
use crate::validate;

/// A validated configuration. The only constructors validate, so holding a `Config`
/// proves every rule of PROTOCOL §5 holds. Read the sections through `Deref`.
#[derive(Debug, Clone)]
pub struct Config {
    settings: Settings,
    jwt_secret: SecretString,
    jwt_secret_generated: bool,
    source: Option<PathBuf>,
}

impl Deref for Config {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl Config {
    /// Loads `path` (or the embedded defaults when `None`), applies the environment
    /// overrides of PROTOCOL §5 and validates. Returns every problem at once.
    pub fn load(path: Option<&Path>, env: &impl EnvSource) -> Result<Self, ConfigErrors> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| {
                ConfigErrors(vec![ConfigError::new(
                    "config file",
                    format!("cannot read {}: {e}", p.display()),
                )])
            })?,
            None => String::new(),
        };
        let mut config = Self::from_toml_str(&text, env)?;
        config.source = path.map(Path::to_path_buf);
        Ok(config)
    }

    /// Parses TOML text, applies environment overrides and validates.
    pub fn from_toml_str(text: &str, env: &impl EnvSource) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut settings = parse_sections(text, &mut errors);
        apply_env(&mut settings, env, &mut errors);
        apply_mode_defaults(&mut settings);
        validate::validate(&settings, &mut errors);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let (jwt_secret, jwt_secret_generated) = match settings.auth.jwt_secret.clone() {
            Some(secret) => (secret, false),
            // Validation refuses a missing secret in production, so this is development.
            None => (generate_secret(), true),
        };
        Ok(Self {
            settings,
            jwt_secret,
            jwt_secret_generated,
            source: None,
        })
    }

    /// The HMAC secret tokens are signed with (configured, or generated at start in
    /// development).
    pub fn jwt_secret(&self) -> &SecretString {
        &self.jwt_secret
    }

    /// True when the JWT secret was generated at start (development without a secret):
    /// tokens do not survive a restart and the server prints sign-in links.
    pub fn jwt_secret_generated(&self) -> bool {
        self.jwt_secret_generated
    }

    /// Whether tokens must carry `exp` (explicit setting, else on in production).
    pub fn require_exp(&self) -> bool {
        self.auth
            .require_exp
            .unwrap_or(self.mode == Mode::Production)
    }

    /// The file this config came from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Encryption keys as `(id, key bytes)`, the current key first; empty when
    /// encryption at rest is off (development without a key).
    pub fn encryption_keys(&self) -> Vec<(String, [u8; 32])> {
        let enc = &self.encryption;
        let current = enc
            .key
            .as_ref()
            .and_then(|k| decode_key(k).ok())
            .map(|k| (enc.key_id.clone(), k));
        current
            .into_iter()
            .chain(
                enc.previous_keys
                    .iter()
                    .filter_map(|p| decode_key(&p.key).ok().map(|k| (p.id.clone(), k))),
            )
            .collect()
    }

    /// The default provider id (explicit, else the first configured).
    pub fn default_provider_id(&self) -> Option<&str> {
        self.llm
            .default_provider
            .as_deref()
            .or_else(|| self.llm.providers.first().map(|p| p.id.as_str()))
    }

    /// The base URL for links printed at start (`public_url`, else `http://host:port`).
    pub fn public_base_url(&self, bound_port: u16) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = match self.server.host {
                    std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
                    std::net::IpAddr::V4(v4) => v4.to_string(),
                    std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                };
                format!("http://{host}:{bound_port}")
            }
        }
    }

    /// `path` under the configured prefix (`/chatbox` + `/healthz`).
    pub fn route(&self, path: &str) -> String {
        let prefix = self.server.path_prefix.trim_end_matches('/');
        format!("{prefix}{path}")
    }
}

/// Decodes an AES-256 key: 32 raw bytes (legacy format) or `base64:` + 32 bytes.
pub fn decode_key(key: &SecretString) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let text = key.expose_secret();
    let bytes = match text.strip_prefix("base64:") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("invalid base64 key: {e}"))?,
        None => text.as_bytes().to_vec(),
    };
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "must be exactly 32 bytes (or base64: of 32 bytes) for AES-256, got {} bytes",
            bytes.len()
        )
    })
}

fn generate_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(hex::encode(bytes))
}

/// Parses the file section by section so that a type error in one section does not
/// hide the problems of the others.
fn parse_sections(text: &str, errors: &mut Vec<ConfigError>) -> Settings {
    let mut settings = Settings::default();
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            errors.push(ConfigError::new(
                "config file",
                format!("invalid TOML: {e}"),
            ));
            return settings;
        }
    };
    for (key, value) in table {
        match key.as_str() {
            "mode" => section(&key, value, &mut settings.mode, errors),
            "server" => section(&key, value, &mut settings.server, errors),
            "auth" => section(&key, value, &mut settings.auth, errors),
            "encryption" => section(&key, value, &mut settings.encryption, errors),
            "storage" => section(&key, value, &mut settings.storage, errors),
            "llm" => section(&key, value, &mut settings.llm, errors),
            "rate_limits" => section(&key, value, &mut settings.rate_limits, errors),
            "websocket" => section(&key, value, &mut settings.websocket, errors),
            "sessions" => section(&key, value, &mut settings.sessions, errors),
            "uploads" => section(&key, value, &mut settings.uploads, errors),
            "logging" => section(&key, value, &mut settings.logging, errors),
            "notifications" => section(&key, value, &mut settings.notifications, errors),
            other => errors.push(ConfigError::new(
                other,
                "unknown setting (expected one of mode, server, auth, encryption, storage, llm, \
                 rate_limits, websocket, sessions, uploads, logging, notifications)",
            )),
        }
    }
    settings
}

fn section<T: DeserializeOwned>(
    name: &str,
    value: toml::Value,
    slot: &mut T,
    errors: &mut Vec<ConfigError>,
) {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => *slot = v,
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                name.to_owned()
            } else {
                format!("{name}.{path}")
            };
            errors.push(ConfigError::new(field, e.into_inner().to_string()));
        }
    }
}

/// Sets `slot` from the environment variable `name` when it is set (`get`), or reports
/// that it must be `what`.
fn parse_env<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    what: &str,
    slot: &mut T,
    errors: &mut Vec<ConfigError>,
) {
    let Some(v) = get(name) else {
        return;
    };
    match v.trim().parse() {
        Ok(value) => *slot = value,
        Err(_) => errors.push(ConfigError::new(
            format!("env {name}"),
            format!("must be {what}, got {v:?}"),
        )),
    }
}

/// Applies the environment overrides; unset or empty variables change nothing.
fn apply_env(settings: &mut Settings, env: &impl EnvSource, errors: &mut Vec<ConfigError>) {
    let get = |name: &str| env.var(name).filter(|v| !v.trim().is_empty());

    if let Some(v) = get("CHATBOX_MODE") {
        match v.trim() {
            "development" => settings.mode = Mode::Development,
            "production" => settings.mode = Mode::Production,
            other => errors.push(ConfigError::new(
                "env CHATBOX_MODE",
                format!("must be development or production, got {other:?}"),
            )),
        }
    }
    parse_env(
        &get,
        "CHATBOX_HOST",
        "an IP address",
        &mut settings.server.host,
        errors,
    );
    parse_env(
        &get,
        "CHATBOX_PORT",
        "an integer",
        &mut settings.server.port,
        errors,
    );
    if let Some(v) = get("CHATBOX_PATH_PREFIX") {
        settings.server.path_prefix = v.trim().to_owned();
    }
    if let Some(v) = get("CHATBOX_ALLOWED_ORIGINS") {
        settings.server.allowed_origins = split_list(&v);
    }
    if let Some(v) = get("CHATBOX_CORS_ALLOWED_ORIGINS") {
        settings.server.cors_allowed_origins = split_list(&v);
    }
    if let Some(v) = get("CHATBOX_SHUTDOWN_TIMEOUT") {
        match humantime::parse_duration(v.trim()) {
            Ok(d) => settings.server.shutdown_timeout = d,
            Err(e) => errors.push(ConfigError::new(
                "env CHATBOX_SHUTDOWN_TIMEOUT",
                format!("invalid duration {v:?}: {e}"),
            )),
        }
    }
    if let Some(v) = get("JWT_SECRET") {
        settings.auth.jwt_secret = Some(SecretString::from(v));
    }
    if let Some(v) = get("ENCRYPTION_KEY") {
        settings.encryption.key = Some(SecretString::from(v));
    }
    if let Some(v) = get("ENCRYPTION_KEY_ID") {
        settings.encryption.key_id = v.trim().to_owned();
    }
    if let Some(v) = get("MONGO_URI") {
        settings.storage.mongodb.uri = Some(SecretString::from(v.trim().to_owned()));
        settings.storage.backend = StorageBackend::Mongodb;
    }
    if let Some(v) = get("MONGO_DATABASE") {
        settings.storage.mongodb.database = v.trim().to_owned();
    }
    if let Some(v) = get("MONGO_COLLECTION") {
        settings.storage.mongodb.collection = v.trim().to_owned();
    }
    if let Some(v) = get("CHATBOX_EMBEDDED_PATH") {
        settings.storage.embedded_path = PathBuf::from(v.trim());
    }
    parse_env(
        &get,
        "CHATBOX_EMBEDDED_CACHE_SIZE",
        "a number of bytes",
        &mut settings.storage.embedded_cache_size,
        errors,
    );
    parse_env(
        &get,
        "CHATBOX_EMBEDDED_WRITER_NICE",
        "a whole number from 0 to 19",
        &mut settings.storage.embedded_writer_nice,
        errors,
    );
    if let Some(v) = get("CHATBOX_SESSION_RELEASE_GRACE") {
        match humantime::parse_duration(v.trim()) {
            Ok(d) => settings.sessions.release_grace = d,
            Err(e) => errors.push(ConfigError::new(
                "env CHATBOX_SESSION_RELEASE_GRACE",
                format!("invalid duration {v:?}: {e}"),
            )),
        }
    }
    parse_env(
        &get,
        "MAX_MESSAGE_SIZE",
        "a number of bytes",
        &mut settings.websocket.max_message_size,
        errors,
    );
    if let Some(v) = get("CHATBOX_LOG_FORMAT") {
        match v.trim() {
            "auto" => settings.logging.format = LogFormat::Auto,
            "text" => settings.logging.format = LogFormat::Text,
            "json" => settings.logging.format = LogFormat::Json,
            other => errors.push(ConfigError::new(
                "env CHATBOX_LOG_FORMAT",
                format!("must be auto, text or json, got {other:?}"),
            )),
        }
    }
    if let Some(v) = get("CHATBOX_LOG_LEVEL") {
        settings.logging.level = v.trim().to_owned();
    }
    for (index, provider) in settings.llm.providers.iter_mut().enumerate() {
        let by_position = format!("LLM_PROVIDER_{}_API_KEY", index + 1);
        let by_id = format!("LLM_PROVIDER_{}_API_KEY", env_key(&provider.id));
        if let Some(v) = get(&by_id).or_else(|| get(&by_position)) {
            provider.api_key = Some(SecretString::from(v.trim().to_owned()));
        }
    }
}

/// Development defaults that depend on the mode: with no provider configured, the
/// echo model answers so a fresh checkout chats with nothing installed.
fn apply_mode_defaults(settings: &mut Settings) {
    if settings.mode == Mode::Development && settings.llm.providers.is_empty() {
        settings.llm.providers.push(ProviderSettings {
            id: "echo".to_owned(),
            name: "Echo (development model)".to_owned(),
            kind: ProviderKind::Echo,
            endpoint: String::new(),
            api_key: None,
            model: String::new(),
            max_tokens: None,
            echo_delay: None,
        });
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `my-provider.v2` → `MY_PROVIDER_V2`, the env-var spelling of a provider id.
pub(crate) fn env_key(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
