//! When a connection may hold written frames back for a moment, so that several go
//! out in one write: only while the socket is streaming fast.
//!
//! A frame written to a TCP socket on its own costs a syscall and a segment, and on
//! the receiving side a wake-up and a read, whatever its size. A chat reply streams
//! a few dozen tokens a second; at that pace every frame leaves the moment it is
//! queued ([`crate::connection`] flushes as soon as the router's queue is empty), and
//! nothing here applies. A provider can also stream much faster (a cached or short
//! reply, a fast model on a near host): then one chunk reaches the connection per
//! scheduler round, and flushing each on its own made the socket writes nearly half
//! of the server's CPU (docs/BENCHMARKS.md, twelfth pass). For such a stream a frame
//! may wait up to [`MAX_HOLD`] for the ones behind it.
//!
//! The socket counts as streaming fast after [`FAST_STREAK`] flushes in a row, each
//! less than [`FAST_GAP`] after the one before, and while the last flush is less than
//! [`FAST_GAP`] ago. A chat reply's frames (a `loading`, then chunks tens of
//! milliseconds apart, then the closing frames) never make such a streak, so the
//! time to first token and the per-chunk latency of ordinary replies are untouched;
//! nor does the next reply's first chunk wait after a fast one ended, since the last
//! flush is then older than [`FAST_GAP`]. Beyond the time bound, what is held is also
//! bounded by tungstenite's write buffer: past
//! [`crate::handshake::WRITE_BUFFER_SIZE`] bytes it writes them out by itself.

use std::time::{Duration, Instant};

/// Flushes closer together than this, in a row, mean the socket is streaming fast
/// (more than 1 000 writes a second).
pub const FAST_GAP: Duration = Duration::from_millis(1);

/// How many such flushes in a row before frames are held.
pub const FAST_STREAK: u32 = 8;

/// The longest a frame is held waiting for others. Measured (docs/BENCHMARKS.md,
/// twelfth pass): 100 µs gave most of the throughput of 300 µs and 1 ms gave no more.
pub const MAX_HOLD: Duration = Duration::from_micros(300);

/// The coalescing state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Coalescer {
    /// When the last flush completed.
    last_flush: Option<Instant>,
    /// Consecutive flushes each less than [`FAST_GAP`] after the one before.
    streak: u32,
    /// Since when unflushed frames have been held.
    held_since: Option<Instant>,
}

impl Coalescer {
    /// Whether frames written but not flushed may wait for more at `now`. The caller
    /// arranges to be polled again soon when it holds them.
    pub(crate) fn hold(&mut self, now: Instant) -> bool {
        if self.streak < FAST_STREAK || !self.flushed_within_gap(now) {
            return false;
        }
        let since = *self.held_since.get_or_insert(now);
        now.saturating_duration_since(since) < MAX_HOLD
    }

    /// Records a completed flush at `now`.
    pub(crate) fn flushed(&mut self, now: Instant) {
        self.streak = if self.flushed_within_gap(now) {
            self.streak.saturating_add(1)
        } else {
            0
        };
        self.last_flush = Some(now);
        self.held_since = None;
    }

    /// Whether the last flush was less than [`FAST_GAP`] before `now`.
    fn flushed_within_gap(&self, now: Instant) -> bool {
        self.last_flush
            .is_some_and(|at| now.saturating_duration_since(at) < FAST_GAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_micros(200);

    /// A coalescer that has flushed `n` times, `gap` apart, the last at the returned
    /// instant.
    fn after_flushes(n: u32, gap: Duration) -> (Coalescer, Instant) {
        let mut c = Coalescer::default();
        let mut at = Instant::now();
        for i in 0..n {
            if i > 0 {
                at += gap;
            }
            c.flushed(at);
        }
        (c, at)
    }

    #[test]
    fn a_fresh_connection_never_holds() {
        let mut c = Coalescer::default();
        assert!(!c.hold(Instant::now()));
    }

    #[test]
    fn a_fast_streak_holds_frames() {
        // FAST_STREAK close flushes follow the first one.
        let (mut c, last) = after_flushes(FAST_STREAK + 1, STEP);
        assert!(c.hold(last + STEP));
    }

    #[test]
    fn one_flush_short_of_the_streak_does_not_hold() {
        let (mut c, last) = after_flushes(FAST_STREAK, STEP);
        assert!(!c.hold(last + STEP));
    }

    #[test]
    fn paced_frames_never_hold() {
        // Chunks 5 ms apart, as an LLM reply streams (and the TTFT benchmark's fake).
        let (mut c, last) = after_flushes(100, Duration::from_millis(5));
        assert!(!c.hold(last + STEP));
    }

    #[test]
    fn one_slow_gap_ends_the_streak() {
        let (mut c, last) = after_flushes(FAST_STREAK + 5, STEP);
        let later = last + FAST_GAP;
        c.flushed(later);
        assert!(!c.hold(later + STEP));
    }

    #[test]
    fn nothing_waits_after_a_pause() {
        // A fast stream ended; the next reply's first frame comes 2 ms later.
        let (mut c, last) = after_flushes(FAST_STREAK + 5, STEP);
        assert!(!c.hold(last + 2 * FAST_GAP));
    }

    #[test]
    fn a_hold_ends_after_max_hold() {
        let (mut c, last) = after_flushes(FAST_STREAK + 1, Duration::from_micros(50));
        let first = last + Duration::from_micros(10);
        assert!(c.hold(first));
        assert!(c.hold(first + MAX_HOLD / 2));
        assert!(!c.hold(first + MAX_HOLD));
        // After the flush the next frame may be held again.
        let flushed = first + MAX_HOLD;
        c.flushed(flushed);
        assert!(c.hold(flushed + Duration::from_micros(10)));
    }
}
