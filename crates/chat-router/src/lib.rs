//! The chat semantics: `MessageRouter` binds connections to sessions, runs one
//! generation task per session (owned by the session, not the socket), fans frames out to
//! every subscribed connection, replays missed chunks on resume, and handles admin takeover.
