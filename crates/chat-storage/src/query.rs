//! Backend-independent pieces of the admin queries: filtering and ordering summaries
//! (used by the embedded store) and the metrics accumulator (used by both stores).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::store::{AdminQuery, SessionSummary, SortKey, SortOrder, StatusFilter, StoreMetrics};

/// True when `s` passes every filter of `q`.
pub fn matches(s: &SessionSummary, q: &AdminQuery) -> bool {
    q.user_id.as_ref().is_none_or(|u| *u == s.user_id)
        && q.status.is_none_or(|st| match st {
            StatusFilter::Active => s.is_active(),
            StatusFilter::Ended => !s.is_active(),
        })
        && q.admin_assisted.is_none_or(|a| a == s.admin_assisted)
        && q.start_time_from.is_none_or(|from| s.start_time >= from)
        && q.start_time_to.is_none_or(|to| s.start_time <= to)
}

/// The order of the admin list: by the key in the requested direction, ties by id
/// ascending (the same order the MongoDB store produces).
pub fn compare(a: &SessionSummary, b: &SessionSummary, key: SortKey, order: SortOrder) -> Ordering {
    let by_key = match key {
        SortKey::StartTime => a.start_time.cmp(&b.start_time),
        SortKey::EndTime => a.end_time.cmp(&b.end_time),
        SortKey::MessageCount => a.message_count.cmp(&b.message_count),
        SortKey::TotalTokens => a.total_tokens.cmp(&b.total_tokens),
        SortKey::UserId => a.user_id.cmp(&b.user_id),
        SortKey::LastActivity => a.last_activity.cmp(&b.last_activity),
        SortKey::Duration => a.stored_duration_secs().cmp(&b.stored_duration_secs()),
    };
    let by_key = match order {
        SortOrder::Asc => by_key,
        SortOrder::Desc => by_key.reverse(),
    };
    by_key.then_with(|| a.id.cmp(&b.id))
}

/// Sums over sessions for [`StoreMetrics`]; memory is constant however many
/// sessions are fed.
#[derive(Debug, Default)]
pub struct MetricsAccumulator {
    metrics: StoreMetrics,
    weighted_response_ms: u128,
    responses: u128,
}

impl MetricsAccumulator {
    /// Adds one session (already known to be inside the time range).
    pub fn add(
        &mut self,
        active: bool,
        admin_assisted: bool,
        total_tokens: u64,
        max_response_time_ms: u64,
        avg_response_time_ms: u64,
        response_count: u64,
    ) {
        let m = &mut self.metrics;
        m.total_sessions += 1;
        m.active_sessions += u64::from(active);
        m.admin_assisted_count += u64::from(admin_assisted);
        m.total_tokens = m.total_tokens.saturating_add(total_tokens);
        m.max_response_time_ms = m.max_response_time_ms.max(max_response_time_ms);
        // Legacy documents have a mean but no count: weigh them as one reply.
        let count = if response_count == 0 && avg_response_time_ms > 0 {
            1
        } else {
            response_count
        };
        self.weighted_response_ms += u128::from(avg_response_time_ms) * u128::from(count);
        self.responses += u128::from(count);
    }

    /// Adds a summary if it started within `[from, to]`.
    pub fn add_summary(&mut self, s: &SessionSummary, from: DateTime<Utc>, to: DateTime<Utc>) {
        if s.start_time >= from && s.start_time <= to {
            self.add(
                s.is_active(),
                s.admin_assisted,
                s.total_tokens,
                s.max_response_time_ms,
                s.avg_response_time_ms,
                s.response_count,
            );
        }
    }

    /// The aggregated metrics.
    pub fn finish(self) -> StoreMetrics {
        let mut m = self.metrics;
        if let Some(mean) = self.weighted_response_ms.checked_div(self.responses) {
            m.avg_response_time_ms = u64::try_from(mean).unwrap_or(u64::MAX);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_is_weighted_by_reply_count_and_legacy_means_count_once() {
        let mut acc = MetricsAccumulator::default();
        acc.add(true, false, 10, 300, 100, 3);
        acc.add(false, true, 5, 900, 500, 1);
        acc.add(false, false, 0, 200, 200, 0);
        let m = acc.finish();
        assert_eq!(m.total_sessions, 3);
        assert_eq!(m.active_sessions, 1);
        assert_eq!(m.admin_assisted_count, 1);
        assert_eq!(m.total_tokens, 15);
        assert_eq!(m.max_response_time_ms, 900);
        assert_eq!(m.avg_response_time_ms, (300 + 500 + 200) / 5);
    }
}
