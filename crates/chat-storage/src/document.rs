//! The BSON document of one session (PROTOCOL §4, legacy field names) and its
//! conversion from and to [`SessionSnapshot`], encrypting `nm` and message `content`.

use std::collections::BTreeMap;

use bson::{doc, Bson, DateTime as BsonDateTime, Document};
use chat_session::model::{Sender, SessionSnapshot, StoredMessage};
use chrono::{DateTime, Utc};

use crate::encryption::Encryptor;
use crate::error::StoreError;
use crate::store::SessionSummary;

/// The BSON field names. Pinned by a schema test: renaming one breaks existing data.
pub mod fields {
    /// Session id.
    pub const ID: &str = "_id";
    /// Owner's user id.
    pub const USER_ID: &str = "uid";
    /// Session name (encrypted when a key is set).
    pub const NAME: &str = "nm";
    /// Selected provider id.
    pub const MODEL_ID: &str = "modelId";
    /// Messages array.
    pub const MESSAGES: &str = "msgs";
    /// Start time.
    pub const START: &str = "ts";
    /// End time; absent while active.
    pub const END: &str = "endTs";
    /// Duration in seconds; written when the session ends.
    pub const DURATION: &str = "dur";
    /// Last activity.
    pub const LAST_ACTIVITY: &str = "lastActivity";
    /// Whether an admin assists.
    pub const ADMIN_ASSISTED: &str = "adminAssisted";
    /// Assisting admin id.
    pub const ASSISTING_ADMIN_ID: &str = "assistingAdminId";
    /// Assisting admin display name.
    pub const ASSISTING_ADMIN_NAME: &str = "assistingAdminName";
    /// Help requested.
    pub const HELP_REQUESTED: &str = "helpRequested";
    /// Total tokens.
    pub const TOTAL_TOKENS: &str = "totalTokens";
    /// Slowest reply (ms).
    pub const MAX_RESP_TIME: &str = "maxRespTime";
    /// Mean reply time (ms).
    pub const AVG_RESP_TIME: &str = "avgRespTime";
    /// Reply count of the mean (new; absent in legacy documents).
    pub const RESP_COUNT: &str = "respCount";
    /// Share token; absent when not shared (sparse unique index).
    pub const SHARE_TOKEN: &str = "shareToken";
    /// Marker `true` on active sessions (new): real MongoDB partial indexes cannot
    /// express "`endTs` does not exist", so the one-active-session-per-user index is
    /// a unique index on `uid` filtered by `active: true`. Removed when the session
    /// ends.
    pub const ACTIVE: &str = "active";

    /// Message content (encrypted when a key is set).
    pub const MSG_CONTENT: &str = "content";
    /// Message time.
    pub const MSG_TS: &str = "ts";
    /// Message sender (`user|ai|admin|system`).
    pub const MSG_SENDER: &str = "sender";
    /// Uploaded file id.
    pub const MSG_FILE_ID: &str = "fileId";
    /// Uploaded file URL.
    pub const MSG_FILE_URL: &str = "fileUrl";
    /// String metadata.
    pub const MSG_META: &str = "meta";
}

use fields as f;

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The stored BSON date of a chrono time (millisecond precision).
pub fn bson_time(t: DateTime<Utc>) -> BsonDateTime {
    BsonDateTime::from_chrono(t)
}

/// The `msgs` element of a message.
pub fn message_to_bson(m: &StoredMessage, enc: &Encryptor) -> Result<Document, StoreError> {
    let mut d = doc! {
        f::MSG_CONTENT: enc.encrypt(&m.content)?,
        f::MSG_TS: bson_time(m.timestamp),
        f::MSG_SENDER: m.sender.as_str(),
    };
    if let Some(id) = &m.file_id {
        d.insert(f::MSG_FILE_ID, id.as_str());
    }
    if let Some(url) = &m.file_url {
        d.insert(f::MSG_FILE_URL, url.as_str());
    }
    if !m.metadata.is_empty() {
        let meta: Document = m
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), Bson::String(v.clone())))
            .collect();
        d.insert(f::MSG_META, meta);
    }
    Ok(d)
}

/// The full document of a session (including the `active` marker while active).
pub fn to_document(s: &SessionSnapshot, enc: &Encryptor) -> Result<Document, StoreError> {
    let msgs = s
        .messages
        .iter()
        .map(|m| message_to_bson(m, enc).map(Bson::Document))
        .collect::<Result<Vec<_>, _>>()?;
    let mut d = doc! {
        f::ID: s.id.as_str(),
        f::USER_ID: s.user_id.as_str(),
        f::NAME: enc.encrypt(&s.name)?,
        f::MODEL_ID: s.model_id.as_str(),
        f::MESSAGES: msgs,
        f::START: bson_time(s.start_time),
        f::LAST_ACTIVITY: bson_time(s.last_activity),
        f::ADMIN_ASSISTED: s.admin_assisted,
        f::HELP_REQUESTED: s.help_requested,
        f::TOTAL_TOKENS: to_i64(s.total_tokens),
        f::MAX_RESP_TIME: to_i64(s.max_response_time_ms),
        f::AVG_RESP_TIME: to_i64(s.avg_response_time_ms),
        f::RESP_COUNT: to_i64(s.response_count),
    };
    match s.end_time {
        Some(end) => {
            d.insert(f::END, bson_time(end));
            d.insert(f::DURATION, s.duration_secs(end));
        }
        None => {
            d.insert(f::ACTIVE, true);
        }
    }
    if let Some(id) = &s.assisting_admin_id {
        d.insert(f::ASSISTING_ADMIN_ID, id.as_str());
    }
    if let Some(name) = &s.assisting_admin_name {
        d.insert(f::ASSISTING_ADMIN_NAME, name.as_str());
    }
    if let Some(token) = &s.share_token {
        d.insert(f::SHARE_TOKEN, token.as_str());
    }
    Ok(d)
}

fn corrupt(field: &str, id: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "field {field:?} of session {id:?} is missing or mistyped"
    ))
}

fn get_str(d: &Document, field: &str, id: &str) -> Result<String, StoreError> {
    match d.get(field) {
        Some(Bson::String(s)) => Ok(s.clone()),
        _ => Err(corrupt(field, id)),
    }
}

fn opt_str(d: &Document, field: &str) -> Option<String> {
    match d.get(field) {
        Some(Bson::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn get_time(d: &Document, field: &str, id: &str) -> Result<DateTime<Utc>, StoreError> {
    opt_time(d, field).ok_or_else(|| corrupt(field, id))
}

fn opt_time(d: &Document, field: &str) -> Option<DateTime<Utc>> {
    match d.get(field) {
        Some(Bson::DateTime(t)) => Some(t.to_chrono()),
        _ => None,
    }
}

/// Numbers written by the legacy service may be int32, int64 or double.
fn get_u64(d: &Document, field: &str) -> u64 {
    match d.get(field) {
        Some(Bson::Int32(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Bson::Int64(v)) => u64::try_from(*v).unwrap_or(0),
        Some(Bson::Double(v)) if v.is_finite() && *v > 0.0 => *v as u64,
        _ => 0,
    }
}

fn get_bool(d: &Document, field: &str) -> bool {
    matches!(d.get(field), Some(Bson::Boolean(true)))
}

fn parse_sender(s: &str) -> Option<Sender> {
    Some(match s {
        "user" => Sender::User,
        "ai" => Sender::Ai,
        "admin" => Sender::Admin,
        "system" => Sender::System,
        _ => return None,
    })
}

/// A message from its `msgs` element.
pub fn message_from_bson(
    d: &Document,
    enc: &Encryptor,
    id: &str,
) -> Result<StoredMessage, StoreError> {
    let sender =
        parse_sender(&get_str(d, f::MSG_SENDER, id)?).ok_or_else(|| corrupt(f::MSG_SENDER, id))?;
    let metadata = match d.get(f::MSG_META) {
        Some(Bson::Document(meta)) => meta
            .iter()
            .filter_map(|(k, v)| match v {
                Bson::String(s) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    Ok(StoredMessage {
        content: enc.decrypt(&get_str(d, f::MSG_CONTENT, id)?)?,
        timestamp: get_time(d, f::MSG_TS, id)?,
        sender,
        file_id: opt_str(d, f::MSG_FILE_ID),
        file_url: opt_str(d, f::MSG_FILE_URL),
        metadata,
    })
}

/// The summary fields of a document (`msgs` may be absent; `message_count` is given).
pub fn summary_from_document(
    d: &Document,
    enc: &Encryptor,
    message_count: u64,
) -> Result<SessionSummary, StoreError> {
    let id = get_str(d, f::ID, "?")?;
    let start_time = get_time(d, f::START, &id)?;
    let name = match d.get(f::NAME) {
        Some(Bson::String(s)) => enc.decrypt(s)?,
        _ => String::new(),
    };
    Ok(SessionSummary {
        user_id: get_str(d, f::USER_ID, &id)?,
        name,
        model_id: opt_str(d, f::MODEL_ID).unwrap_or_default(),
        start_time,
        end_time: opt_time(d, f::END),
        last_activity: opt_time(d, f::LAST_ACTIVITY).unwrap_or(start_time),
        admin_assisted: get_bool(d, f::ADMIN_ASSISTED),
        assisting_admin_id: opt_str(d, f::ASSISTING_ADMIN_ID),
        assisting_admin_name: opt_str(d, f::ASSISTING_ADMIN_NAME),
        help_requested: get_bool(d, f::HELP_REQUESTED),
        total_tokens: get_u64(d, f::TOTAL_TOKENS),
        max_response_time_ms: get_u64(d, f::MAX_RESP_TIME),
        avg_response_time_ms: get_u64(d, f::AVG_RESP_TIME),
        response_count: get_u64(d, f::RESP_COUNT),
        share_token: opt_str(d, f::SHARE_TOKEN),
        message_count,
        id,
    })
}

/// The full session from its document.
pub fn from_document(d: &Document, enc: &Encryptor) -> Result<SessionSnapshot, StoreError> {
    let msgs = match d.get(f::MESSAGES) {
        Some(Bson::Array(items)) => items.as_slice(),
        None | Some(Bson::Null) => &[],
        Some(_) => return Err(corrupt(f::MESSAGES, &opt_str(d, f::ID).unwrap_or_default())),
    };
    let summary = summary_from_document(d, enc, msgs.len() as u64)?;
    let messages = msgs
        .iter()
        .map(|m| match m {
            Bson::Document(m) => message_from_bson(m, enc, &summary.id),
            _ => Err(corrupt(f::MESSAGES, &summary.id)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SessionSnapshot {
        id: summary.id,
        user_id: summary.user_id,
        name: summary.name,
        model_id: summary.model_id,
        messages,
        start_time: summary.start_time,
        end_time: summary.end_time,
        last_activity: summary.last_activity,
        admin_assisted: summary.admin_assisted,
        assisting_admin_id: summary.assisting_admin_id,
        assisting_admin_name: summary.assisting_admin_name,
        help_requested: summary.help_requested,
        total_tokens: summary.total_tokens,
        max_response_time_ms: summary.max_response_time_ms,
        avg_response_time_ms: summary.avg_response_time_ms,
        response_count: summary.response_count,
        share_token: summary.share_token,
    })
}
