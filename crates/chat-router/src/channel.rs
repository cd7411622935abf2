//! The live side of one session: who is subscribed, the sequence numbers of streamed
//! chunks, and the bounded replay buffer that makes `resume` lossless.
//!
//! Publishing and resuming take the same lock, so a connection that resumes sees every
//! chunk exactly once: those published before it subscribed come from the buffer,
//! those after from the fan-out. Sends under the lock are `try_send`s on bounded
//! queues — they never wait, so the lock is never held across an `.await` or a slow
//! consumer.
//!
//! The buffer keeps a text chunk as its text and timestamp, not as the ~200-byte frame
//! it was sent as: a chatting session fills its 2 048 slots within a few replies, and
//! the frames would cost ~450 KB per session where the parts cost about a quarter of
//! that. `resume` writes the frame again from the parts, byte for byte the frame that
//! went out ([`chat_protocol::ai_chunk_json`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::ai_chunk_json;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::outbound::{ConnectionHandle, ConnectionId};

/// What a `resume` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeOutcome {
    /// Chunks re-sent from the buffer.
    pub replayed: usize,
    /// True when chunks after `last_seq` had already left the buffer: the client should
    /// reload the conversation over HTTP to fill the gap.
    pub gap: bool,
}

/// One frame kept for `resume`.
enum Kept {
    /// A text chunk: the frame is written again from these on resume.
    Chunk { at: DateTime<Utc>, text: Box<str> },
    /// Any other sequenced frame (the final chunk of a reply), as sent.
    Frame(Arc<str>),
}

struct ChannelState {
    session_id: Box<str>,
    next_seq: u64,
    replay: VecDeque<(u64, Kept)>,
    capacity: usize,
    subscribers: Vec<Subscriber>,
    /// Last subscribe, unsubscribe, resume or frame: the grace period of
    /// [`SessionChannel::release_if_idle`] counts from here.
    last_used: Instant,
}

impl ChannelState {
    fn touch(&mut self) {
        self.last_used = Instant::now();
    }

    /// Takes `seq` and keeps `kept` for `resume`, dropping the oldest frame when the
    /// buffer is full.
    fn keep(&mut self, seq: u64, kept: Kept) {
        self.next_seq = seq + 1;
        if self.replay.len() >= self.capacity {
            self.replay.pop_front();
        }
        self.replay.push_back((seq, kept));
        self.touch();
    }

    /// The frame of a kept entry, as it was sent.
    fn frame(&self, seq: u64, kept: &Kept) -> Arc<str> {
        match kept {
            Kept::Chunk { at, text } => Arc::from(ai_chunk_json(&self.session_id, text, seq, *at)),
            Kept::Frame(frame) => frame.clone(),
        }
    }
}

/// One subscribed connection and the first chunk it received live, so a `resume` on
/// an already subscribed connection re-sends only what it has not seen.
struct Subscriber {
    conn: ConnectionHandle,
    first_live_seq: Option<u64>,
}

/// Fan-out and replay for one session.
pub struct SessionChannel {
    state: Mutex<ChannelState>,
}

impl SessionChannel {
    /// The channel of `session_id`, keeping at most `replay_capacity` chunks for
    /// `resume`.
    pub fn new(session_id: &str, replay_capacity: usize) -> Self {
        Self {
            state: Mutex::new(ChannelState {
                session_id: session_id.into(),
                next_seq: 1,
                replay: VecDeque::with_capacity(replay_capacity.min(64)),
                capacity: replay_capacity.max(1),
                subscribers: Vec::new(),
                last_used: Instant::now(),
            }),
        }
    }

    /// Adds a subscriber; subscribing the same connection twice is a no-op.
    /// Returns true when it was added.
    pub fn subscribe(&self, conn: &ConnectionHandle) -> bool {
        let mut state = self.state.lock();
        if state.subscribers.iter().any(|s| s.conn.id() == conn.id()) {
            return false;
        }
        state.subscribers.push(Subscriber {
            conn: conn.clone(),
            first_live_seq: None,
        });
        state.touch();
        true
    }

    /// Removes exactly that connection. Returns true when it was subscribed.
    pub fn unsubscribe(&self, id: ConnectionId) -> bool {
        let mut state = self.state.lock();
        let before = state.subscribers.len();
        state.subscribers.retain(|s| s.conn.id() != id);
        state.touch();
        before != state.subscribers.len()
    }

    /// Number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.state.lock().subscribers.len()
    }

    /// Ids of the subscribers (tests and diagnostics).
    pub fn subscriber_ids(&self) -> Vec<ConnectionId> {
        self.state
            .lock()
            .subscribers
            .iter()
            .map(|s| s.conn.id())
            .collect()
    }

    /// Sends a frame that is not replayed (loading, admin notices, echoes) to every
    /// subscriber except `except`. Returns how many got it.
    pub fn broadcast(&self, frame: Arc<str>, except: Option<ConnectionId>) -> usize {
        let mut state = self.state.lock();
        state.touch();
        fan_out(&mut state.subscribers, &frame, except, None)
    }

    /// Sends the frame `make` writes to every subscriber except `sender`, writing it
    /// only when there is one (an echo of what a user sent goes to their other devices
    /// and an assisting admin; most users have neither). Returns how many got it.
    pub fn broadcast_to_others(
        &self,
        sender: ConnectionId,
        make: impl FnOnce() -> String,
    ) -> usize {
        let mut state = self.state.lock();
        state.touch();
        if state.subscribers.iter().all(|s| s.conn.id() == sender) {
            // As `fan_out` would: the sender's own entry goes once its connection has.
            state.subscribers.retain(|s| !s.conn.is_closed());
            return 0;
        }
        fan_out(
            &mut state.subscribers,
            &Arc::from(make()),
            Some(sender),
            None,
        )
    }

    /// Removes the subscribers `which` selects (e.g. an admin's connections after a
    /// release). Returns how many were removed.
    pub fn unsubscribe_where(&self, which: impl Fn(&ConnectionHandle) -> bool) -> usize {
        let mut state = self.state.lock();
        let before = state.subscribers.len();
        state.subscribers.retain(|s| !which(&s.conn));
        state.touch();
        before - state.subscribers.len()
    }

    /// Assigns the next sequence number, lets `make` build the frame for it, keeps the
    /// frame for `resume` and sends it to every subscriber. Returns the sequence number.
    pub fn publish_seq(&self, make: impl FnOnce(u64) -> String) -> u64 {
        let mut state = self.state.lock();
        let seq = state.next_seq;
        let frame: Arc<str> = Arc::from(make(seq));
        state.keep(seq, Kept::Frame(frame.clone()));
        fan_out(&mut state.subscribers, &frame, None, Some(seq));
        seq
    }

    /// Publishes one streamed text chunk of a reply (`ai_response`, not done) under
    /// the next sequence number, stamped now; keeps its text for `resume` and sends
    /// the frame to every subscriber. Returns the sequence number.
    pub fn publish_chunk(&self, text: &str) -> u64 {
        let at = Utc::now();
        let mut state = self.state.lock();
        let seq = state.next_seq;
        let frame: Arc<str> = Arc::from(ai_chunk_json(&state.session_id, text, seq, at));
        state.keep(
            seq,
            Kept::Chunk {
                at,
                text: text.into(),
            },
        );
        fan_out(&mut state.subscribers, &frame, None, Some(seq));
        seq
    }

    /// The last sequence number handed out (0 before the first chunk).
    pub fn last_seq(&self) -> u64 {
        self.state.lock().next_seq - 1
    }

    /// Re-sends every buffered chunk after `last_seq` that `conn` has not received,
    /// then subscribes it, as one step: no chunk is lost or duplicated in between.
    ///
    /// A connection that was already subscribed (devices are bound to the active
    /// session on connect) may have received later chunks live before its `resume`
    /// arrived; only the chunks before the first of those are re-sent, so each chunk
    /// reaches it exactly once (clients order chunks by `seq`).
    pub fn resume(&self, conn: &ConnectionHandle, last_seq: u64) -> ResumeOutcome {
        let mut state = self.state.lock();
        let oldest = state.replay.front().map_or(state.next_seq, |(s, _)| *s);
        let gap = last_seq + 1 < oldest && last_seq + 1 < state.next_seq;
        let existing = state
            .subscribers
            .iter()
            .position(|s| s.conn.id() == conn.id());
        let upper = existing
            .and_then(|i| state.subscribers[i].first_live_seq)
            .unwrap_or(u64::MAX);
        let mut replayed = 0;
        for (seq, kept) in &state.replay {
            if *seq > last_seq && *seq < upper && conn.try_send(state.frame(*seq, kept)) {
                replayed += 1;
            }
        }
        match existing {
            // From now on the connection is up to date: a later resume starts over.
            Some(i) => state.subscribers[i].first_live_seq = None,
            None => state.subscribers.push(Subscriber {
                conn: conn.clone(),
                first_live_seq: None,
            }),
        }
        state.touch();
        ResumeOutcome { replayed, gap }
    }

    /// Frees the replay buffer when nobody has been subscribed, and no frame has gone
    /// through the channel, for at least `grace` up to `now`. Returns true when the
    /// channel is idle in that sense (its buffer is then empty). Subscribers whose
    /// connection has closed no longer count (the grace period starts when they are
    /// found gone).
    ///
    /// Sequence numbers continue where they were: a later `resume` with a `last_seq`
    /// from before reports a gap (the client reloads the conversation), and new chunks
    /// never reuse a number the client has seen.
    pub fn release_if_idle(&self, now: Instant, grace: Duration) -> bool {
        let mut state = self.state.lock();
        let before = state.subscribers.len();
        state.subscribers.retain(|s| !s.conn.is_closed());
        if state.subscribers.len() != before {
            state.last_used = now;
        }
        if !state.subscribers.is_empty() || now.saturating_duration_since(state.last_used) < grace {
            return false;
        }
        if state.replay.capacity() > 0 {
            state.replay = VecDeque::new();
        }
        true
    }

    /// Frames held for `resume` (tests and diagnostics).
    pub fn buffered_frames(&self) -> usize {
        self.state.lock().replay.len()
    }
}

/// Sends to every subscriber but `except`, dropping the ones that are gone or too slow;
/// `seq` (for replayable chunks) records the first chunk each one received live.
fn fan_out(
    subscribers: &mut Vec<Subscriber>,
    frame: &Arc<str>,
    except: Option<ConnectionId>,
    seq: Option<u64>,
) -> usize {
    let mut delivered = 0;
    subscribers.retain_mut(|sub| {
        if Some(sub.conn.id()) == except {
            return !sub.conn.is_closed();
        }
        if sub.conn.try_send(frame.clone()) {
            delivered += 1;
            if sub.first_live_seq.is_none() {
                sub.first_live_seq = seq;
            }
            true
        } else {
            false
        }
    });
    delivered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{Identity, Outgoing};

    fn conn(id: u64, capacity: usize) -> (ConnectionHandle, tokio::sync::mpsc::Receiver<Outgoing>) {
        ConnectionHandle::new(
            id,
            Identity {
                user_id: "u".into(),
                name: "u".into(),
                is_admin: false,
            },
            capacity,
        )
    }

    fn drain(rx: &mut tokio::sync::mpsc::Receiver<Outgoing>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Outgoing::Frame(f)) = rx.try_recv() {
            out.push(f.to_string());
        }
        out
    }

    #[test]
    fn every_subscriber_receives_and_subscribe_is_idempotent() {
        let channel = SessionChannel::new("s", 8);
        let (a, mut ra) = conn(1, 8);
        let (b, mut rb) = conn(2, 8);
        assert!(channel.subscribe(&a));
        assert!(!channel.subscribe(&a));
        assert!(channel.subscribe(&b));
        channel.publish_seq(|seq| format!("chunk {seq}"));
        assert_eq!(drain(&mut ra), vec!["chunk 1"]);
        assert_eq!(drain(&mut rb), vec!["chunk 1"]);
        assert!(channel.unsubscribe(1));
        assert!(!channel.unsubscribe(1));
        assert_eq!(channel.subscriber_ids(), vec![2]);
    }

    #[test]
    fn resume_replays_exactly_the_missed_chunks() {
        let channel = SessionChannel::new("s", 8);
        for _ in 0..5 {
            channel.publish_seq(|seq| format!("c{seq}"));
        }
        let (a, mut ra) = conn(1, 16);
        let outcome = channel.resume(&a, 2);
        assert_eq!(
            outcome,
            ResumeOutcome {
                replayed: 3,
                gap: false
            }
        );
        channel.publish_seq(|seq| format!("c{seq}"));
        assert_eq!(drain(&mut ra), vec!["c3", "c4", "c5", "c6"]);
    }

    #[test]
    fn a_resumed_chunk_is_the_frame_that_went_out_live() {
        let channel = SessionChannel::new("0123456789abcdef0123456789abcdef", 16);
        let (live, mut live_rx) = conn(1, 16);
        channel.subscribe(&live);
        let texts = ["Hello", " \"quoted\" ", "🦀\n", ""];
        for text in texts {
            channel.publish_chunk(text);
        }
        let last = channel.publish_seq(|seq| format!("final {seq}"));
        assert_eq!(last, 5, "chunks and frames share one sequence");
        let sent = drain(&mut live_rx);

        let (late, mut late_rx) = conn(2, 16);
        let outcome = channel.resume(&late, 0);
        assert_eq!(outcome.replayed, 5);
        assert_eq!(drain(&mut late_rx), sent, "byte for byte");

        let frames: Vec<chat_protocol::Message> = sent[..4]
            .iter()
            .map(|f| serde_json::from_str(f).expect("valid frame"))
            .collect();
        for (i, (frame, text)) in frames.iter().zip(texts).enumerate() {
            assert_eq!(frame.kind, chat_protocol::MessageType::AiResponse);
            assert_eq!(
                frame.session_id.as_deref(),
                Some("0123456789abcdef0123456789abcdef")
            );
            assert_eq!(frame.content.as_deref(), Some(text));
            assert_eq!(frame.seq(), Some(i as u64 + 1));
            assert!(!frame.is_done());
        }
        assert_eq!(sent[4], "final 5");
    }

    #[test]
    fn resume_on_a_subscribed_connection_sends_only_what_it_missed() {
        let channel = SessionChannel::new("s", 16);
        for _ in 0..3 {
            channel.publish_seq(|seq| format!("c{seq}"));
        }
        // The device reconnects: bound on connect, it gets c4 and c5 live...
        let (a, mut ra) = conn(1, 16);
        channel.subscribe(&a);
        channel.publish_seq(|seq| format!("c{seq}"));
        channel.publish_seq(|seq| format!("c{seq}"));
        // ...then its resume says it had seen up to c1 on the old socket.
        let outcome = channel.resume(&a, 1);
        assert_eq!(outcome.replayed, 2);
        channel.publish_seq(|seq| format!("c{seq}"));
        let got = drain(&mut ra);
        assert_eq!(got, vec!["c4", "c5", "c2", "c3", "c6"]);
        let mut sorted = got.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "no duplicates");
    }

    #[test]
    fn resume_reports_a_gap_when_the_buffer_moved_on() {
        let channel = SessionChannel::new("s", 3);
        for _ in 0..10 {
            channel.publish_seq(|seq| format!("c{seq}"));
        }
        let (a, mut ra) = conn(1, 16);
        let outcome = channel.resume(&a, 2);
        assert!(outcome.gap);
        assert_eq!(drain(&mut ra), vec!["c8", "c9", "c10"]);
        let (b, _rb) = conn(2, 16);
        assert!(!channel.resume(&b, 10).gap, "up to date is not a gap");
    }

    #[test]
    fn a_slow_consumer_is_dropped_without_affecting_others() {
        let channel = SessionChannel::new("s", 64);
        let (slow, _slow_rx) = conn(1, 2);
        let (fast, mut fast_rx) = conn(2, 64);
        channel.subscribe(&slow);
        channel.subscribe(&fast);
        for _ in 0..10 {
            channel.publish_seq(|seq| format!("c{seq}"));
        }
        assert!(slow.is_closed(), "slow consumer killed");
        assert_eq!(
            slow.close_reason(),
            Some(crate::outbound::CloseReason::SlowConsumer)
        );
        assert_eq!(channel.subscriber_ids(), vec![2]);
        assert_eq!(drain(&mut fast_rx).len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn the_replay_buffer_is_released_only_after_the_grace_period_without_subscribers() {
        let grace = Duration::from_secs(30);
        let channel = SessionChannel::new("s", 64);
        let (a, mut ra) = conn(1, 64);
        channel.subscribe(&a);
        for _ in 0..5 {
            channel.publish_seq(|seq| format!("c{seq}"));
        }
        tokio::time::advance(grace * 2).await;
        assert!(
            !channel.release_if_idle(Instant::now(), grace),
            "a subscriber keeps it"
        );
        assert!(channel.unsubscribe(1));
        tokio::time::advance(grace - Duration::from_secs(1)).await;
        assert!(!channel.release_if_idle(Instant::now(), grace));
        assert_eq!(channel.buffered_frames(), 5, "within the grace period");

        // A device that comes back within the grace period resumes without a gap.
        let (b, mut rb) = conn(2, 64);
        let outcome = channel.resume(&b, 2);
        assert_eq!(
            outcome,
            ResumeOutcome {
                replayed: 3,
                gap: false
            }
        );
        assert_eq!(drain(&mut rb), vec!["c3", "c4", "c5"]);
        channel.unsubscribe(2);

        tokio::time::advance(grace).await;
        assert!(channel.release_if_idle(Instant::now(), grace));
        assert_eq!(channel.buffered_frames(), 0);
        assert!(channel.release_if_idle(Instant::now(), grace), "idempotent");

        // Sequence numbers go on; a resume from before the release reports the gap.
        let (c, mut rc) = conn(3, 64);
        let outcome = channel.resume(&c, 4);
        assert!(outcome.gap);
        assert_eq!(outcome.replayed, 0);
        assert_eq!(channel.publish_seq(|seq| format!("c{seq}")), 6);
        assert_eq!(drain(&mut rc), vec!["c6"]);
        let (d, _rd) = conn(4, 64);
        assert!(!channel.resume(&d, 6).gap, "up to date is not a gap");
        assert_eq!(drain(&mut ra).len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_subscriber_does_not_keep_the_buffer_forever() {
        let grace = Duration::from_secs(30);
        let channel = SessionChannel::new("s", 8);
        let (a, ra) = conn(1, 8);
        channel.subscribe(&a);
        channel.publish_seq(|seq| format!("c{seq}"));
        drop(ra); // the transport went away without unsubscribing
        assert!(a.is_closed());
        tokio::time::advance(grace * 2).await;
        // Found gone now: the grace period starts here.
        assert!(!channel.release_if_idle(Instant::now(), grace));
        assert_eq!(channel.subscriber_count(), 0);
        tokio::time::advance(grace).await;
        assert!(channel.release_if_idle(Instant::now(), grace));
        assert_eq!(channel.buffered_frames(), 0);
    }

    #[test]
    fn a_frame_for_the_others_is_written_only_when_there_are_others() {
        let channel = SessionChannel::new("s", 4);
        let (a, mut ra) = conn(1, 8);
        channel.subscribe(&a);
        let delivered =
            channel.broadcast_to_others(1, || unreachable!("nobody else to send it to"));
        assert_eq!(delivered, 0);
        let (b, mut rb) = conn(2, 8);
        channel.subscribe(&b);
        assert_eq!(channel.broadcast_to_others(1, || "echo".to_owned()), 1);
        assert!(drain(&mut ra).is_empty());
        assert_eq!(drain(&mut rb), vec!["echo"]);
    }

    #[test]
    fn broadcast_can_skip_the_sender() {
        let channel = SessionChannel::new("s", 4);
        let (a, mut ra) = conn(1, 8);
        let (b, mut rb) = conn(2, 8);
        channel.subscribe(&a);
        channel.subscribe(&b);
        assert_eq!(channel.broadcast(Arc::from("typing"), Some(1)), 1);
        assert!(drain(&mut ra).is_empty());
        assert_eq!(drain(&mut rb), vec!["typing"]);
    }
}
