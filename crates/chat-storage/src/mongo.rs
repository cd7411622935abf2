//! `MongoStore`: the production store on the official `mongodb` driver, with the
//! legacy `chat.sessions` schema (PROTOCOL §4), its indexes, a deadline and retry
//! policy per operation, and encryption at rest.

use std::time::Duration;

use async_trait::async_trait;
use bson::{doc, Bson, Document};
use chat_session::model::{SessionSnapshot, StoredMessage};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::error::{ErrorKind, WriteFailure, RETRYABLE_WRITE_ERROR, TRANSIENT_TRANSACTION_ERROR};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};
use secrecy::ExposeSecret;

use crate::document::{self, bson_time, fields as f};
use crate::encryption::Encryptor;
use crate::error::StoreError;
use crate::query::MetricsAccumulator;
use crate::retry::RetryPolicy;
use crate::store::{
    AdminQuery, Page, SessionStore, SessionSummary, SortKey, SortOrder, StatusFilter, StoreHealth,
    StoreMetrics, UsageStats,
};

/// Name of the unique partial index enforcing one active session per user.
pub const ACTIVE_SESSION_INDEX: &str = "idx_user_active_session";

/// Server error codes the driver specifications call retryable (network trouble,
/// elections, shutdowns). Classification is by code and label, never by message.
const TRANSIENT_CODES: [i32; 16] = [
    6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 10058, 50, 64,
];
const DUPLICATE_KEY: i32 = 11000;

/// Field the list pipelines compute for the message count.
const COUNT_FIELD: &str = "__msgCount";
/// Field the list pipelines compute for the sort key.
const SORT_FIELD: &str = "__sortKey";

/// The storage error of a driver error.
pub fn classify(error: &mongodb::error::Error) -> StoreError {
    let text = error.to_string();
    if error.contains_label(RETRYABLE_WRITE_ERROR)
        || error.contains_label(TRANSIENT_TRANSACTION_ERROR)
    {
        return StoreError::Unavailable(text);
    }
    match error.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => StoreError::Unavailable(text),
        ErrorKind::Command(c) if TRANSIENT_CODES.contains(&c.code) => StoreError::Unavailable(text),
        ErrorKind::Command(c) if c.code == DUPLICATE_KEY => StoreError::DuplicateKey(text),
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY => {
            StoreError::DuplicateKey(text)
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(w))
            if TRANSIENT_CODES.contains(&w.code) =>
        {
            StoreError::Unavailable(text)
        }
        _ => StoreError::Rejected(text),
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct MongoOptions {
    /// Connection string.
    pub uri: String,
    /// Database name (legacy `chat`).
    pub database: String,
    /// Collection name (legacy `sessions`).
    pub collection: String,
    /// Deadline for establishing a connection.
    pub connect_timeout: Duration,
}

impl MongoOptions {
    /// The options of the `[storage.mongodb]` section; `None` without a URI.
    pub fn from_settings(settings: &chat_config::MongoSettings) -> Option<Self> {
        Some(Self {
            uri: settings.uri.as_ref()?.expose_secret().to_owned(),
            database: settings.database.clone(),
            collection: settings.collection.clone(),
            connect_timeout: settings.connect_timeout,
        })
    }
}

/// Sessions in a MongoDB collection with the legacy schema.
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: Client,
    sessions: Collection<Document>,
    enc: Encryptor,
    retry: RetryPolicy,
}

impl MongoStore {
    /// Connects, creates the indexes of PROTOCOL §4 and marks legacy active sessions
    /// (see [`fields::ACTIVE`](crate::document::fields::ACTIVE)). Fails when the
    /// database cannot be reached within the retry policy.
    pub async fn connect(
        options: MongoOptions,
        enc: Encryptor,
        retry: RetryPolicy,
    ) -> Result<Self, StoreError> {
        let mut client_options = ClientOptions::parse(&options.uri)
            .await
            .map_err(|e| StoreError::Open(format!("invalid MongoDB URI: {}", e.kind)))?;
        client_options.app_name = Some("chatbox".to_owned());
        client_options.connect_timeout = Some(options.connect_timeout);
        // Server selection must give up within one attempt so the retry policy, not
        // the driver, decides what happens next.
        client_options.server_selection_timeout = Some(retry.attempt_timeout);
        let client =
            Client::with_options(client_options).map_err(|e| StoreError::Open(e.to_string()))?;
        let sessions = client
            .database(&options.database)
            .collection::<Document>(&options.collection);
        let store = Self {
            client,
            sessions,
            enc,
            retry,
        };
        store.ensure_indexes().await?;
        store.mark_legacy_active_sessions().await?;
        Ok(store)
    }

    /// The raw collection (tests inspect the stored documents through it).
    pub fn collection(&self) -> &Collection<Document> {
        &self.sessions
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let index = |keys: Document, options: IndexOptions| {
            IndexModel::builder().keys(keys).options(options).build()
        };
        let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
        let models = vec![
            index(doc! { f::USER_ID: 1 }, named("idx_user_id")),
            index(doc! { f::START: -1 }, named("idx_start_time")),
            index(doc! { f::ADMIN_ASSISTED: 1 }, named("idx_admin_assisted")),
            index(
                doc! { f::USER_ID: 1, f::START: -1 },
                named("idx_user_start_time"),
            ),
            index(
                doc! { f::SHARE_TOKEN: 1 },
                IndexOptions::builder()
                    .name("idx_share_token".to_owned())
                    .unique(true)
                    .sparse(true)
                    .build(),
            ),
            index(
                doc! { f::USER_ID: 1 },
                IndexOptions::builder()
                    .name(ACTIVE_SESSION_INDEX.to_owned())
                    .unique(true)
                    .partial_filter_expression(doc! { f::ACTIVE: true })
                    .build(),
            ),
        ];
        let sessions = self.sessions.clone();
        self.retry
            .run("create_indexes", || {
                let sessions = sessions.clone();
                let models = models.clone();
                async move {
                    sessions
                        .create_indexes(models)
                        .await
                        .map(|_| ())
                        .map_err(|e| classify(&e))
                }
            })
            .await
    }

    /// Legacy documents have no `active` marker: mark active ones so the unique index
    /// covers them. When a user has several (possible in legacy data), the newest
    /// stays active and the older ones are ended at their last activity.
    async fn mark_legacy_active_sessions(&self) -> Result<(), StoreError> {
        let filter = doc! { f::END: { "$exists": false }, f::ACTIVE: { "$exists": false } };
        let legacy: Vec<Document> = self
            .retry
            .run("find_legacy_active", || {
                let sessions = self.sessions.clone();
                let filter = filter.clone();
                async move {
                    sessions
                        .find(filter)
                        .projection(doc! { f::ID: 1, f::START: 1, f::LAST_ACTIVITY: 1 })
                        .sort(doc! { f::START: -1 })
                        .await
                        .map_err(|e| classify(&e))?
                        .try_collect()
                        .await
                        .map_err(|e| classify(&e))
                }
            })
            .await?;
        for d in legacy {
            let Some(Bson::String(id)) = d.get(f::ID).cloned() else {
                continue;
            };
            let marked = self
                .update(
                    "mark_legacy_active",
                    doc! { f::ID: &id },
                    doc! { "$set": { f::ACTIVE: true } },
                )
                .await;
            match marked {
                Ok(_) => {}
                Err(StoreError::DuplicateKey(_)) => {
                    let start = d.get_datetime(f::START).ok().map(|t| t.to_chrono());
                    let end = d
                        .get_datetime(f::LAST_ACTIVITY)
                        .ok()
                        .map(|t| t.to_chrono())
                        .or(start)
                        .unwrap_or_else(Utc::now);
                    tracing::warn!(session_id = %id, "legacy user has several active sessions; ending the older one");
                    self.end_session(&id, end).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Ends an active session by replacing its document inside a transaction: the
    /// ended document (no `active` marker) is inserted in place of the active one.
    /// Equivalent to `$unset: {active}` on real MongoDB, but a delete + insert also
    /// leaves correct unique-index entries on servers that do not remove index keys
    /// when an update drops a field (SecantusDB 0.5.x does not). Standalone servers
    /// without transactions get [`EndOutcome::TransactionsUnsupported`].
    async fn end_in_transaction(
        &self,
        id: &str,
        end: bson::DateTime,
        dur: i64,
    ) -> Result<EndOutcome, StoreError> {
        self.retry
            .run("end_session", || {
                let (client, sessions) = (self.client.clone(), self.sessions.clone());
                let id = id.to_owned();
                async move {
                    let mut txn = match client.start_session().await {
                        Ok(txn) => txn,
                        Err(e) if transactions_unsupported(&e) => {
                            return Ok(EndOutcome::TransactionsUnsupported)
                        }
                        Err(e) => return Err(classify(&e)),
                    };
                    match txn.start_transaction().await {
                        Ok(()) => {}
                        Err(e) if transactions_unsupported(&e) => {
                            return Ok(EndOutcome::TransactionsUnsupported)
                        }
                        Err(e) => return Err(classify(&e)),
                    }
                    let found = sessions
                        .find_one(doc! { f::ID: &id, f::END: { "$exists": false } })
                        .session(&mut txn)
                        .await;
                    let mut document = match found {
                        Ok(Some(d)) => d,
                        Ok(None) => {
                            let _ = txn.abort_transaction().await;
                            return Ok(EndOutcome::AlreadyEnded);
                        }
                        Err(e) if transactions_unsupported(&e) => {
                            return Ok(EndOutcome::TransactionsUnsupported)
                        }
                        Err(e) => return Err(classify(&e)),
                    };
                    document.remove(f::ACTIVE);
                    document.insert(f::END, end);
                    document.insert(f::DURATION, dur);
                    let later = match document.get(f::LAST_ACTIVITY) {
                        Some(Bson::DateTime(last)) => (*last).max(end),
                        _ => end,
                    };
                    document.insert(f::LAST_ACTIVITY, later);
                    sessions
                        .delete_one(doc! { f::ID: &id })
                        .session(&mut txn)
                        .await
                        .map_err(|e| classify(&e))?;
                    sessions
                        .insert_one(document)
                        .session(&mut txn)
                        .await
                        .map_err(|e| classify(&e))?;
                    txn.commit_transaction().await.map_err(|e| classify(&e))?;
                    Ok(EndOutcome::Ended)
                }
            })
            .await
    }

    /// `update_one` with the retry policy; returns the matched count.
    async fn update(
        &self,
        op: &'static str,
        filter: Document,
        update: Document,
    ) -> Result<u64, StoreError> {
        self.retry
            .run(op, || {
                let sessions = self.sessions.clone();
                let (filter, update) = (filter.clone(), update.clone());
                async move {
                    sessions
                        .update_one(filter, update)
                        .await
                        .map(|r| r.matched_count)
                        .map_err(|e| classify(&e))
                }
            })
            .await
    }

    /// `update_one` on `_id` that must match a session.
    async fn update_existing(
        &self,
        op: &'static str,
        id: &str,
        update: Document,
    ) -> Result<(), StoreError> {
        match self.update(op, doc! { f::ID: id }, update).await? {
            0 => Err(StoreError::NotFound(id.to_owned())),
            _ => Ok(()),
        }
    }

    async fn find_one(
        &self,
        op: &'static str,
        filter: Document,
        projection: Option<Document>,
    ) -> Result<Option<Document>, StoreError> {
        self.retry
            .run(op, || {
                let sessions = self.sessions.clone();
                let (filter, projection) = (filter.clone(), projection.clone());
                async move {
                    let mut find = sessions.find_one(filter);
                    if let Some(p) = projection {
                        find = find.projection(p);
                    }
                    find.await.map_err(|e| classify(&e))
                }
            })
            .await
    }

    async fn find_many(
        &self,
        op: &'static str,
        filter: Document,
        sort: Option<Document>,
    ) -> Result<Vec<Document>, StoreError> {
        self.retry
            .run(op, || {
                let sessions = self.sessions.clone();
                let (filter, sort) = (filter.clone(), sort.clone());
                async move {
                    let mut find = sessions.find(filter);
                    if let Some(s) = sort {
                        find = find.sort(s);
                    }
                    find.await
                        .map_err(|e| classify(&e))?
                        .try_collect()
                        .await
                        .map_err(|e| classify(&e))
                }
            })
            .await
    }

    async fn aggregate(
        &self,
        op: &'static str,
        pipeline: Vec<Document>,
    ) -> Result<Vec<Document>, StoreError> {
        self.retry
            .run(op, || {
                let sessions = self.sessions.clone();
                let pipeline = pipeline.clone();
                async move {
                    sessions
                        .aggregate(pipeline)
                        .await
                        .map_err(|e| classify(&e))?
                        .try_collect()
                        .await
                        .map_err(|e| classify(&e))
                }
            })
            .await
    }

    /// Summaries matching `filter`, ordered and paged, without loading messages.
    async fn summaries(
        &self,
        op: &'static str,
        filter: Document,
        key: SortKey,
        order: SortOrder,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let dir = match order {
            SortOrder::Asc => 1,
            SortOrder::Desc => -1,
        };
        let sort_value = match key {
            SortKey::StartTime => Bson::String(format!("${}", f::START)),
            SortKey::EndTime => Bson::String(format!("${}", f::END)),
            SortKey::MessageCount => Bson::String(format!("${COUNT_FIELD}")),
            SortKey::TotalTokens => {
                Bson::Document(doc! { "$ifNull": [format!("${}", f::TOTAL_TOKENS), 0] })
            }
            SortKey::UserId => Bson::String(format!("${}", f::USER_ID)),
            SortKey::LastActivity => Bson::Document(
                doc! { "$ifNull": [format!("${}", f::LAST_ACTIVITY), format!("${}", f::START)] },
            ),
            SortKey::Duration => {
                Bson::Document(doc! { "$ifNull": [format!("${}", f::DURATION), 0] })
            }
        };
        let pipeline = vec![
            doc! { "$match": filter },
            doc! { "$addFields": {
                COUNT_FIELD: { "$size": { "$ifNull": [format!("${}", f::MESSAGES), []] } },
            } },
            doc! { "$addFields": { SORT_FIELD: sort_value } },
            doc! { "$sort": { SORT_FIELD: dir, f::ID: 1 } },
            doc! { "$skip": i64::try_from(skip).unwrap_or(i64::MAX) },
            doc! { "$limit": i64::try_from(limit).unwrap_or(i64::MAX) },
            doc! { "$project": { f::MESSAGES: 0 } },
        ];
        self.aggregate(op, pipeline)
            .await?
            .iter()
            .map(|d| {
                let count = match d.get(COUNT_FIELD) {
                    Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
                    Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
                    _ => 0,
                };
                document::summary_from_document(d, &self.enc, count)
            })
            .collect()
    }
}

/// What [`MongoStore::end_in_transaction`] did.
enum EndOutcome {
    Ended,
    AlreadyEnded,
    TransactionsUnsupported,
}

/// Standalone servers answer transactions with `IllegalOperation` (code 20).
fn transactions_unsupported(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::SessionsNotSupported => true,
        ErrorKind::Command(c) => c.code == 20,
        _ => false,
    }
}

fn admin_filter(q: &AdminQuery) -> Document {
    let mut filter = Document::new();
    if let Some(user) = &q.user_id {
        filter.insert(f::USER_ID, user.as_str());
    }
    match q.status {
        Some(StatusFilter::Active) => {
            filter.insert(f::END, doc! { "$exists": false });
        }
        Some(StatusFilter::Ended) => {
            filter.insert(f::END, doc! { "$exists": true });
        }
        None => {}
    }
    if let Some(assisted) = q.admin_assisted {
        // Legacy documents may lack the field: treat missing as "not assisted".
        if assisted {
            filter.insert(f::ADMIN_ASSISTED, true);
        } else {
            filter.insert(f::ADMIN_ASSISTED, doc! { "$ne": true });
        }
    }
    let mut range = Document::new();
    if let Some(from) = q.start_time_from {
        range.insert("$gte", bson_time(from));
    }
    if let Some(to) = q.start_time_to {
        range.insert("$lte", bson_time(to));
    }
    if !range.is_empty() {
        filter.insert(f::START, range);
    }
    filter
}

/// The statistics as the fields of a `$set`.
fn stats_fields(stats: UsageStats) -> Document {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    doc! {
        f::TOTAL_TOKENS: n(stats.total_tokens),
        f::MAX_RESP_TIME: n(stats.max_response_time_ms),
        f::AVG_RESP_TIME: n(stats.avg_response_time_ms),
        f::RESP_COUNT: n(stats.response_count),
    }
}

#[async_trait]
impl SessionStore for MongoStore {
    async fn create_session(&self, session: &SessionSnapshot) -> Result<(), StoreError> {
        let active = session.is_active();
        if active {
            // Legacy active documents predate the `active` marker and its index.
            let existing = self
                .find_one(
                    "create_session",
                    doc! { f::USER_ID: &session.user_id, f::END: { "$exists": false }, f::ID: { "$ne": &session.id } },
                    Some(doc! { f::ID: 1 }),
                )
                .await?;
            if let Some(Bson::String(existing_id)) = existing.and_then(|d| d.get(f::ID).cloned()) {
                return Err(StoreError::ActiveSessionExists { existing_id });
            }
        }
        let document = document::to_document(session, &self.enc)?;
        let inserted = self
            .retry
            .run("insert_session", || {
                let sessions = self.sessions.clone();
                let document = document.clone();
                async move {
                    sessions
                        .insert_one(document)
                        .await
                        .map(|_| ())
                        .map_err(|e| classify(&e))
                }
            })
            .await;
        match inserted {
            Err(StoreError::DuplicateKey(detail)) => {
                let same_id = self
                    .find_one(
                        "create_session",
                        doc! { f::ID: &session.id },
                        Some(doc! { f::USER_ID: 1 }),
                    )
                    .await?;
                if let Some(d) = same_id {
                    // A retried insert whose first attempt did land is not a conflict.
                    return match d.get_str(f::USER_ID) {
                        Ok(uid) if uid == session.user_id => Ok(()),
                        _ => Err(StoreError::DuplicateId(session.id.clone())),
                    };
                }
                if active {
                    let existing = self
                        .find_one(
                            "create_session",
                            doc! { f::USER_ID: &session.user_id, f::END: { "$exists": false } },
                            Some(doc! { f::ID: 1 }),
                        )
                        .await?;
                    if let Some(Bson::String(existing_id)) =
                        existing.and_then(|d| d.get(f::ID).cloned())
                    {
                        return Err(StoreError::ActiveSessionExists { existing_id });
                    }
                }
                Err(StoreError::DuplicateKey(detail))
            }
            other => other,
        }
    }

    async fn append_message(&self, id: &str, message: &StoredMessage) -> Result<(), StoreError> {
        let element = document::message_to_bson(message, &self.enc)?;
        self.update_existing(
            "append_message",
            id,
            doc! {
                "$push": { f::MESSAGES: element },
                "$max": { f::LAST_ACTIVITY: bson_time(message.timestamp) },
            },
        )
        .await
    }

    /// One update: `$push` of the reply, `$max` of `lastActivity`, `$set` of the
    /// statistics.
    async fn append_reply(
        &self,
        id: &str,
        reply: &StoredMessage,
        stats: Option<UsageStats>,
    ) -> Result<(), StoreError> {
        let element = document::message_to_bson(reply, &self.enc)?;
        let mut update = doc! {
            "$push": { f::MESSAGES: element },
            "$max": { f::LAST_ACTIVITY: bson_time(reply.timestamp) },
        };
        if let Some(s) = stats {
            update.insert("$set", stats_fields(s));
        }
        self.update_existing("append_reply", id, update).await
    }

    async fn update_name(&self, id: &str, name: &str) -> Result<(), StoreError> {
        let name = self.enc.encrypt(name)?;
        self.update_existing("update_name", id, doc! { "$set": { f::NAME: name } })
            .await
    }

    async fn update_model(&self, id: &str, model_id: &str) -> Result<(), StoreError> {
        self.update_existing(
            "update_model",
            id,
            doc! { "$set": { f::MODEL_ID: model_id } },
        )
        .await
    }

    async fn update_stats(
        &self,
        id: &str,
        total_tokens: u64,
        max_response_time_ms: u64,
        avg_response_time_ms: u64,
        response_count: u64,
    ) -> Result<(), StoreError> {
        let stats = UsageStats {
            total_tokens,
            max_response_time_ms,
            avg_response_time_ms,
            response_count,
        };
        self.update_existing("update_stats", id, doc! { "$set": stats_fields(stats) })
            .await
    }

    async fn update_assistance<'a>(
        &self,
        id: &str,
        admin_id: Option<&'a str>,
        admin_name: Option<&'a str>,
    ) -> Result<(), StoreError> {
        let mut set = doc! { f::ADMIN_ASSISTED: admin_id.is_some() };
        let mut unset = Document::new();
        match admin_id {
            Some(a) => set.insert(f::ASSISTING_ADMIN_ID, a),
            None => unset.insert(f::ASSISTING_ADMIN_ID, ""),
        };
        match admin_name.filter(|_| admin_id.is_some()) {
            Some(n) => set.insert(f::ASSISTING_ADMIN_NAME, n),
            None => unset.insert(f::ASSISTING_ADMIN_NAME, ""),
        };
        let mut update = doc! { "$set": set };
        if !unset.is_empty() {
            update.insert("$unset", unset);
        }
        self.update_existing("update_assistance", id, update).await
    }

    async fn set_help_requested(&self, id: &str, requested: bool) -> Result<(), StoreError> {
        self.update_existing(
            "set_help_requested",
            id,
            doc! { "$set": { f::HELP_REQUESTED: requested } },
        )
        .await
    }

    async fn end_session(
        &self,
        id: &str,
        end_time: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let projection = doc! { f::START: 1, f::END: 1 };
        let current = self
            .find_one("end_session", doc! { f::ID: id }, Some(projection.clone()))
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        if let Ok(ended) = current.get_datetime(f::END) {
            return Ok(ended.to_chrono());
        }
        let start = current
            .get_datetime(f::START)
            .map(|t| t.to_chrono())
            .unwrap_or(end_time);
        let end = bson_time(end_time);
        let dur = (end.to_chrono() - start).num_seconds().max(0);
        let ended_now = match self.end_in_transaction(id, end, dur).await? {
            EndOutcome::Ended => true,
            EndOutcome::AlreadyEnded => false,
            EndOutcome::TransactionsUnsupported => {
                let matched = self
                    .update(
                        "end_session",
                        doc! { f::ID: id, f::END: { "$exists": false } },
                        doc! {
                            "$set": { f::END: end, f::DURATION: dur },
                            "$max": { f::LAST_ACTIVITY: end },
                            "$unset": { f::ACTIVE: "" },
                        },
                    )
                    .await?;
                matched == 1
            }
        };
        if ended_now {
            return Ok(end.to_chrono());
        }
        // Ended concurrently: the first end time wins.
        let current = self
            .find_one("end_session", doc! { f::ID: id }, Some(projection))
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        current
            .get_datetime(f::END)
            .map(|t| t.to_chrono())
            .map_err(|_| StoreError::Corrupt(format!("session {id} has no end time after ending")))
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionSnapshot>, StoreError> {
        self.find_one("get_session", doc! { f::ID: id }, None)
            .await?
            .map(|d| document::from_document(&d, &self.enc))
            .transpose()
    }

    async fn get_by_share_token(&self, token: &str) -> Result<Option<SessionSnapshot>, StoreError> {
        if token.is_empty() {
            return Ok(None);
        }
        self.find_one("get_by_share_token", doc! { f::SHARE_TOKEN: token }, None)
            .await?
            .map(|d| document::from_document(&d, &self.enc))
            .transpose()
    }

    async fn set_share_token(&self, id: &str, token: &str) -> Result<String, StoreError> {
        let matched = self
            .update(
                "set_share_token",
                doc! { f::ID: id, f::SHARE_TOKEN: { "$exists": false } },
                doc! { "$set": { f::SHARE_TOKEN: token } },
            )
            .await?;
        if matched == 1 {
            return Ok(token.to_owned());
        }
        let current = self
            .find_one(
                "set_share_token",
                doc! { f::ID: id },
                Some(doc! { f::SHARE_TOKEN: 1 }),
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        current
            .get_str(f::SHARE_TOKEN)
            .map(str::to_owned)
            .map_err(|_| StoreError::Corrupt(format!("session {id} has a malformed share token")))
    }

    async fn revoke_share_token(&self, id: &str) -> Result<(), StoreError> {
        self.update_existing(
            "revoke_share_token",
            id,
            doc! { "$unset": { f::SHARE_TOKEN: "" } },
        )
        .await
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<(Vec<SessionSummary>, bool), StoreError> {
        let mut items = self
            .summaries(
                "list_user_sessions",
                doc! { f::USER_ID: user_id },
                SortKey::StartTime,
                SortOrder::Desc,
                0,
                u64::from(limit) + 1,
            )
            .await?;
        let truncated = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok((items, truncated))
    }

    async fn admin_list(&self, query: &AdminQuery) -> Result<Page, StoreError> {
        let filter = admin_filter(query);
        let items = self
            .summaries(
                "admin_list",
                filter.clone(),
                query.sort_by,
                query.sort_order,
                query.offset,
                u64::from(query.limit),
            )
            .await?;
        let total = self
            .retry
            .run("admin_count", || {
                let sessions = self.sessions.clone();
                let filter = filter.clone();
                async move {
                    sessions
                        .count_documents(filter)
                        .await
                        .map_err(|e| classify(&e))
                }
            })
            .await?;
        Ok(Page { items, total })
    }

    async fn metrics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<StoreMetrics, StoreError> {
        let filter = doc! { f::START: { "$gte": bson_time(from), "$lte": bson_time(to) } };
        let projection = doc! {
            f::END: 1, f::ADMIN_ASSISTED: 1, f::TOTAL_TOKENS: 1, f::MAX_RESP_TIME: 1,
            f::AVG_RESP_TIME: 1, f::RESP_COUNT: 1,
        };
        // Summed client-side while streaming: constant memory, and the same arithmetic
        // as the embedded store.
        self.retry
            .run("metrics", || {
                let sessions = self.sessions.clone();
                let (filter, projection) = (filter.clone(), projection.clone());
                async move {
                    let mut cursor = sessions
                        .find(filter)
                        .projection(projection)
                        .await
                        .map_err(|e| classify(&e))?;
                    let mut acc = MetricsAccumulator::default();
                    while let Some(d) = cursor.try_next().await.map_err(|e| classify(&e))? {
                        let num = |field: &str| match d.get(field) {
                            Some(Bson::Int32(v)) => u64::try_from(*v).unwrap_or(0),
                            Some(Bson::Int64(v)) => u64::try_from(*v).unwrap_or(0),
                            Some(Bson::Double(v)) if v.is_finite() && *v > 0.0 => *v as u64,
                            _ => 0,
                        };
                        acc.add(
                            d.get(f::END).is_none(),
                            matches!(d.get(f::ADMIN_ASSISTED), Some(Bson::Boolean(true))),
                            num(f::TOTAL_TOKENS),
                            num(f::MAX_RESP_TIME),
                            num(f::AVG_RESP_TIME),
                            num(f::RESP_COUNT),
                        );
                    }
                    Ok(acc.finish())
                }
            })
            .await
    }

    async fn load_active(&self) -> Result<Vec<SessionSnapshot>, StoreError> {
        self.find_many(
            "load_active",
            doc! { f::END: { "$exists": false } },
            Some(doc! { f::START: 1 }),
        )
        .await?
        .iter()
        .map(|d| document::from_document(d, &self.enc))
        .collect()
    }

    /// One attempt, bounded by the attempt timeout: readiness wants the current
    /// state, not a retried answer.
    async fn ping(&self) -> Result<(), StoreError> {
        let db = self.client.database("admin");
        let timeout = self.retry.attempt_timeout;
        match tokio::time::timeout(timeout, db.run_command(doc! { "ping": 1 })).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(StoreError::Timeout(timeout)),
        }
    }

    fn health(&self) -> StoreHealth {
        StoreHealth::default()
    }

    async fn shutdown(&self, _deadline: Duration) -> Result<usize, StoreError> {
        // Writes are synchronous here; the driver closes its pool on drop.
        Ok(0)
    }
}
