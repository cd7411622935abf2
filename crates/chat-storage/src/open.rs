//! Picking and opening the configured backend.

use std::sync::Arc;

use chat_config::{Config, StorageBackend};

use crate::embedded::{EmbeddedOptions, EmbeddedStore};
use crate::encryption::Encryptor;
use crate::error::StoreError;
use crate::mongo::{MongoOptions, MongoStore};
use crate::retry::RetryPolicy;
use crate::store::SessionStore;
use crate::write_behind::{Creation, WriteBehindStore};

/// Opens the store the configuration selects: the embedded file store or MongoDB, each
/// behind the write-behind queue (writes leave the chat hot path; with MongoDB,
/// chatting continues through database outages).
/// Encryption at rest is on whenever a key is configured, for both backends.
pub async fn open_store(config: &Config) -> Result<Arc<dyn SessionStore>, StoreError> {
    let enc = Encryptor::from_config(config)?;
    let storage = &config.storage;
    match storage.backend {
        // The embedded store commits durably (fsync) on every write; behind the same
        // write-behind queue as MongoDB, those commits leave the chat hot path too
        // (accepted writes are flushed in order, and on shutdown).
        StorageBackend::Embedded => {
            let embedded = EmbeddedStore::open_with(
                &storage.embedded_path,
                enc,
                EmbeddedOptions::from(storage),
            )?;
            let timeout = storage.mongodb.operation_timeout;
            // redb locks the file to this process, so the session manager alone
            // enforces one active session per user: creations need not wait either.
            // Nobody waits on the queued writes, so the store may hold them briefly
            // to share its commits (the embedded module's docs).
            let applier = Arc::new(embedded.for_queued_writes());
            Ok(Arc::new(
                WriteBehindStore::start_with_applier(
                    Arc::new(embedded),
                    applier,
                    storage.write_queue_capacity,
                    RetryPolicy::from_settings(&storage.retry, timeout),
                    timeout,
                )
                .with_creation(Creation::Queued),
            ))
        }
        StorageBackend::Mongodb => {
            let options = MongoOptions::from_settings(&storage.mongodb).ok_or_else(|| {
                StoreError::Open("storage.mongodb.uri (MONGO_URI) is not set".to_owned())
            })?;
            let timeout = storage.mongodb.operation_timeout;
            let retry = RetryPolicy::from_settings(&storage.retry, timeout);
            let mongo = MongoStore::connect(options, enc, retry.clone()).await?;
            Ok(Arc::new(WriteBehindStore::start(
                Arc::new(mongo),
                storage.write_queue_capacity,
                retry,
                timeout,
            )))
        }
    }
}
