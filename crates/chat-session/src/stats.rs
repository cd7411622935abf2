//! Per-session usage statistics in constant memory (READINESS #12: the legacy service
//! kept every response time in a list that grew without bound).

use crate::error::SessionError;

/// Reply-time and token statistics of one session: a fixed-size running aggregate,
/// so recording the millionth reply costs the same memory as the first.
///
/// `Copy` on purpose: the type owns no heap memory, which is the whole point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseStats {
    /// Replies recorded.
    count: u64,
    /// Slowest reply, in ms.
    max_ms: u64,
    /// Sum of all reply times, in ms; `u128` so it cannot overflow in any realistic
    /// lifetime and the mean stays exact.
    sum_ms: u128,
    /// Tokens used by all replies (saturating).
    total_tokens: u64,
}

impl ResponseStats {
    /// Restores statistics persisted as (count, max, mean, tokens) — the schema keeps
    /// the mean, not the sum, so the sum is reconstructed as `mean × count`.
    pub fn from_persisted(count: u64, max_ms: u64, avg_ms: u64, total_tokens: u64) -> Self {
        Self {
            count,
            max_ms,
            sum_ms: u128::from(avg_ms) * u128::from(count),
            total_tokens,
        }
    }

    /// Records one reply. Negative values are refused (they can only come from a
    /// caller bug such as a clock step), leaving the statistics unchanged.
    pub fn record(&mut self, duration_ms: i64, tokens: i64) -> Result<(), SessionError> {
        let duration = u64::try_from(duration_ms).map_err(|_| SessionError::InvalidStatistic {
            field: "duration_ms",
            value: duration_ms,
        })?;
        let tokens = u64::try_from(tokens).map_err(|_| SessionError::InvalidStatistic {
            field: "tokens",
            value: tokens,
        })?;
        self.count = self.count.saturating_add(1);
        self.max_ms = self.max_ms.max(duration);
        self.sum_ms = self.sum_ms.saturating_add(u128::from(duration));
        self.total_tokens = self.total_tokens.saturating_add(tokens);
        Ok(())
    }

    /// Replies recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Slowest reply in ms (0 before the first reply).
    pub fn max_ms(&self) -> u64 {
        self.max_ms
    }

    /// Exact mean reply time in ms (0.0 before the first reply).
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        // Lossless for any realistic sum (< 2^53 ms ≈ 285 000 years).
        self.sum_ms as f64 / self.count as f64
    }

    /// Mean reply time in whole ms, rounded half up — the persisted `avgRespTime`.
    pub fn avg_ms(&self) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let count = u128::from(self.count);
        let rounded = (self.sum_ms + count / 2) / count;
        u64::try_from(rounded).unwrap_or(u64::MAX)
    }

    /// Tokens used by all replies.
    pub fn total_tokens(&self) -> u64 {
        self.total_tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stats_are_zero() {
        let s = ResponseStats::default();
        assert_eq!(
            (s.count(), s.max_ms(), s.avg_ms(), s.total_tokens()),
            (0, 0, 0, 0)
        );
        assert_eq!(s.mean_ms(), 0.0);
    }

    #[test]
    fn records_count_max_mean_and_tokens() {
        let mut s = ResponseStats::default();
        s.record(100, 10).unwrap();
        s.record(300, 5).unwrap();
        s.record(200, 0).unwrap();
        assert_eq!(s.count(), 3);
        assert_eq!(s.max_ms(), 300);
        assert_eq!(s.mean_ms(), 200.0);
        assert_eq!(s.avg_ms(), 200);
        assert_eq!(s.total_tokens(), 15);
    }

    #[test]
    fn negative_values_are_refused_and_change_nothing() {
        let mut s = ResponseStats::default();
        s.record(10, 1).unwrap();
        let before = s;
        assert_eq!(
            s.record(-1, 5),
            Err(SessionError::InvalidStatistic {
                field: "duration_ms",
                value: -1
            })
        );
        assert_eq!(
            s.record(5, -7),
            Err(SessionError::InvalidStatistic {
                field: "tokens",
                value: -7
            })
        );
        assert_eq!(s, before);
    }

    #[test]
    fn average_rounds_half_up() {
        let mut s = ResponseStats::default();
        s.record(1, 0).unwrap();
        s.record(2, 0).unwrap();
        assert_eq!(s.mean_ms(), 1.5);
        assert_eq!(s.avg_ms(), 2);
    }

    #[test]
    fn restored_stats_continue_incrementally() {
        let mut s = ResponseStats::from_persisted(2, 400, 300, 50);
        s.record(0, 10).unwrap();
        assert_eq!(s.count(), 3);
        assert_eq!(s.avg_ms(), 200);
        assert_eq!(s.max_ms(), 400);
        assert_eq!(s.total_tokens(), 60);
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        let mut s = ResponseStats::default();
        s.record(i64::MAX, i64::MAX).unwrap();
        s.record(i64::MAX, i64::MAX).unwrap();
        assert_eq!(s.max_ms(), i64::MAX as u64);
        assert_eq!(s.avg_ms(), i64::MAX as u64);
        assert_eq!(s.total_tokens(), u64::MAX - 1);
    }
}
