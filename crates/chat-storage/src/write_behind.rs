//! The write-behind queue: takes database writes off the chat hot path.
//!
//! [`WriteBehindStore`] wraps another [`SessionStore`]. Writes are acknowledged as soon
//! as they are queued; worker tasks apply them in order **per session** (sessions are
//! independent of each other). A write that fails transiently is retried with
//! backoff for as long as it takes — the database may be down for minutes — and the
//! session's later writes wait behind it, so order is kept and nothing acknowledged
//! is dropped. The queue is bounded (`write_queue_capacity` writes in total): when it
//! is full, new writes wait for room (at most the read wait), then are refused with
//! [`StoreError::QueueFull`] so the caller can
//! tell the user instead of losing data.
//!
//! That refusal is only for writes that **start** something a client is waiting to
//! hear about (a user's or admin's message, a new session, a model choice, a takeover):
//! the client gets an error and can retry. Writes that record what already happened
//! — the AI reply the user has just watched stream, the reply statistics, the name
//! a first message gave the session, the end of a session — have nobody to tell and
//! nothing to retry, so they may use a headroom of another `capacity` writes
//! ([`FOLLOW_UP_HEADROOM`]) beyond the bound new work is admitted under. Every
//! accepted message causes at most a few of them, so admitting new work under the
//! lower bound keeps them within the higher one: under a burst larger than the
//! database can absorb, new messages are refused (with an error the client sees)
//! before a streamed reply is lost. Measured: 1 000 concurrent streams on the embedded
//! store dropped AI replies with the single bound (docs/BENCHMARKS.md). A write that fails permanently (e.g. the
//! session no longer exists) cannot succeed by waiting; it is logged, counted in
//! [`StoreHealth::last_error`] and skipped so the session's queue moves on.
//!
//! Creating a session is the one write that may have to be answered by the database:
//! with a shared database ([`Creation::Checked`], MongoDB) only the database can say
//! whether another replica already created the user's active session, so creation is
//! tried synchronously (and queued only while the database is down). With a store that
//! this process alone writes ([`Creation::Queued`], the embedded file, which redb locks
//! to one process) the in-process session manager already enforces one active session
//! per user, so creation is queued like any other write and a new conversation's first
//! reply does not wait for a durable commit.
//!
//! Reads of one session first wait (bounded) until its queued writes are applied, so
//! a reader sees its own writes. Workers are owned (TaskTracker + CancellationToken);
//! [`SessionStore::shutdown`] drains the queue within a deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_session::model::{Sender, SessionSnapshot, StoredMessage};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::StoreError;
use crate::retry::RetryPolicy;
use crate::store::{
    AdminQuery, Page, SessionStore, SessionSummary, StoreHealth, StoreMetrics, UsageStats,
};

/// Worker tasks applying queued writes (sessions are spread over them). Each holds at
/// most one write in flight, so this is also how many writes of different sessions
/// can reach the database at once — and how many the embedded store can group into
/// one commit.
///
/// 64, not 16: at 1 000 concurrent streams on the embedded store, 16 writes per commit
/// was the writer's ceiling — each commit's `fdatasync` was shared by too few writes,
/// the queue filled and new messages were refused. With 64 the added TTFT p99 at that
/// level fell from 0.75–0.91 s to 0.18–0.27 s (docs/BENCHMARKS.md, eleventh pass).
///
/// 256, not 64: on a slower machine 64 was the ceiling again. At 1 000 streams the
/// server with 64 refused 1–3 user messages ("storage write queue is full") in 9 of
/// 21 runs; builds with 256 refused none in 42 runs. The added TTFT p99 at 1 000 and
/// at 100 streams and the CPU per reply stayed the same (docs/BENCHMARKS.md,
/// fifteenth pass). An idle worker is a parked task. MongoDB sees at most its
/// driver's connection pool of them at once; the rest wait in the driver, as they
/// would here.
const WORKERS: usize = 256;

/// How far beyond `capacity` follow-up writes (module docs) may fill the queue, as a
/// multiple of `capacity`.
pub const FOLLOW_UP_HEADROOM: usize = 1;

/// Whether a write starts new work (refused first when the queue is full) or records
/// work already done (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Starts something a client is waiting to hear about: bounded by `capacity`.
    New,
    /// Records what already happened: may use the headroom above `capacity`.
    FollowUp,
}

impl Admission {
    /// The pending writes at which a write of this kind must wait.
    fn limit(self, capacity: usize) -> usize {
        match self {
            Self::New => capacity,
            Self::FollowUp => capacity.saturating_mul(1 + FOLLOW_UP_HEADROOM),
        }
    }

    /// Appends of a user's or admin's message are new work; AI replies and service
    /// notices record what was already sent.
    fn of_message(message: &StoredMessage) -> Self {
        match message.sender {
            Sender::User | Sender::Admin => Self::New,
            Sender::Ai | Sender::System => Self::FollowUp,
        }
    }
}

/// One queued write of one session.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Store a new session (queued only when the database was unreachable).
    Create(Box<SessionSnapshot>),
    /// Append a message.
    Append(Box<StoredMessage>),
    /// Append a finished AI reply and set the statistics it completed (one write).
    Reply {
        /// The reply.
        message: Box<StoredMessage>,
        /// The session's statistics after it, when it completed.
        stats: Option<UsageStats>,
    },
    /// Set the name.
    Name(String),
    /// Set the model.
    Model(String),
    /// Set the usage statistics.
    Stats {
        /// Total tokens.
        total_tokens: u64,
        /// Slowest reply (ms).
        max_response_time_ms: u64,
        /// Mean reply (ms).
        avg_response_time_ms: u64,
        /// Replies in the mean.
        response_count: u64,
    },
    /// Set the assisting admin.
    Assistance {
        /// Admin user id, `None` = no admin.
        admin_id: Option<String>,
        /// Admin display name.
        admin_name: Option<String>,
    },
    /// Set the help flag.
    Help(bool),
    /// End the session.
    End(DateTime<Utc>),
}

impl WriteOp {
    async fn apply(&self, store: &dyn SessionStore, id: &str) -> Result<(), StoreError> {
        match self {
            WriteOp::Create(s) => store.create_session(s).await,
            WriteOp::Append(m) => store.append_message(id, m).await,
            WriteOp::Reply { message, stats } => store.append_reply(id, message, *stats).await,
            WriteOp::Name(n) => store.update_name(id, n).await,
            WriteOp::Model(m) => store.update_model(id, m).await,
            WriteOp::Stats {
                total_tokens,
                max_response_time_ms,
                avg_response_time_ms,
                response_count,
            } => {
                store
                    .update_stats(
                        id,
                        *total_tokens,
                        *max_response_time_ms,
                        *avg_response_time_ms,
                        *response_count,
                    )
                    .await
            }
            WriteOp::Assistance {
                admin_id,
                admin_name,
            } => {
                store
                    .update_assistance(id, admin_id.as_deref(), admin_name.as_deref())
                    .await
            }
            WriteOp::Help(h) => store.set_help_requested(id, *h).await,
            WriteOp::End(t) => store.end_session(id, *t).await.map(|_| ()),
        }
    }
}

#[derive(Debug, Default)]
struct SessionQueue {
    ops: VecDeque<WriteOp>,
    /// A worker is applying this session's front write.
    busy: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Only sessions with pending writes; at most `pending` entries.
    queues: HashMap<String, SessionQueue>,
    /// Sessions with pending writes that no worker holds; each id at most once.
    ready: VecDeque<String>,
    pending: usize,
    closed: bool,
    degraded: bool,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes a worker when a session becomes ready.
    work: Notify,
    /// Wakes readers and the drain when a write completes.
    progress: Notify,
    capacity: usize,
    backoff: RetryPolicy,
}

/// How [`WriteBehindStore`] handles [`SessionStore::create_session`] (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    /// Other processes write the same database: ask it synchronously (it enforces one
    /// active session per user across replicas); queue only while it is unavailable.
    Checked,
    /// This process is the store's only writer: queue creations like other writes.
    Queued,
}

/// A [`SessionStore`] whose writes are queued and applied in the background, in order
/// per session, surviving database outages (see the module docs).
pub struct WriteBehindStore {
    inner: Arc<dyn SessionStore>,
    creation: Creation,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    read_wait: Duration,
}

impl std::fmt::Debug for WriteBehindStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehindStore")
            .field("capacity", &self.shared.capacity)
            .field("pending", &self.pending())
            .finish()
    }
}

impl WriteBehindStore {
    /// Starts the workers. `capacity` bounds the queued writes; `backoff` paces the
    /// re-attempts of a write while the database stays unavailable (its
    /// `max_attempts` is ignored: queued writes are never given up on transient
    /// errors); `read_wait` bounds how long a read waits for its session's writes.
    pub fn start(
        inner: Arc<dyn SessionStore>,
        capacity: usize,
        backoff: RetryPolicy,
        read_wait: Duration,
    ) -> Self {
        Self::start_with_applier(inner.clone(), inner, capacity, backoff, read_wait)
    }

    /// Like [`start`](Self::start), but the workers apply queued writes through
    /// `applier`, another handle to the same database as `inner`: one that may treat
    /// them as writes nobody waits on, such as
    /// [`EmbeddedStore::for_queued_writes`](crate::EmbeddedStore::for_queued_writes),
    /// which holds them briefly so that more share a commit. Reads, the writes made
    /// synchronously (creation when checked, share tokens) and shutdown go to `inner`.
    pub fn start_with_applier(
        inner: Arc<dyn SessionStore>,
        applier: Arc<dyn SessionStore>,
        capacity: usize,
        backoff: RetryPolicy,
        read_wait: Duration,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Notify::new(),
            progress: Notify::new(),
            capacity: capacity.max(1),
            backoff,
        });
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        for _ in 0..WORKERS {
            tracker.spawn(worker(applier.clone(), shared.clone(), cancel.clone()));
        }
        Self {
            inner,
            creation: Creation::Checked,
            shared,
            tracker,
            cancel,
            read_wait,
        }
    }

    /// Sets how session creation is handled (default [`Creation::Checked`]).
    #[must_use]
    pub fn with_creation(mut self, creation: Creation) -> Self {
        self.creation = creation;
        self
    }

    /// Queues one write for session `id` without waiting for the database.
    /// Fails with [`StoreError::QueueFull`] when `capacity` writes are pending and
    /// with [`StoreError::ShuttingDown`] after shutdown began.
    pub fn enqueue(&self, id: &str, op: WriteOp) -> Result<(), StoreError> {
        self.enqueue_as(id, op, Admission::New)
    }

    fn enqueue_as(&self, id: &str, op: WriteOp, admission: Admission) -> Result<(), StoreError> {
        let mut state = self.shared.state.lock();
        if state.closed {
            return Err(StoreError::ShuttingDown);
        }
        if state.pending >= admission.limit(self.shared.capacity) {
            return Err(StoreError::QueueFull {
                capacity: self.shared.capacity,
            });
        }
        state.pending += 1;
        let queue = state.queues.entry(id.to_owned()).or_default();
        queue.ops.push_back(op);
        if queue.ops.len() == 1 && !queue.busy {
            state.ready.push_back(id.to_owned());
            drop(state);
            self.shared.work.notify_one();
        }
        Ok(())
    }

    /// [`Self::enqueue`] with backpressure: when the queue is full, waits for room (as
    /// writes are applied) for at most the read wait, and only then refuses with
    /// [`StoreError::QueueFull`]. A burst larger than the queue slows its writers down
    /// instead of failing them; a database that stays down still fails them, boundedly.
    pub async fn enqueue_waiting(&self, id: &str, op: WriteOp) -> Result<(), StoreError> {
        self.enqueue_waiting_as(id, op, Admission::New).await
    }

    async fn enqueue_waiting_as(
        &self,
        id: &str,
        op: WriteOp,
        admission: Admission,
    ) -> Result<(), StoreError> {
        let limit = admission.limit(self.shared.capacity);
        let deadline = tokio::time::Instant::now() + self.read_wait;
        loop {
            let progressed = self.shared.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            {
                let state = self.shared.state.lock();
                if state.closed || state.pending < limit {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, progressed).await.is_err() {
                break;
            }
        }
        self.enqueue_as(id, op, admission)
    }

    /// [`Self::enqueue_waiting`] for a write that records work already done (module
    /// docs): it may fill the queue up to `capacity × (1 + FOLLOW_UP_HEADROOM)`.
    async fn enqueue_follow_up(&self, id: &str, op: WriteOp) -> Result<(), StoreError> {
        self.enqueue_waiting_as(id, op, Admission::FollowUp).await
    }

    /// Writes accepted but not yet applied.
    pub fn pending(&self) -> usize {
        self.shared.state.lock().pending
    }

    /// True while writes are failing transiently (the database is unreachable).
    pub fn is_degraded(&self) -> bool {
        self.shared.state.lock().degraded
    }

    /// The most recent failure since the last successful write.
    pub fn last_error(&self) -> Option<String> {
        self.shared.state.lock().last_error.clone()
    }

    /// Waits until session `id` has no queued writes, at most `timeout`. Returns
    /// whether it is flushed.
    pub async fn flush_session(&self, id: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progressed = self.shared.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if !self.shared.state.lock().queues.contains_key(id) {
                return true;
            }
            if tokio::time::timeout_at(deadline, progressed).await.is_err() {
                return false;
            }
        }
    }

    /// Waits until every queued write is applied, at most `timeout`; returns the
    /// number still pending.
    pub async fn flush(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progressed = self.shared.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            let pending = self.pending();
            if pending == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, progressed).await.is_err() {
                return self.pending();
            }
        }
    }

    async fn read_through(&self, id: &str) {
        if !self.flush_session(id, self.read_wait).await {
            tracing::debug!(session_id = %id, "reading a session whose writes are still queued");
        }
    }

    /// Read-your-writes for queries over many sessions (lists, metrics, share lookup):
    /// wait for the queue to drain, at most `read_wait` (a database outage must not
    /// block readers forever).
    async fn read_through_all(&self) {
        let pending = self.flush(self.read_wait).await;
        if pending > 0 {
            tracing::debug!(pending, "querying while writes are still queued");
        }
    }
}

impl Drop for WriteBehindStore {
    /// Dropped without [`SessionStore::shutdown`]: stop the workers (queued writes are
    /// lost with the process anyway; `shutdown` is the way to drain them).
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn worker(inner: Arc<dyn SessionStore>, shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        let next = {
            let woken = shared.work.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let taken = {
                let mut state = shared.state.lock();
                let taken = state.ready.pop_front();
                if let Some(id) = &taken {
                    let front = state.queues.get_mut(id).and_then(|q| {
                        q.busy = true;
                        q.ops.front().cloned()
                    });
                    if !state.ready.is_empty() {
                        // More sessions wait: make sure another worker wakes up.
                        shared.work.notify_one();
                    }
                    front.map(|op| (id.clone(), op))
                } else {
                    None
                }
            };
            match taken {
                Some(next) => next,
                None => {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = &mut woken => continue,
                    }
                }
            }
        };
        let (id, op) = next;
        let mut failures = 0u32;
        loop {
            match op.apply(inner.as_ref(), &id).await {
                Ok(()) => {
                    let mut state = shared.state.lock();
                    state.degraded = false;
                    state.last_error = None;
                    break;
                }
                Err(error) if error.is_transient() => {
                    failures = failures.saturating_add(1);
                    {
                        let mut state = shared.state.lock();
                        state.degraded = true;
                        state.last_error = Some(error.to_string());
                    }
                    let delay = shared.backoff.backoff(failures);
                    tracing::warn!(session_id = %id, %error, ?delay, "storage unavailable; write stays queued");
                    tokio::select! {
                        // Shutdown past its deadline: the write stays counted as pending.
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(error) => {
                    tracing::error!(session_id = %id, %error, "storage refused a queued write; skipping it");
                    shared.state.lock().last_error = Some(error.to_string());
                    break;
                }
            }
        }
        {
            let mut state = shared.state.lock();
            state.pending = state.pending.saturating_sub(1);
            let now_empty = match state.queues.get_mut(&id) {
                Some(queue) => {
                    queue.ops.pop_front();
                    queue.busy = false;
                    queue.ops.is_empty()
                }
                None => true,
            };
            if now_empty {
                state.queues.remove(&id);
            } else {
                // Back of the line: one busy session cannot starve the others.
                state.ready.push_back(id);
                shared.work.notify_one();
            }
        }
        shared.progress.notify_waiters();
    }
}

#[async_trait]
impl SessionStore for WriteBehindStore {
    /// With [`Creation::Checked`], tried synchronously so the one-active-session rule
    /// is answered now; only when the database is unavailable is the creation queued
    /// (and acknowledged). With [`Creation::Queued`], queued at once.
    async fn create_session(&self, session: &SessionSnapshot) -> Result<(), StoreError> {
        if self.creation == Creation::Checked && !self.is_degraded() {
            match self.inner.create_session(session).await {
                Err(error) if error.is_transient() => {
                    tracing::warn!(session_id = %session.id, %error, "database unavailable; queueing the new session");
                    // Later creations skip the doomed synchronous attempt until a
                    // queued write succeeds again.
                    let mut state = self.shared.state.lock();
                    state.degraded = true;
                    state.last_error = Some(error.to_string());
                }
                other => return other,
            }
        }
        self.enqueue_waiting(&session.id, WriteOp::Create(Box::new(session.clone())))
            .await
    }

    async fn append_message(&self, id: &str, message: &StoredMessage) -> Result<(), StoreError> {
        let op = WriteOp::Append(Box::new(message.clone()));
        self.enqueue_waiting_as(id, op, Admission::of_message(message))
            .await
    }

    /// One queued write, a follow-up (module docs): the user has watched the reply.
    async fn append_reply(
        &self,
        id: &str,
        reply: &StoredMessage,
        stats: Option<UsageStats>,
    ) -> Result<(), StoreError> {
        let op = WriteOp::Reply {
            message: Box::new(reply.clone()),
            stats,
        };
        self.enqueue_follow_up(id, op).await
    }

    async fn update_name(&self, id: &str, name: &str) -> Result<(), StoreError> {
        self.enqueue_follow_up(id, WriteOp::Name(name.to_owned()))
            .await
    }

    async fn update_model(&self, id: &str, model_id: &str) -> Result<(), StoreError> {
        self.enqueue_waiting(id, WriteOp::Model(model_id.to_owned()))
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
        self.enqueue_follow_up(
            id,
            WriteOp::Stats {
                total_tokens,
                max_response_time_ms,
                avg_response_time_ms,
                response_count,
            },
        )
        .await
    }

    async fn update_assistance<'a>(
        &self,
        id: &str,
        admin_id: Option<&'a str>,
        admin_name: Option<&'a str>,
    ) -> Result<(), StoreError> {
        self.enqueue_waiting(
            id,
            WriteOp::Assistance {
                admin_id: admin_id.map(str::to_owned),
                admin_name: admin_name.map(str::to_owned),
            },
        )
        .await
    }

    async fn set_help_requested(&self, id: &str, requested: bool) -> Result<(), StoreError> {
        self.enqueue_waiting(id, WriteOp::Help(requested)).await
    }

    /// Queued like every write; returns `end_time` (the in-memory session, which
    /// calls this once, is authoritative for the first end time; the store keeps
    /// the first one too).
    async fn end_session(
        &self,
        id: &str,
        end_time: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        self.enqueue_follow_up(id, WriteOp::End(end_time)).await?;
        Ok(end_time)
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionSnapshot>, StoreError> {
        self.read_through(id).await;
        self.inner.get_session(id).await
    }

    async fn get_by_share_token(&self, token: &str) -> Result<Option<SessionSnapshot>, StoreError> {
        self.read_through_all().await;
        self.inner.get_by_share_token(token).await
    }

    async fn set_share_token(&self, id: &str, token: &str) -> Result<String, StoreError> {
        self.read_through(id).await;
        self.inner.set_share_token(id, token).await
    }

    async fn revoke_share_token(&self, id: &str) -> Result<(), StoreError> {
        self.read_through(id).await;
        self.inner.revoke_share_token(id).await
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<(Vec<SessionSummary>, bool), StoreError> {
        self.read_through_all().await;
        self.inner.list_user_sessions(user_id, limit).await
    }

    async fn admin_list(&self, query: &AdminQuery) -> Result<Page, StoreError> {
        self.read_through_all().await;
        self.inner.admin_list(query).await
    }

    async fn metrics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<StoreMetrics, StoreError> {
        self.read_through_all().await;
        self.inner.metrics(from, to).await
    }

    async fn load_active(&self) -> Result<Vec<SessionSnapshot>, StoreError> {
        self.inner.load_active().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn health(&self) -> StoreHealth {
        let state = self.shared.state.lock();
        StoreHealth {
            pending_writes: state.pending,
            queue_capacity: self.shared.capacity,
            degraded: state.degraded,
            last_error: state.last_error.clone(),
        }
    }

    /// Refuses new writes, applies the queued ones within `deadline`, then stops the
    /// workers. Returns how many writes were still pending at the deadline (they are
    /// logged; the caller decides whether that is an error).
    async fn shutdown(&self, deadline: Duration) -> Result<usize, StoreError> {
        self.shared.state.lock().closed = true;
        let left = self.flush(deadline).await;
        if left > 0 {
            tracing::error!(
                pending = left,
                "shutdown deadline passed with storage writes still queued"
            );
        }
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.inner.shutdown(Duration::ZERO).await?;
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MockSessionStore;
    use chat_session::model::Sender;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn backoff() -> RetryPolicy {
        RetryPolicy::new(
            1,
            Duration::from_millis(100),
            Duration::from_secs(1),
            Duration::from_secs(5),
        )
    }

    fn message(text: &str) -> StoredMessage {
        StoredMessage::text(Sender::User, text, Utc::now())
    }

    /// `(session id, content)` of every applied append, in order.
    type AppliedLog = Arc<Mutex<Vec<(String, String)>>>;

    fn recording_store(
        fail_first: usize,
        error: fn() -> StoreError,
    ) -> (MockSessionStore, AppliedLog) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut mock = MockSessionStore::new();
        let seen = log.clone();
        mock.expect_append_message().returning(move |id, m| {
            if calls.fetch_add(1, Ordering::SeqCst) < fail_first {
                return Err(error());
            }
            seen.lock().push((id.to_owned(), m.content.clone()));
            Ok(())
        });
        mock.expect_shutdown().returning(|_| Ok(0));
        (mock, log)
    }

    #[tokio::test(start_paused = true)]
    async fn writes_of_each_session_are_applied_in_order() {
        let (mock, log) = recording_store(0, || StoreError::Unavailable("x".into()));
        let store =
            WriteBehindStore::start(Arc::new(mock), 1000, backoff(), Duration::from_secs(1));
        for i in 0..100 {
            for id in ["a", "b", "c"] {
                store
                    .append_message(id, &message(&format!("{i}")))
                    .await
                    .unwrap();
            }
        }
        assert_eq!(store.flush(Duration::from_secs(10)).await, 0);
        let log = log.lock().clone();
        assert_eq!(log.len(), 300);
        for id in ["a", "b", "c"] {
            let order: Vec<_> = log
                .iter()
                .filter(|(s, _)| s == id)
                .map(|(_, c)| c.clone())
                .collect();
            let expected: Vec<_> = (0..100).map(|i| i.to_string()).collect();
            assert_eq!(order, expected, "session {id}");
        }
        assert_eq!(store.shutdown(Duration::from_secs(1)).await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_keeps_the_write_queued_until_it_succeeds() {
        let (mock, log) = recording_store(5, || StoreError::Unavailable("down".into()));
        let store =
            WriteBehindStore::start(Arc::new(mock), 1000, backoff(), Duration::from_secs(1));
        store.append_message("s", &message("first")).await.unwrap();
        store.append_message("s", &message("second")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let health = store.health();
        assert!(health.degraded && health.pending_writes == 2, "{health:?}");
        assert!(health.last_error.is_some());
        assert_eq!(store.flush(Duration::from_secs(60)).await, 0);
        assert!(!store.is_degraded());
        assert_eq!(store.last_error(), None);
        let contents: Vec<_> = log.lock().iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(contents, ["first", "second"]);
        store.shutdown(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_reported_and_skipped() {
        let (mock, log) = recording_store(1, || StoreError::NotFound("s".into()));
        let store =
            WriteBehindStore::start(Arc::new(mock), 1000, backoff(), Duration::from_secs(1));
        store
            .append_message("s", &message("refused"))
            .await
            .unwrap();
        store
            .append_message("s", &message("applied"))
            .await
            .unwrap();
        assert_eq!(store.flush(Duration::from_secs(10)).await, 0);
        let contents: Vec<_> = log.lock().iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(contents, ["applied"]);
        store.shutdown(Duration::from_secs(1)).await.unwrap();
    }

    /// A queue of capacity 3 holding 3 user messages for a database that stays down.
    async fn full_queue_of_three() -> WriteBehindStore {
        let (mock, _log) = recording_store(usize::MAX, || StoreError::Unavailable("down".into()));
        let store = WriteBehindStore::start(Arc::new(mock), 3, backoff(), Duration::from_secs(1));
        for i in 0..3 {
            store
                .append_message("s", &message(&i.to_string()))
                .await
                .unwrap();
        }
        store
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_writes_and_shutdown_reports_what_is_left() {
        let store = full_queue_of_three().await;
        assert!(matches!(
            store.append_message("s", &message("x")).await,
            Err(StoreError::QueueFull { capacity: 3 })
        ));
        assert_eq!(store.shutdown(Duration::from_secs(2)).await.unwrap(), 3);
        assert!(matches!(
            store.append_message("s", &message("late")).await,
            Err(StoreError::ShuttingDown)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_that_was_streamed_is_queued_when_new_messages_are_refused() {
        let store = full_queue_of_three().await;
        // New work is refused at the bound...
        assert!(matches!(
            store.append_message("s", &message("new")).await,
            Err(StoreError::QueueFull { capacity: 3 })
        ));
        let mut admin = message("admin");
        admin.sender = Sender::Admin;
        assert!(store.append_message("s", &admin).await.is_err());
        // ...while what was already shown or decided is still recorded.
        let mut reply = message("reply");
        reply.sender = Sender::Ai;
        store.append_message("s", &reply).await.unwrap();
        let stats = UsageStats {
            total_tokens: 10,
            ..UsageStats::default()
        };
        store.append_reply("s", &reply, Some(stats)).await.unwrap();
        store.update_name("s", "named").await.unwrap();
        assert_eq!(store.pending(), 6);
        // The headroom is bounded too: one more follow-up waits, then is refused.
        let mut late = message("late reply");
        late.sender = Sender::Ai;
        assert!(matches!(
            store.append_message("s", &late).await,
            Err(StoreError::QueueFull { capacity: 3 })
        ));
        assert_eq!(store.shutdown(Duration::from_secs(2)).await.unwrap(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_and_its_statistics_are_one_queued_write_applied_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut mock = MockSessionStore::new();
        let seen = log.clone();
        mock.expect_append_message().returning(move |_, m| {
            seen.lock().push(format!("append {}", m.content));
            Ok(())
        });
        let (seen, attempts) = (log.clone(), Arc::new(AtomicUsize::new(0)));
        mock.expect_append_reply().returning(move |_, m, stats| {
            // The database hiccups once: the whole write is retried.
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(StoreError::Unavailable("hiccup".into()));
            }
            let tokens = stats.map(|s| s.total_tokens);
            seen.lock().push(format!("reply {} {tokens:?}", m.content));
            Ok(())
        });
        mock.expect_shutdown().returning(|_| Ok(0));
        let store = WriteBehindStore::start(Arc::new(mock), 10, backoff(), Duration::from_secs(1));
        let mut reply = message("answer");
        reply.sender = Sender::Ai;
        let stats = UsageStats {
            total_tokens: 7,
            ..UsageStats::default()
        };
        store
            .append_message("s", &message("question"))
            .await
            .unwrap();
        store.append_reply("s", &reply, Some(stats)).await.unwrap();
        assert_eq!(store.pending(), 2);
        store.append_message("s", &message("next")).await.unwrap();
        assert_eq!(store.flush(Duration::from_secs(10)).await, 0);
        assert_eq!(
            *log.lock(),
            ["append question", "reply answer Some(7)", "append next"]
        );
        store.shutdown(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_slows_writers_down_instead_of_failing_them() {
        // The database fails its first 3 attempts (a short hiccup); the queue holds 3.
        let (mock, log) = recording_store(3, || StoreError::Unavailable("hiccup".into()));
        let store = WriteBehindStore::start(Arc::new(mock), 3, backoff(), Duration::from_secs(5));
        for i in 0..3 {
            store
                .append_message("s", &message(&i.to_string()))
                .await
                .unwrap();
        }
        // The 4th write finds the queue full: it waits for room rather than failing.
        store.append_message("s", &message("3")).await.unwrap();
        assert_eq!(store.flush(Duration::from_secs(60)).await, 0);
        let contents: Vec<_> = log.lock().iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(contents, ["0", "1", "2", "3"]);
        store.shutdown(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_writer_store_queues_creations_without_waiting_for_the_database() {
        let mut mock = MockSessionStore::new();
        mock.expect_create_session().times(1).returning(|s| {
            assert_eq!(s.id, "s1");
            Ok(())
        });
        mock.expect_shutdown().returning(|_| Ok(0));
        let store = WriteBehindStore::start(Arc::new(mock), 10, backoff(), Duration::from_secs(1))
            .with_creation(Creation::Queued);
        store
            .create_session(&SessionSnapshot::new_active("s1", "u", Utc::now()))
            .await
            .unwrap();
        // Acknowledged while still queued: the workers have not run yet.
        assert_eq!(store.pending(), 1);
        assert_eq!(store.flush(Duration::from_secs(10)).await, 0);
        store.shutdown(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn creation_answers_synchronously_unless_the_database_is_down() {
        let mut mock = MockSessionStore::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        mock.expect_create_session()
            .returning(move |s| match c.fetch_add(1, Ordering::SeqCst) {
                0 => Err(StoreError::ActiveSessionExists {
                    existing_id: "other".into(),
                }),
                1 => Err(StoreError::Unavailable("down".into())),
                _ => {
                    assert_eq!(s.id, "queued");
                    Ok(())
                }
            });
        mock.expect_shutdown().returning(|_| Ok(0));
        let store = WriteBehindStore::start(Arc::new(mock), 10, backoff(), Duration::from_secs(1));
        let snapshot = |id: &str| SessionSnapshot::new_active(id, "u", Utc::now());
        assert!(matches!(
            store.create_session(&snapshot("refused")).await,
            Err(StoreError::ActiveSessionExists { .. })
        ));
        store.create_session(&snapshot("queued")).await.unwrap();
        assert_eq!(store.flush(Duration::from_secs(10)).await, 0);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        store.shutdown(Duration::from_secs(1)).await.unwrap();
    }
}
