//! `EmbeddedStore`: a single-node, file-backed, crash-safe store (redb) implementing
//! the same [`SessionStore`] contract as MongoDB. It is the development default, so
//! history survives restarts with nothing to install.
//!
//! Layout: one row per session (summary fields, message count), one row per message
//! keyed by `(session id, index)` so an append writes one small row instead of
//! rewriting the conversation, and two unique maps (user → active session, share
//! token → session). Every write is committed durably before it returns. Name and
//! content use the same [`Encryptor`] as MongoDB.
//!
//! **Group commit.** Writes go to one writer thread, which applies every write that is
//! waiting in a single redb transaction and commits (one fsync) for all of them: under
//! load a commit serves many writes instead of each paying for its own, and a write
//! returns only once the commit that holds it is durable. A write that fails (e.g.
//! its session does not exist) must not take the others down with it: the batch is
//! then rolled back and each of its writes re-run in a transaction of its own, so
//! every write succeeds or fails exactly as it would alone.
//!
//! **Writes that may wait.** Part of a commit's cost is the same whatever it holds (the
//! `fsync`, the upper pages of the trees, the table and freed-page trees), so the fewer
//! commits, the less each write pays; the leaf pages writes dirty are shared only by
//! writes to neighbouring keys, which the recent sessions' writes are since session ids
//! begin with their creation time (docs/STORAGE.md, "Session ids"). A handle from
//! [`EmbeddedStore::for_queued_writes`] marks its writes as ones nobody is waiting on:
//! the write-behind queue acknowledged them when it queued them. When such writes
//! arrive faster than one commit each (at least two queued behind the last commit),
//! the writer holds the batch open for up to [`GROUP_WINDOW`] after its first write,
//! or until [`GROUP_TARGET`] writes are waiting, so that one commit serves them all. A
//! write from any other handle is never held: it ends the wait and commits at once
//! with whatever was gathered, so a caller that waits on each write (creating a share
//! token, the storage benchmark) pays nothing.
//! Measured in docs/BENCHMARKS.md (sixteenth pass).
//!
//! While it holds a batch open the writer sleeps until the window ends: a write that
//! joins the batch does not wake it (each such wake-up was a context switch of the
//! writer and a futex call on the runtime's worker that queued the write). Only a
//! write somebody waits on, or the one that brings the batch to [`GROUP_TARGET`],
//! wakes it early (`Writer::nudge`). Measured in docs/BENCHMARKS.md (twenty-second
//! pass).
//!
//! **The writer's priority.** The writer thread runs [`EmbeddedOptions::writer_nice`]
//! nice steps below the thread that opened the store (`storage.embedded_writer_nice`,
//! default 5; Linux, where the nice value is per thread). A commit is up to a
//! millisecond of CPU; at the same priority, the writer woken by a write took a core
//! from the runtime's workers in the middle of the replies they were starting, and
//! the time to first token paid for it. Lower, it waits for a free core instead, and
//! still gets a third of a worker's share when none is free, so under a sustained
//! load it keeps up (the write-behind queue bounds how far it may fall behind; measured
//! in docs/BENCHMARKS.md, nineteenth pass). The scheduler gives nothing back to a
//! thread that lowered itself without privilege, so the priority is set once, as the
//! thread starts.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_session::model::{Sender, SessionSnapshot, StoredMessage};
use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::encryption::Encryptor;
use crate::error::StoreError;
use crate::query::{self, MetricsAccumulator};
use crate::store::{
    AdminQuery, Page, SessionStore, SessionSummary, StoreHealth, StoreMetrics, UsageStats,
};

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
const ACTIVE_BY_USER: TableDefinition<&str, &str> = TableDefinition::new("active_by_user");
const SHARE_TOKENS: TableDefinition<&str, &str> = TableDefinition::new("share_tokens");

/// How an [`EmbeddedStore`] is opened: the `[storage]` settings it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Page cache, in bytes (`storage.embedded_cache_size`).
    pub cache_bytes: usize,
    /// Nice increment of the writer thread over the thread that opens the store
    /// (`storage.embedded_writer_nice`, 0–19; 0 leaves it as it is). Linux only.
    pub writer_nice: u8,
}

impl From<&chat_config::StorageSettings> for EmbeddedOptions {
    fn from(storage: &chat_config::StorageSettings) -> Self {
        Self {
            cache_bytes: storage.embedded_cache_size,
            writer_nice: storage.embedded_writer_nice,
        }
    }
}

impl Default for EmbeddedOptions {
    /// Those of the server's default configuration.
    fn default() -> Self {
        Self::from(&chat_config::StorageSettings::default())
    }
}

/// The stored session row (name encrypted when a key is set).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionRow {
    id: String,
    user_id: String,
    name: String,
    model_id: String,
    start_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
    last_activity: DateTime<Utc>,
    admin_assisted: bool,
    assisting_admin_id: Option<String>,
    assisting_admin_name: Option<String>,
    help_requested: bool,
    total_tokens: u64,
    max_response_time_ms: u64,
    avg_response_time_ms: u64,
    response_count: u64,
    share_token: Option<String>,
    message_count: u64,
}

/// The stored message row (content encrypted when a key is set).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MessageRow {
    content: String,
    timestamp: DateTime<Utc>,
    sender: Sender,
    file_id: Option<String>,
    file_url: Option<String>,
    metadata: BTreeMap<String, String>,
}

/// Millisecond precision, like BSON dates, so both backends return the same times.
fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {}", e.into()))
}

/// The store's four tables, opened once for a write transaction and lent to every
/// write it applies: a batch of writes opens each table once, not once per write
/// (measured in docs/BENCHMARKS.md, twenty-fourth pass).
struct Tables<'txn> {
    sessions: redb::Table<'txn, &'static str, &'static [u8]>,
    messages: redb::Table<'txn, (&'static str, u64), &'static [u8]>,
    active: redb::Table<'txn, &'static str, &'static str>,
    shares: redb::Table<'txn, &'static str, &'static str>,
}

impl<'txn> Tables<'txn> {
    /// Opens (creating them when missing) the four tables in `txn`.
    fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            sessions: txn.open_table(SESSIONS).map_err(db_err)?,
            messages: txn.open_table(MESSAGES).map_err(db_err)?,
            active: txn.open_table(ACTIVE_BY_USER).map_err(db_err)?,
            shares: txn.open_table(SHARE_TOKENS).map_err(db_err)?,
        })
    }

    /// Session `id`'s row, or `NotFound`.
    fn session(&self, id: &str) -> Result<SessionRow, StoreError> {
        match self.sessions.get(id).map_err(db_err)? {
            Some(bytes) => decode(bytes.value()),
            None => Err(StoreError::NotFound(id.to_owned())),
        }
    }

    /// Writes session `id`'s row.
    fn put_session(&mut self, id: &str, row: &SessionRow) -> Result<(), StoreError> {
        self.sessions
            .insert(id, encode(row)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Rejected(format!("cannot encode row: {e}")))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("embedded row: {e}")))
}

/// Writes waiting for the writer thread (each caller awaits its own, so this bounds
/// nothing but a burst of callers; they wait for room beyond it).
const WRITE_QUEUE: usize = 1024;

/// Writes applied in one transaction at most.
const MAX_BATCH: usize = 256;

/// How long the writer holds a batch of writes that may wait open for more, counted
/// from the batch's first write (module docs).
pub const GROUP_WINDOW: Duration = Duration::from_millis(5);

/// A batch of writes that may wait commits as soon as it holds this many.
pub const GROUP_TARGET: usize = 48;

/// One write: re-runnable (a failed batch re-runs its writes one by one), its value
/// type-erased so writes of every type share the queue.
type Work =
    Box<dyn Fn(&mut Tables<'_>, &Encryptor) -> Result<Box<dyn Any + Send>, StoreError> + Send>;

struct Job {
    work: Work,
    /// Nobody waits on this write: it may be held for others (module docs).
    may_wait: bool,
    reply: tokio::sync::oneshot::Sender<Result<Box<dyn Any + Send>, StoreError>>,
}

/// What the writer thread has done, for tests and diagnostics.
#[derive(Debug, Default)]
struct WriterCounters {
    /// Transactions run (a batch re-run one by one counts each of its writes).
    commits: AtomicU64,
    /// Writes answered or being answered, successfully or not.
    answered: AtomicU64,
    /// Writes held for more to share their commit (module docs); 0 when none are.
    holding: AtomicUsize,
    /// Writes in the queue to the writer, not yet taken into a batch. A write is
    /// counted once it is in the queue, so the writer may take it first: the count is
    /// then low (even below zero) for a moment, never high.
    queued: AtomicIsize,
}

/// The writer thread and the queue to it; the thread ends when the queue closes, and
/// is joined when the last handle to the store goes.
struct Writer {
    queue: Option<tokio::sync::mpsc::Sender<Job>>,
    /// Wakes the writer from a batch it holds open, which the writes joining the
    /// batch do not: sent for a write somebody waits on, for the write that brings
    /// the batch to its target, and when the store closes (module docs).
    nudge: Arc<tokio::sync::Notify>,
    grouping: Grouping,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<WriterCounters>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish the writes it holds, then stop;
        // the nudge ends a window it may be sleeping through.
        drop(self.queue.take());
        self.nudge.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("embedded store writer thread panicked");
            }
        }
        tracing::debug!(
            writes = self.counters.answered.load(Ordering::Relaxed),
            commits = self.counters.commits.load(Ordering::Relaxed),
            "embedded store writer stopped"
        );
    }
}

/// How long a batch may stay open for more writes, and how many it gathers at most.
#[derive(Debug, Clone, Copy)]
struct Grouping {
    window: Duration,
    target: usize,
}

impl Grouping {
    const DEFAULT: Self = Self {
        window: GROUP_WINDOW,
        target: GROUP_TARGET,
    };

    /// Whether `batch`, just taken off the queue, should wait for more: only writes
    /// that may wait, and only when they arrive faster than one commit each (the
    /// batch holds more than the one write that woke the writer).
    fn should_wait(self, batch: &[Job]) -> bool {
        batch.len() >= 2 && batch.len() < self.target && batch.iter().all(|job| job.may_wait)
    }

    /// Whether a write just queued must wake the writer from a batch it holds open:
    /// somebody waits on it, or the waiting writes (`queued`, counting this one, and
    /// `holding`) reach the target.
    fn must_nudge(self, may_wait: bool, queued: isize, holding: usize) -> bool {
        let waiting = queued.saturating_add_unsigned(holding);
        !may_wait || usize::try_from(waiting).is_ok_and(|waiting| waiting >= self.target)
    }
}

/// The lowest priority a nice value gives (Linux's range is −20 to 19).
#[cfg(target_os = "linux")]
const LOWEST_NICE: i32 = 19;

/// Lowers the calling thread's priority by `by` nice steps (at most to
/// [`LOWEST_NICE`]), once, as the writer thread starts (module docs). Unprivileged: a
/// thread may always lower its own priority, never raise it back. A failure is logged,
/// and the writer runs at the priority it has.
#[cfg(target_os = "linux")]
fn lower_priority(by: u8) {
    if by == 0 {
        return;
    }
    // On Linux the nice value is the thread's own, and `PRIO_PROCESS` with no id
    // means the calling thread: the runtime's workers keep theirs.
    let lowered = rustix::process::getpriority_process(None).and_then(|nice| {
        let target = nice.saturating_add(i32::from(by)).min(LOWEST_NICE);
        rustix::process::setpriority_process(None, target).map(|()| target)
    });
    match lowered {
        Ok(nice) => tracing::debug!(nice, "embedded store writer: priority lowered"),
        Err(error) => {
            tracing::warn!(%error, "embedded store writer: cannot lower its priority");
        }
    }
}

/// Elsewhere `PRIO_PROCESS` would lower the whole process: the writer keeps its priority.
#[cfg(not(target_os = "linux"))]
fn lower_priority(by: u8) {
    if by != 0 {
        tracing::debug!(
            "embedded store writer: storage.embedded_writer_nice applies on Linux only"
        );
    }
}

/// Runs the writer on a runtime of its own (one thread, timers only): it waits for the
/// queue, and for the end of a batch's window, on that runtime; the redb work blocks
/// this thread, which is what it is for.
fn run_writer(
    db: &Database,
    enc: &Encryptor,
    queue: tokio::sync::mpsc::Receiver<Job>,
    nudge: &tokio::sync::Notify,
    counters: &WriterCounters,
    grouping: Grouping,
) {
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime.block_on(writer_loop(db, enc, queue, nudge, counters, grouping)),
        Err(error) => {
            // Dropping the queue answers every waiting write with "writer stopped".
            tracing::error!(%error, "embedded store writer: cannot start its runtime");
        }
    }
}

/// Moves every write already queued into `batch`, up to [`MAX_BATCH`].
fn take_queued(
    queue: &mut tokio::sync::mpsc::Receiver<Job>,
    batch: &mut Vec<Job>,
    counters: &WriterCounters,
) {
    let before = batch.len();
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    let taken = isize::try_from(batch.len() - before).unwrap_or(isize::MAX);
    counters.queued.fetch_sub(taken, Ordering::Relaxed);
}

/// Applies queued writes in batches until the queue closes (module docs).
async fn writer_loop(
    db: &Database,
    enc: &Encryptor,
    mut queue: tokio::sync::mpsc::Receiver<Job>,
    nudge: &tokio::sync::Notify,
    counters: &WriterCounters,
    grouping: Grouping,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        counters.queued.fetch_sub(1, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + grouping.window;
        // A nudge left by writes that are in this batch (or were in an earlier one)
        // is spent: it must not end this batch's window.
        let _ = futures::FutureExt::now_or_never(nudge.notified());
        batch.push(first);
        take_queued(&mut queue, &mut batch, counters);
        if grouping.should_wait(&batch) {
            counters.holding.store(batch.len(), Ordering::Relaxed);
            // Asleep until the window ends: the writes that join the batch meanwhile
            // stay in the queue and do not wake the writer, unless one of them must
            // (`must_nudge`). A write queued after the take above and nudging before
            // `notified()` is polled leaves its permit, which ends the sleep at once.
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = nudge.notified() => {}
            }
            take_queued(&mut queue, &mut batch, counters);
            counters.holding.store(0, Ordering::Relaxed);
        }
        commit_batch(db, enc, &mut batch, counters);
    }
}

/// Applies `batch` (together when it can, module docs), answers each of its writes and
/// empties it.
fn commit_batch(db: &Database, enc: &Encryptor, batch: &mut Vec<Job>, counters: &WriterCounters) {
    // Counted before any answer goes out, so a caller that has its answer sees it.
    counters
        .answered
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    if batch.len() == 1 {
        for job in batch.drain(..) {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            let _ = job.reply.send(apply_alone(db, enc, &job.work));
        }
    } else {
        match apply_together(db, enc, batch) {
            Ok(values) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                for (job, value) in batch.drain(..).zip(values) {
                    let _ = job.reply.send(Ok(value));
                }
            }
            Err(BatchFailed::Commit(message)) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                for job in batch.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Unavailable(message.clone())));
                }
            }
            Err(BatchFailed::Write) => {
                for job in batch.drain(..) {
                    counters.commits.fetch_add(1, Ordering::Relaxed);
                    let _ = job.reply.send(apply_alone(db, enc, &job.work));
                }
            }
        }
    }
}

enum BatchFailed {
    /// One of the writes failed: the batch was rolled back.
    Write,
    /// The commit failed (nothing was written).
    Commit(String),
}

fn apply_together(
    db: &Database,
    enc: &Encryptor,
    batch: &[Job],
) -> Result<Vec<Box<dyn Any + Send>>, BatchFailed> {
    let txn = db
        .begin_write()
        .map_err(|e| BatchFailed::Commit(db_err(e).to_string()))?;
    let applied = Tables::open(&txn)
        .map_err(|e| BatchFailed::Commit(e.to_string()))
        .and_then(|mut tables| {
            batch
                .iter()
                .map(|job| (job.work)(&mut tables, enc).map_err(|_| BatchFailed::Write))
                .collect::<Result<Vec<_>, _>>()
        });
    let values = match applied {
        Ok(values) => values,
        Err(failed) => {
            // Dropping an uncommitted transaction rolls it back.
            let _ = txn.abort();
            return Err(failed);
        }
    };
    txn.commit()
        .map_err(|e| BatchFailed::Commit(db_err(e).to_string()))?;
    Ok(values)
}

fn apply_alone(
    db: &Database,
    enc: &Encryptor,
    work: &Work,
) -> Result<Box<dyn Any + Send>, StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    let value = work(&mut Tables::open(&txn)?, enc)?;
    txn.commit().map_err(db_err)?;
    Ok(value)
}

/// Sessions in a local redb file.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    enc: Encryptor,
    writer: Arc<Writer>,
    /// This handle's writes may be held for others (module docs).
    may_wait: bool,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("enc", &self.enc)
            .field("may_wait", &self.may_wait)
            .finish()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store file, creating parent directories, with the
    /// default options (those of the server's default configuration).
    pub fn open(path: &Path, enc: Encryptor) -> Result<Self, StoreError> {
        Self::open_with(path, enc, EmbeddedOptions::default())
    }

    /// Opens (or creates) the store file with a page cache of at most
    /// `options.cache_bytes` (`storage.embedded_cache_size`; redb's own default is
    /// 1 GiB, which a growing file fills and never gives back: the process would hold
    /// as much of the database in memory as it ever read or wrote) and its writer
    /// thread `options.writer_nice` below the caller's priority (module docs).
    pub fn open_with(
        path: &Path,
        enc: Encryptor,
        options: EmbeddedOptions,
    ) -> Result<Self, StoreError> {
        Self::open_grouping(path, enc, options, Grouping::DEFAULT)
    }

    fn open_grouping(
        path: &Path,
        enc: Encryptor,
        options: EmbeddedOptions,
        grouping: Grouping,
    ) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Open(format!("{}: {e}", parent.display())))?;
        }
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(db_err)?;
        drop(Tables::open(&txn)?);
        txn.commit().map_err(db_err)?;
        let db = Arc::new(db);
        let (queue, receiver) = tokio::sync::mpsc::channel(WRITE_QUEUE);
        let counters = Arc::new(WriterCounters::default());
        let nudge = Arc::new(tokio::sync::Notify::new());
        let thread = {
            let (db, enc, counters, nudge) =
                (db.clone(), enc.clone(), counters.clone(), nudge.clone());
            std::thread::Builder::new()
                .name("embedded-store-writer".to_owned())
                .spawn(move || {
                    lower_priority(options.writer_nice);
                    run_writer(&db, &enc, receiver, &nudge, &counters, grouping);
                })
                .map_err(|e| StoreError::Open(format!("cannot start the writer thread: {e}")))?
        };
        Ok(Self {
            db,
            enc,
            writer: Arc::new(Writer {
                queue: Some(queue),
                nudge,
                grouping,
                thread: Some(thread),
                counters,
            }),
            may_wait: false,
        })
    }

    /// A handle to the same store whose writes nobody waits on, so the writer may hold
    /// them for up to [`GROUP_WINDOW`] to share one commit with others (module docs).
    /// For the write-behind queue's workers: their writes were acknowledged when they
    /// were queued. Reads, and writes through the other handles, are not affected.
    #[must_use]
    pub fn for_queued_writes(&self) -> Self {
        Self {
            may_wait: true,
            ..self.clone()
        }
    }

    /// Runs `f` in a write transaction of the writer thread, possibly together with
    /// other writes (module docs); returns once that transaction is committed. `f`
    /// must leave no trace when it fails (its transaction is then rolled back) and
    /// may run more than once.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut Tables<'_>, &Encryptor) -> Result<T, StoreError> + Send + 'static,
    {
        let closed = || StoreError::Unavailable("embedded store writer stopped".to_owned());
        let writer = &*self.writer;
        let queue = writer.queue.as_ref().ok_or_else(closed)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let work: Work = Box::new(move |tables, enc| {
            f(tables, enc).map(|value| Box::new(value) as Box<dyn Any + Send>)
        });
        queue
            .send(Job {
                work,
                may_wait: self.may_wait,
                reply,
            })
            .await
            .map_err(|_| closed())?;
        // Counted once it is in the queue (and in the same poll, so a caller that
        // gives up cannot leave it uncounted): when the count reaches the target, that
        // many writes are there to be taken. Acquire-release, so the writer that this
        // nudges sees the other counted writes in the queue too.
        let queued = writer.counters.queued.fetch_add(1, Ordering::AcqRel) + 1;
        let holding = writer.counters.holding.load(Ordering::Relaxed);
        if writer.grouping.must_nudge(self.may_wait, queued, holding) {
            writer.nudge.notify_one();
        }
        let value = answer.await.map_err(|_| closed())??;
        value.downcast::<T>().map(|value| *value).map_err(|_| {
            StoreError::Unavailable("embedded store: mismatched write result".to_owned())
        })
    }

    /// Runs `f` in one read transaction on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction, &Encryptor) -> Result<T, StoreError> + Send + 'static,
    {
        let (db, enc) = (self.db.clone(), self.enc.clone());
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(db_err)?;
            f(&txn, &enc)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("embedded store task: {e}")))?
    }

    /// Read-modify-write of one session row.
    async fn modify<T, F>(&self, id: &str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut SessionRow, &Encryptor) -> Result<T, StoreError> + Send + 'static,
    {
        let id = id.to_owned();
        self.write(move |tables, enc| {
            let mut row = tables.session(&id)?;
            let value = f(&mut row, enc)?;
            tables.put_session(&id, &row)?;
            Ok(value)
        })
        .await
    }
}

fn summary(row: SessionRow, enc: &Encryptor) -> Result<SessionSummary, StoreError> {
    Ok(SessionSummary {
        name: enc.decrypt(&row.name)?,
        id: row.id,
        user_id: row.user_id,
        model_id: row.model_id,
        start_time: row.start_time,
        end_time: row.end_time,
        last_activity: row.last_activity,
        admin_assisted: row.admin_assisted,
        assisting_admin_id: row.assisting_admin_id,
        assisting_admin_name: row.assisting_admin_name,
        help_requested: row.help_requested,
        total_tokens: row.total_tokens,
        max_response_time_ms: row.max_response_time_ms,
        avg_response_time_ms: row.avg_response_time_ms,
        response_count: row.response_count,
        share_token: row.share_token,
        message_count: row.message_count,
    })
}

fn message_row(m: &StoredMessage, enc: &Encryptor) -> Result<MessageRow, StoreError> {
    Ok(MessageRow {
        content: enc.encrypt(&m.content)?,
        timestamp: ms(m.timestamp),
        sender: m.sender,
        file_id: m.file_id.clone(),
        file_url: m.file_url.clone(),
        metadata: m.metadata.clone(),
    })
}

fn load_session(
    sessions: &impl ReadableTable<&'static str, &'static [u8]>,
    messages: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    id: &str,
    enc: &Encryptor,
) -> Result<Option<SessionSnapshot>, StoreError> {
    let Some(bytes) = sessions.get(id).map_err(db_err)? else {
        return Ok(None);
    };
    let row: SessionRow = decode(bytes.value())?;
    let mut list = Vec::with_capacity(usize::try_from(row.message_count).unwrap_or(0));
    for entry in messages
        .range((id, 0)..(id, row.message_count))
        .map_err(db_err)?
    {
        let (_, value) = entry.map_err(db_err)?;
        let m: MessageRow = decode(value.value())?;
        list.push(StoredMessage {
            content: enc.decrypt(&m.content)?,
            timestamp: m.timestamp,
            sender: m.sender,
            file_id: m.file_id,
            file_url: m.file_url,
            metadata: m.metadata,
        });
    }
    let s = summary(row, enc)?;
    Ok(Some(SessionSnapshot {
        id: s.id,
        user_id: s.user_id,
        name: s.name,
        model_id: s.model_id,
        messages: list,
        start_time: s.start_time,
        end_time: s.end_time,
        last_activity: s.last_activity,
        admin_assisted: s.admin_assisted,
        assisting_admin_id: s.assisting_admin_id,
        assisting_admin_name: s.assisting_admin_name,
        help_requested: s.help_requested,
        total_tokens: s.total_tokens,
        max_response_time_ms: s.max_response_time_ms,
        avg_response_time_ms: s.avg_response_time_ms,
        response_count: s.response_count,
        share_token: s.share_token,
    }))
}

/// Every summary (admin queries scan; the embedded store serves one node's worth of
/// sessions, and rows hold no messages).
fn all_summaries(
    txn: &redb::ReadTransaction,
    enc: &Encryptor,
) -> Result<Vec<SessionSummary>, StoreError> {
    let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
    let mut out = Vec::new();
    for entry in sessions.iter().map_err(db_err)? {
        let (_, value) = entry.map_err(db_err)?;
        out.push(summary(decode(value.value())?, enc)?);
    }
    Ok(out)
}

/// Appends `message` to session `id` and, when given, sets its statistics, in the
/// caller's transaction.
fn append(
    tables: &mut Tables<'_>,
    enc: &Encryptor,
    id: &str,
    message: &StoredMessage,
    stats: Option<UsageStats>,
) -> Result<(), StoreError> {
    let mut row = tables.session(id)?;
    tables
        .messages
        .insert(
            (id, row.message_count),
            encode(&message_row(message, enc)?)?.as_slice(),
        )
        .map_err(db_err)?;
    row.message_count += 1;
    row.last_activity = row.last_activity.max(ms(message.timestamp));
    if let Some(s) = stats {
        set_stats(&mut row, s);
    }
    tables.put_session(id, &row)
}

fn set_stats(row: &mut SessionRow, stats: UsageStats) {
    row.total_tokens = stats.total_tokens;
    row.max_response_time_ms = stats.max_response_time_ms;
    row.avg_response_time_ms = stats.avg_response_time_ms;
    row.response_count = stats.response_count;
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &SessionSnapshot) -> Result<(), StoreError> {
        let s = session.clone();
        self.write(move |tables, enc| {
            if tables
                .sessions
                .get(s.id.as_str())
                .map_err(db_err)?
                .is_some()
            {
                return Err(StoreError::DuplicateId(s.id.clone()));
            }
            if s.is_active() {
                if let Some(existing) = tables.active.get(s.user_id.as_str()).map_err(db_err)? {
                    return Err(StoreError::ActiveSessionExists {
                        existing_id: existing.value().to_owned(),
                    });
                }
                tables
                    .active
                    .insert(s.user_id.as_str(), s.id.as_str())
                    .map_err(db_err)?;
            }
            if let Some(token) = &s.share_token {
                if tables.shares.get(token.as_str()).map_err(db_err)?.is_some() {
                    return Err(StoreError::DuplicateKey("share token in use".to_owned()));
                }
                tables
                    .shares
                    .insert(token.as_str(), s.id.as_str())
                    .map_err(db_err)?;
            }
            for (i, m) in s.messages.iter().enumerate() {
                tables
                    .messages
                    .insert(
                        (s.id.as_str(), i as u64),
                        encode(&message_row(m, enc)?)?.as_slice(),
                    )
                    .map_err(db_err)?;
            }
            let row = SessionRow {
                id: s.id.clone(),
                user_id: s.user_id.clone(),
                name: enc.encrypt(&s.name)?,
                model_id: s.model_id.clone(),
                start_time: ms(s.start_time),
                end_time: s.end_time.map(ms),
                last_activity: ms(s.last_activity),
                admin_assisted: s.admin_assisted,
                assisting_admin_id: s.assisting_admin_id.clone(),
                assisting_admin_name: s.assisting_admin_name.clone(),
                help_requested: s.help_requested,
                total_tokens: s.total_tokens,
                max_response_time_ms: s.max_response_time_ms,
                avg_response_time_ms: s.avg_response_time_ms,
                response_count: s.response_count,
                share_token: s.share_token.clone(),
                message_count: s.messages.len() as u64,
            };
            tables.put_session(&s.id, &row)
        })
        .await
    }

    async fn append_message(&self, id: &str, message: &StoredMessage) -> Result<(), StoreError> {
        let (id, message) = (id.to_owned(), message.clone());
        self.write(move |tables, enc| append(tables, enc, &id, &message, None))
            .await
    }

    /// One transaction: the reply's row, then the session row read and rewritten once.
    async fn append_reply(
        &self,
        id: &str,
        reply: &StoredMessage,
        stats: Option<UsageStats>,
    ) -> Result<(), StoreError> {
        let (id, reply) = (id.to_owned(), reply.clone());
        self.write(move |tables, enc| append(tables, enc, &id, &reply, stats))
            .await
    }

    async fn update_name(&self, id: &str, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.modify(id, move |row, enc| {
            row.name = enc.encrypt(&name)?;
            Ok(())
        })
        .await
    }

    async fn update_model(&self, id: &str, model_id: &str) -> Result<(), StoreError> {
        let model_id = model_id.to_owned();
        self.modify(id, move |row, _| {
            row.model_id = model_id.clone();
            Ok(())
        })
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
        self.modify(id, move |row, _| {
            set_stats(row, stats);
            Ok(())
        })
        .await
    }

    async fn update_assistance<'a>(
        &self,
        id: &str,
        admin_id: Option<&'a str>,
        admin_name: Option<&'a str>,
    ) -> Result<(), StoreError> {
        let admin_id = admin_id.map(str::to_owned);
        let admin_name = admin_name.filter(|_| admin_id.is_some()).map(str::to_owned);
        self.modify(id, move |row, _| {
            row.admin_assisted = admin_id.is_some();
            row.assisting_admin_id = admin_id.clone();
            row.assisting_admin_name = admin_name.clone();
            Ok(())
        })
        .await
    }

    async fn set_help_requested(&self, id: &str, requested: bool) -> Result<(), StoreError> {
        self.modify(id, move |row, _| {
            row.help_requested = requested;
            Ok(())
        })
        .await
    }

    async fn end_session(
        &self,
        id: &str,
        end_time: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let id = id.to_owned();
        self.write(move |tables, _| {
            let mut row = tables.session(&id)?;
            if let Some(ended) = row.end_time {
                return Ok(ended);
            }
            let end = ms(end_time);
            row.end_time = Some(end);
            row.last_activity = row.last_activity.max(end);
            tables.put_session(&id, &row)?;
            let owns_slot = tables
                .active
                .get(row.user_id.as_str())
                .map_err(db_err)?
                .is_some_and(|v| v.value() == id);
            if owns_slot {
                tables.active.remove(row.user_id.as_str()).map_err(db_err)?;
            }
            Ok(end)
        })
        .await
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionSnapshot>, StoreError> {
        let id = id.to_owned();
        self.read(move |txn, enc| {
            let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            let messages = txn.open_table(MESSAGES).map_err(db_err)?;
            load_session(&sessions, &messages, &id, enc)
        })
        .await
    }

    async fn get_by_share_token(&self, token: &str) -> Result<Option<SessionSnapshot>, StoreError> {
        let token = token.to_owned();
        self.read(move |txn, enc| {
            let shares = txn.open_table(SHARE_TOKENS).map_err(db_err)?;
            let Some(id) = shares
                .get(token.as_str())
                .map_err(db_err)?
                .map(|v| v.value().to_owned())
            else {
                return Ok(None);
            };
            let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            let messages = txn.open_table(MESSAGES).map_err(db_err)?;
            load_session(&sessions, &messages, &id, enc)
        })
        .await
    }

    async fn set_share_token(&self, id: &str, token: &str) -> Result<String, StoreError> {
        let (id, token) = (id.to_owned(), token.to_owned());
        self.write(move |tables, _| {
            let mut row = tables.session(&id)?;
            if let Some(existing) = row.share_token {
                return Ok(existing);
            }
            if tables.shares.get(token.as_str()).map_err(db_err)?.is_some() {
                return Err(StoreError::DuplicateKey("share token in use".to_owned()));
            }
            tables
                .shares
                .insert(token.as_str(), id.as_str())
                .map_err(db_err)?;
            row.share_token = Some(token.clone());
            tables.put_session(&id, &row)?;
            Ok(token.clone())
        })
        .await
    }

    async fn revoke_share_token(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tables, _| {
            let mut row = tables.session(&id)?;
            if let Some(token) = row.share_token.take() {
                tables.shares.remove(token.as_str()).map_err(db_err)?;
                tables.put_session(&id, &row)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<(Vec<SessionSummary>, bool), StoreError> {
        let query = AdminQuery {
            user_id: Some(user_id.to_owned()),
            limit,
            ..AdminQuery::default()
        };
        let page = self.admin_list(&query).await?;
        let truncated = page.total > u64::from(limit);
        Ok((page.items, truncated))
    }

    async fn admin_list(&self, q: &AdminQuery) -> Result<Page, StoreError> {
        let q = q.clone();
        self.read(move |txn, enc| {
            let mut rows: Vec<SessionSummary> = all_summaries(txn, enc)?
                .into_iter()
                .filter(|s| query::matches(s, &q))
                .collect();
            rows.sort_by(|a, b| query::compare(a, b, q.sort_by, q.sort_order));
            let total = rows.len() as u64;
            let items = rows
                .into_iter()
                .skip(usize::try_from(q.offset).unwrap_or(usize::MAX))
                .take(q.limit as usize)
                .collect();
            Ok(Page { items, total })
        })
        .await
    }

    async fn metrics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<StoreMetrics, StoreError> {
        self.read(move |txn, enc| {
            let mut acc = MetricsAccumulator::default();
            for s in all_summaries(txn, enc)? {
                acc.add_summary(&s, from, to);
            }
            Ok(acc.finish())
        })
        .await
    }

    async fn load_active(&self) -> Result<Vec<SessionSnapshot>, StoreError> {
        self.read(move |txn, enc| {
            let active = txn.open_table(ACTIVE_BY_USER).map_err(db_err)?;
            let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            let messages = txn.open_table(MESSAGES).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in active.iter().map_err(db_err)? {
                let (_, id) = entry.map_err(db_err)?;
                if let Some(s) = load_session(&sessions, &messages, id.value(), enc)? {
                    out.push(s);
                }
            }
            out.sort_by(|a, b| {
                a.start_time
                    .cmp(&b.start_time)
                    .then_with(|| a.id.cmp(&b.id))
            });
            Ok(out)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|txn, _| txn.open_table(SESSIONS).map(|_| ()).map_err(db_err))
            .await
    }

    fn health(&self) -> StoreHealth {
        StoreHealth::default()
    }

    async fn shutdown(&self, _deadline: Duration) -> Result<usize, StoreError> {
        // Every write is committed durably before it returns: nothing is pending.
        Ok(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Long enough that a test which waited for a window's end would time out first.
    const FOREVER: Duration = Duration::from_secs(600);
    const PATIENCE: Duration = Duration::from_secs(60);

    fn open(dir: &tempfile::TempDir, window: Duration) -> EmbeddedStore {
        EmbeddedStore::open_grouping(
            &dir.path().join("t.redb"),
            Encryptor::disabled(),
            EmbeddedOptions::default(),
            Grouping {
                window,
                target: GROUP_TARGET,
            },
        )
        .unwrap()
    }

    fn counters(store: &EmbeddedStore) -> (u64, u64, usize) {
        let c = &store.writer.counters;
        (
            c.commits.load(Ordering::Relaxed),
            c.answered.load(Ordering::Relaxed),
            c.holding.load(Ordering::Relaxed),
        )
    }

    /// Writes answered since `answered_before`, held in a batch, or queued behind it:
    /// every write sent is one of these once its sender has counted it.
    fn accounted(store: &EmbeddedStore, answered_before: u64) -> usize {
        let (_, answered, holding) = counters(store);
        let queued = store.writer.counters.queued.load(Ordering::Relaxed);
        let answered = isize::try_from(answered - answered_before).unwrap();
        // The count of queued writes may be below zero for a moment (see its docs).
        usize::try_from(answered + isize::try_from(holding).unwrap() + queued).unwrap_or(0)
    }

    /// Waits (at most [`PATIENCE`], else fails) until the writer holds a batch open
    /// and each of the `sent` writes sent since `answered_before` is answered, held, or
    /// queued behind the held ones (which do not wake the writer).
    async fn held(store: &EmbeddedStore, answered_before: u64, sent: usize) {
        tokio::time::timeout(PATIENCE, async {
            while counters(store).2 < 2 || accounted(store, answered_before) != sent {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the writes are held for more, not committed one by one");
    }

    fn job(may_wait: bool) -> Job {
        Job {
            work: Box::new(|_, _| Ok(Box::new(()) as Box<dyn Any + Send>)),
            may_wait,
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    async fn created(store: &EmbeddedStore, id: &str) {
        let session = SessionSnapshot::new_active(id, format!("user-{id}"), Utc::now());
        store.create_session(&session).await.unwrap();
    }

    /// Waits (at most [`PATIENCE`], else fails with `expected`) until every write in
    /// `tasks` has succeeded.
    async fn all_succeed(tasks: &mut tokio::task::JoinSet<Result<(), StoreError>>, expected: &str) {
        tokio::time::timeout(PATIENCE, async {
            while let Some(result) = tasks.join_next().await {
                result.unwrap().unwrap();
            }
        })
        .await
        .expect(expected);
    }

    #[test]
    fn only_a_batch_of_writes_that_may_wait_arriving_together_waits() {
        let g = Grouping::DEFAULT;
        assert!(!g.should_wait(&[job(true)]), "a lone write commits at once");
        assert!(g.should_wait(&[job(true), job(true)]));
        assert!(
            !g.should_wait(&[job(true), job(false)]),
            "someone waits on it"
        );
        assert!(!g.should_wait(&[job(false), job(false)]));
        let full: Vec<Job> = (0..GROUP_TARGET).map(|_| job(true)).collect();
        assert!(!g.should_wait(&full), "a full batch commits at once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_share_a_commit_until_a_direct_write_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, FOREVER);
        created(&store, "s").await;
        let queued = store.for_queued_writes();
        let (commits_before, answered_before, _) = counters(&store);

        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let queued = queued.clone();
            tasks.spawn(async move { queued.update_name("s", &format!("queued {i}")).await });
        }
        held(&store, answered_before, 40).await;
        let (commits_held, _, _) = counters(&store);

        // A write somebody waits on is not held, and takes the others with it.
        tokio::time::timeout(PATIENCE, store.update_name("s", "direct"))
            .await
            .expect("a direct write is never held for the window")
            .unwrap();
        all_succeed(&mut tasks, "the held writes were committed with it").await;
        let (commits, answered, holding) = counters(&store);
        assert_eq!(answered - answered_before, 41);
        assert_eq!(holding, 0);
        assert_eq!(
            commits - commits_held,
            1,
            "the held writes and the direct one share one commit"
        );
        assert!(commits_held - commits_before < 40 - 1);
        let name = store.get_session("s").await.unwrap().unwrap().name;
        assert_eq!(
            name, "direct",
            "the direct write came last and was applied last"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_failing_in_a_held_batch_leaves_the_others_applied_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, FOREVER);
        created(&store, "s").await;
        let queued = store.for_queued_writes();
        let (_, answered_before, _) = counters(&store);

        // Appends held in one batch, every tenth to a session that does not exist:
        // the batch's transaction, and the tables it lends to each write, are rolled
        // back, and each write runs again on its own.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..30 {
            let queued = queued.clone();
            tasks.spawn(async move {
                let target = if i % 10 == 3 { "missing" } else { "s" };
                let message = StoredMessage::text(Sender::User, format!("m{i}"), Utc::now());
                (target, queued.append_message(target, &message).await)
            });
        }
        held(&store, answered_before, 30).await;
        let last = StoredMessage::text(Sender::User, "direct".to_owned(), Utc::now());
        tokio::time::timeout(PATIENCE, store.append_message("s", &last))
            .await
            .expect("a direct write is never held for the window")
            .unwrap();

        let (mut ok, mut not_found) = (0, 0);
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                ("s", Ok(())) => ok += 1,
                ("missing", Err(StoreError::NotFound(_))) => not_found += 1,
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!((ok, not_found), (27, 3));
        let messages = store.get_session("s").await.unwrap().unwrap().messages;
        let mut contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents.len(), 28, "each append applied exactly once");
        assert_eq!(contents.pop(), Some("direct"), "the direct write came last");
        contents.sort_unstable();
        let mut expected: Vec<String> = (0..30)
            .filter(|i| i % 10 != 3)
            .map(|i| format!("m{i}"))
            .collect();
        expected.sort_unstable();
        assert_eq!(contents, expected);
        assert!(store.get_session("missing").await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_batch_commits_as_soon_as_its_target_is_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, FOREVER);
        created(&store, "s").await;
        let queued = store.for_queued_writes();
        let (_, answered_before, _) = counters(&store);
        let mut tasks = tokio::task::JoinSet::new();
        let send = |tasks: &mut tokio::task::JoinSet<_>, i: usize| {
            let queued = queued.clone();
            let message = StoredMessage::text(Sender::User, format!("m{i}"), Utc::now());
            tasks.spawn(async move { queued.append_message("s", &message).await });
        };
        // Writes two at a time until the writer holds a batch open (for ever, unless
        // something wakes it) with every write sent so far accounted for.
        let mut sent = 0;
        tokio::time::timeout(PATIENCE, async {
            loop {
                let (_, answered, holding) = counters(&store);
                if accounted(&store, answered_before) == sent {
                    if holding >= 2 {
                        break;
                    }
                    if answered - answered_before == sent as u64 {
                        send(&mut tasks, sent);
                        send(&mut tasks, sent + 1);
                        sent += 2;
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the writer holds a batch open");
        // Exactly as many more as bring the waiting writes to the target: the last
        // one counted wakes the writer, which takes them all (more would leave a few
        // for a next batch, which would wait for its window).
        let (_, answered, _) = counters(&store);
        let waiting = sent - usize::try_from(answered - answered_before).unwrap();
        for i in 0..GROUP_TARGET - waiting {
            send(&mut tasks, sent + i);
        }
        let sent = sent + GROUP_TARGET - waiting;
        all_succeed(
            &mut tasks,
            "the write that brings a held batch to its target wakes the writer",
        )
        .await;
        let (_, _, holding) = counters(&store);
        assert_eq!(holding, 0);
        let stored = store.get_session("s").await.unwrap().unwrap();
        assert_eq!(stored.messages.len(), sent);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn held_writes_are_committed_when_the_window_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, Duration::from_millis(20));
        created(&store, "s").await;
        let queued = store.for_queued_writes();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..10 {
            let queued = queued.clone();
            tasks.spawn(async move {
                let message = StoredMessage::text(Sender::User, format!("m{i}"), Utc::now());
                queued.append_message("s", &message).await
            });
        }
        all_succeed(
            &mut tasks,
            "nothing else arrives: the window's end commits them",
        )
        .await;
        let stored = store.get_session("s").await.unwrap().unwrap();
        assert_eq!(stored.messages.len(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_that_wait_on_each_write_are_never_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, FOREVER);
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..8 {
            let store = store.clone();
            writers.spawn(async move {
                let id = format!("w{w}");
                created(&store, &id).await;
                for i in 0..25 {
                    let message = StoredMessage::text(Sender::User, format!("m{i}"), Utc::now());
                    store.append_message(&id, &message).await?;
                }
                Ok::<_, StoreError>(())
            });
        }
        all_succeed(
            &mut writers,
            "8 closed-loop writers finish without waiting for any window",
        )
        .await;
        let (_, answered, holding) = counters(&store);
        assert_eq!((answered, holding), (8 * 26, 0));
    }
}
