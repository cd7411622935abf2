//! One reply: the task that streams it from the providers into the session.
//!
//! The task is owned by the router's tracker, not by a socket: when every connection
//! drops, the reply still completes, is stored, and can be replayed with `resume`.
//! Every chunk is published through [`Session::if_ai_may_speak`], so the check that no
//! admin has taken over happens at send time, under the same lock as the takeover.

use std::sync::Arc;
use std::time::Instant;

use chat_llm::{ChatRequest, LlmError, StreamEvent, Usage};
use chat_protocol::{ErrorCode, Message};
use chat_session::{Sender, Session, StoredMessage};
use chat_storage::UsageStats;
use chrono::Utc;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::gate::Gated;
use crate::router::{LiveSession, MessageRouter};

/// Metadata key on a stored reply that was cut short, with the reason as value
/// (`stopped`, `admin_takeover`, `session_ended`, `shutdown`, or an error code).
pub const META_INTERRUPTED: &str = "interrupted";

/// Everything one generation needs, captured when the user's message was accepted.
pub(crate) struct GenerationJob {
    pub(crate) session: Arc<Session>,
    pub(crate) live: Arc<LiveSession>,
    /// Conversation before the new message, oldest first.
    pub(crate) history: Vec<StoredMessage>,
    /// The new user message.
    pub(crate) content: String,
    /// When the user's message was accepted (response time is measured from here).
    pub(crate) started: Instant,
    /// Cancelled by `stop`, takeover, session end or shutdown.
    pub(crate) cancel: CancellationToken,
    /// Identifies this generation's slot in `live.generation`.
    pub(crate) slot_id: u64,
}

/// How a generation ended.
enum Outcome {
    Completed,
    /// Cancelled (stop, takeover, end, shutdown) — the reason is derived afterwards.
    Cancelled,
    /// The gate refused a chunk: an admin took over or the session ended meanwhile.
    Preempted,
    Failed(LlmError),
}

struct Progress {
    text: String,
    usage: Option<Usage>,
    provider: Option<String>,
    last_seq: u64,
    first_token: Option<Instant>,
    /// Time spent waiting on the provider (connect, first byte, every chunk); the rest
    /// of the reply's wall time is the gateway's own overhead.
    provider_wait: std::time::Duration,
}

pub(crate) async fn run(router: Arc<MessageRouter>, job: GenerationJob) {
    let session_id = job.session.id().to_owned();
    let llm = &router.deps.config.llm;
    let request = ChatRequest::from_settings(llm, &job.history, job.content.clone())
        .with_user_id(job.session.user_id());
    let model = job.session.model_id();
    let selected = (!model.is_empty()).then_some(model.as_str());
    let mut progress = Progress {
        text: String::new(),
        usage: None,
        provider: None,
        last_seq: 0,
        first_token: None,
        provider_wait: std::time::Duration::ZERO,
    };

    let outcome = drive(&router, &job, selected, request, &mut progress).await;
    finish(&router, &job, &session_id, outcome, progress).await;
    // `finish` frees the slot before the closing frame; this covers its early paths.
    free_slot(&job);
}

/// Frees the session's generation slot unless someone (takeover, end) already took it
/// and a newer generation claimed it since.
fn free_slot(job: &GenerationJob) {
    let mut slot = job.live.generation.lock();
    if slot.as_ref().is_some_and(|s| s.id == job.slot_id) {
        *slot = None;
    }
}

async fn drive(
    router: &MessageRouter,
    job: &GenerationJob,
    selected: Option<&str>,
    request: ChatRequest,
    progress: &mut Progress,
) -> Outcome {
    // One cancellation future for the whole reply, polled again only when the token
    // woke it: polling it takes the token's lock twice (check, then register), and
    // this loop wakes once per chunk.
    let cancelled = Gated::new(job.cancel.cancelled());
    tokio::pin!(cancelled);
    let waiting = Instant::now();
    let attempt = tokio::select! {
        biased;
        () = &mut cancelled => return Outcome::Cancelled,
        r = router.deps.providers.stream_with_failover(selected, request) => r,
    };
    progress.provider_wait += waiting.elapsed();
    let (provider, mut stream) = match attempt {
        Ok(ok) => ok,
        Err(e) => return Outcome::Failed(e),
    };
    progress.provider = Some(provider);
    loop {
        let waiting = Instant::now();
        let event = tokio::select! {
            biased;
            () = &mut cancelled => return Outcome::Cancelled,
            e = stream.next() => e,
        };
        progress.provider_wait += waiting.elapsed();
        match event {
            None | Some(Ok(StreamEvent::Done)) => return Outcome::Completed,
            Some(Ok(StreamEvent::Usage(usage))) => progress.usage = Some(usage),
            Some(Ok(StreamEvent::Delta(text))) => {
                if text.is_empty() {
                    continue;
                }
                let published = job
                    .session
                    .if_ai_may_speak(|| job.live.channel.publish_chunk(&text));
                let Some(seq) = published else {
                    return Outcome::Preempted;
                };
                if progress.first_token.is_none() {
                    progress.first_token = Some(Instant::now());
                    metrics::histogram!("chatbox_llm_time_to_first_token_seconds")
                        .record(job.started.elapsed().as_secs_f64());
                }
                progress.last_seq = seq;
                progress.text.push_str(&text);
            }
            Some(Err(e)) => return Outcome::Failed(e),
        }
    }
}

async fn finish(
    router: &MessageRouter,
    job: &GenerationJob,
    session_id: &str,
    outcome: Outcome,
    progress: Progress,
) {
    let store = &router.deps.store;
    let elapsed_ms = i64::try_from(job.started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let tokens = progress.usage.map(|u| u.total()).unwrap_or_else(|| {
        chat_llm::estimate_tokens(job.content.len())
            + chat_llm::estimate_tokens(progress.text.len())
    });

    let interrupted = match &outcome {
        Outcome::Completed => None,
        Outcome::Failed(e) => Some(e.wire_code().to_owned()),
        Outcome::Preempted | Outcome::Cancelled => Some(cancel_reason(router, &job.session)),
    };

    // Memory first, so a client that sees the closing frame and asks the API right
    // away finds the reply and the statistics.
    let keep = !progress.text.is_empty() || matches!(outcome, Outcome::Completed);
    let reply = keep.then(|| {
        let mut reply = StoredMessage::text(Sender::Ai, progress.text.clone(), Utc::now());
        if let Some(p) = &progress.provider {
            reply.metadata.insert("provider".to_owned(), p.clone());
        }
        if let Some(reason) = &interrupted {
            reply
                .metadata
                .insert(META_INTERRUPTED.to_owned(), reason.clone());
        }
        // Appending to a session that ended meanwhile is refused in memory; the reply
        // is still stored below so history shows what the user saw.
        let _ = job.session.append(reply.clone());
        reply
    });
    let recorded = matches!(outcome, Outcome::Completed)
        && job
            .session
            .record_response(elapsed_ms, i64::try_from(tokens).unwrap_or(i64::MAX))
            .is_ok();

    // Then storage, still before the closing frame: the next user message may follow
    // it immediately, and the store must receive this reply first to keep the order
    // (the write-behind queue makes this an enqueue, not a database round trip).
    let stats = recorded.then(|| {
        let total = job.started.elapsed();
        metrics::histogram!("chatbox_llm_response_seconds").record(total.as_secs_f64());
        // Request time minus provider time: what the gateway itself added.
        metrics::histogram!("chatbox_gateway_overhead_seconds")
            .record(total.saturating_sub(progress.provider_wait).as_secs_f64());
        metrics::counter!("chatbox_llm_tokens_total").increment(tokens);
        let stats = job.session.stats();
        UsageStats {
            total_tokens: stats.total_tokens(),
            max_response_time_ms: stats.max_ms(),
            avg_response_time_ms: stats.avg_ms(),
            response_count: stats.count(),
        }
    });
    // The reply and its statistics in one write (statistics are recorded only for a
    // completed reply, which is always kept).
    if let Some(reply) = reply {
        router.persist(
            "append_reply",
            store.append_reply(session_id, &reply, stats).await,
        );
        metrics::counter!("chatbox_messages_total", "sender" => "ai").increment(1);
    }

    // The slot is free before the client hears "done", so its next message is
    // accepted.
    free_slot(job);

    // The closing frame, through the gate: after a takeover nothing is sent at all.
    match &outcome {
        Outcome::Completed | Outcome::Cancelled => {
            job.session.if_ai_may_speak(|| {
                job.live.channel.publish_seq(|seq| {
                    let mut last = Message::ai_chunk(session_id, "", seq, true);
                    last.metadata
                        .insert("tokens".to_owned(), tokens.to_string());
                    if let Some(p) = &progress.provider {
                        last.metadata.insert("provider".to_owned(), p.clone());
                    }
                    if let Some(reason) = &interrupted {
                        last.metadata
                            .insert(META_INTERRUPTED.to_owned(), reason.clone());
                    }
                    last.to_json()
                })
            });
        }
        Outcome::Failed(error) => {
            metrics::counter!("chatbox_llm_errors_total", "code" => error.wire_code()).increment(1);
            tracing::warn!(%session_id, error = %error, "generation failed");
            let code = match error {
                LlmError::FirstTokenTimeout | LlmError::IdleTimeout | LlmError::TotalTimeout => {
                    ErrorCode::LlmTimeout
                }
                LlmError::RateLimited { .. } => ErrorCode::TooManyRequests,
                _ => ErrorCode::LlmUnavailable,
            };
            let retry_after = error
                .retry_after()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
            let frame = Message::error(
                code,
                error.user_message(),
                error.is_recoverable(),
                retry_after,
            )
            .with_session(session_id);
            job.live.channel.broadcast(Arc::from(frame.to_json()), None);
        }
        Outcome::Preempted => {}
    }
}

/// Why a cancelled generation stopped, for the stored reply and the final frame.
fn cancel_reason(router: &MessageRouter, session: &Session) -> String {
    if session.is_admin_assisted() {
        "admin_takeover"
    } else if !session.is_active() {
        "session_ended"
    } else if router.cancel.is_cancelled() {
        "shutdown"
    } else {
        "stopped"
    }
    .to_owned()
}
