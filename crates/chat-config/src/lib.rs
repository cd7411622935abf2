//! The typed configuration of the whole chatbox service (PROTOCOL §5).
//!
//! A [`Config`] can only be obtained through [`Config::load`] (file + environment) or
//! [`Config::from_toml_str`], and both validate: an invalid configuration yields
//! [`ConfigErrors`] listing **every** problem at once, each naming its field. The
//! sections ([`Settings`] and friends) are plain data that other crates read through
//! `Deref`; they accept a validated `Config`, never a raw `Settings`.
//!
//! Secrets (`jwt_secret`, encryption keys, provider API keys, the MongoDB URI) are
//! [`secrecy::SecretString`]s: their `Debug` output is redacted so they cannot reach a
//! log. This crate owns no I/O beyond reading the one config file.

mod env;
mod error;
mod load;
pub mod net;
mod settings;
mod validate;

pub use env::{EnvSource, ProcessEnv};
pub use error::{ConfigError, ConfigErrors};
pub use load::{decode_key, Config};
pub use settings::*;
pub use validate::{
    is_placeholder, jwt_secret_problem, MIN_JWT_SECRET_BYTES, PLACEHOLDER_MARKERS, WEAK_WORDS,
};
