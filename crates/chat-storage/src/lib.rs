//! Durable storage of sessions behind the `SessionStore` trait: the MongoDB store
//! (legacy `chat.sessions` schema, retries, encryption at rest, write-behind) and the
//! embedded file-backed store used by default in development.
