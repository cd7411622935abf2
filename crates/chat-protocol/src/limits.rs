//! Byte and count limits on inbound frames (PROTOCOL §3). Limits count UTF-8 bytes,
//! not characters, because they bound memory and storage.

use std::time::Duration;

/// `session_id` (server ids are 32 hex; clients may propose others, which the
/// router replaces).
pub const MAX_SESSION_ID_BYTES: usize = 128;
/// `content` of any frame.
pub const MAX_CONTENT_BYTES: usize = 10_000;
/// `file_id`.
pub const MAX_FILE_ID_BYTES: usize = 255;
/// `file_url` (which must also be `https`).
pub const MAX_FILE_URL_BYTES: usize = 2048;
/// `model_id`.
pub const MAX_MODEL_ID_BYTES: usize = 100;
/// Each `metadata` value.
pub const MAX_METADATA_VALUE_BYTES: usize = 1000;
/// Added: number of `metadata` entries. The protocol uses a handful of keys
/// (`seq`, `done`, `streaming`, `last_seq`); 32 leaves room for client extras while
/// bounding what one frame can make the server hold (32 × ~1 KB).
pub const MAX_METADATA_ENTRIES: usize = 32;
/// Added: each `metadata` key (non-empty, at most this many bytes).
pub const MAX_METADATA_KEY_BYTES: usize = 64;
/// How far in the future a client `timestamp` may be (clock skew allowance).
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(60);
