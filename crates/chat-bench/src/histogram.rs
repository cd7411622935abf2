//! Latency percentiles from an HDR histogram (3 significant digits, 1 ns – 10 min).

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::BenchError;

/// Largest value tracked; larger samples are clamped to it (and still counted).
const MAX_NS: u64 = 600_000_000_000;

/// Latencies in nanoseconds; summaries are in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    inner: Histogram<u64>,
}

/// What a table shows of a latency distribution (microseconds).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Arithmetic mean.
    pub mean_us: f64,
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Result<Self, BenchError> {
        Histogram::new_with_bounds(1, MAX_NS, 3)
            .map(|inner| Self { inner })
            .map_err(|e| BenchError::Histogram(e.to_string()))
    }

    /// Records one latency (0 is recorded as 1 ns: the histogram's lowest value).
    pub fn record_ns(&mut self, ns: u64) {
        self.inner.saturating_record(ns.clamp(1, MAX_NS));
    }

    /// Records every latency of `samples`.
    pub fn record_all(&mut self, samples: &[u64]) {
        for &ns in samples {
            self.record_ns(ns);
        }
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latencies) -> Result<(), BenchError> {
        self.inner
            .add(&other.inner)
            .map_err(|e| BenchError::Histogram(e.to_string()))
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.inner.len()
    }

    /// p50/p99/max/mean in microseconds (all zero when empty).
    pub fn summary(&self) -> Summary {
        if self.inner.is_empty() {
            return Summary::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Summary {
            count: self.inner.len(),
            p50_us: us(self.inner.value_at_quantile(0.50)),
            p99_us: us(self.inner.value_at_quantile(0.99)),
            max_us: us(self.inner.max()),
            mean_us: self.inner.mean() / 1_000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_sample() {
        let mut h = Latencies::new().unwrap();
        for i in 1..=1000u64 {
            h.record_ns(i * 1_000);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() <= 1.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() <= 1.0, "{s:?}");
        assert!((s.max_us - 1000.0).abs() <= 1.0, "{s:?}");
    }

    #[test]
    fn merging_adds_samples_and_empty_is_zero() {
        let mut a = Latencies::new().unwrap();
        assert_eq!(a.summary(), Summary::default());
        let mut b = Latencies::new().unwrap();
        b.record_ns(0);
        b.record_ns(u64::MAX);
        a.merge(&b).unwrap();
        assert_eq!(a.count(), 2);
    }
}
