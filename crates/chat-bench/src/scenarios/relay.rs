//! (4) Relay throughput: `ai_response` chunks per second delivered to many clients
//! through chatbox, next to the bare tokio-tungstenite baseline ([`crate::echo`]), and
//! through the bare proxy relaying the same provider stream (the floor: what any
//! relaying gateway reaches here, reported beside the ratio, not judged).

use std::net::SocketAddr;

use serde::Serialize;

use crate::clock::now_ns;
use crate::scenarios::{self, chat_round, open_all, Stamps, Start};
use crate::BenchError;

/// Chunks delivered in one measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Delivery {
    /// Text chunks received by all clients.
    pub chunks: u64,
    /// From the first request to the last `done`.
    pub seconds: f64,
    /// chunks / seconds.
    pub chunks_per_s: f64,
    /// Replies that failed.
    pub errors: usize,
}

/// One chatbox measurement and the baseline measured right after it (and the floor,
/// when the bare proxy ran).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RelayTrial {
    /// Through chatbox (fake provider streaming without pauses).
    pub chatbox: Delivery,
    /// The bare tokio-tungstenite server.
    pub baseline: Delivery,
    /// chatbox / baseline chunks per second.
    pub ratio: f64,
    /// Through the bare proxy relaying the same provider stream.
    pub floor: Option<Delivery>,
    /// floor / baseline chunks per second.
    pub floor_ratio: Option<f64>,
}

impl RelayTrial {
    /// The pair and its ratio.
    pub fn new(chatbox: Delivery, baseline: Delivery) -> Self {
        Self {
            ratio: chatbox.chunks_per_s / baseline.chunks_per_s.max(1e-9),
            chatbox,
            baseline,
            floor: None,
            floor_ratio: None,
        }
    }

    /// With the bare proxy's delivery in the same trial.
    pub fn with_floor(mut self, floor: Delivery) -> Self {
        self.floor_ratio = Some(floor.chunks_per_s / self.baseline.chunks_per_s.max(1e-9));
        self.floor = Some(floor);
        self
    }
}

/// Chatbox next to the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct RelayResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Chunks per request.
    pub chunks_per_request: usize,
    /// Requests per client.
    pub rounds: usize,
    /// Through chatbox, in the median trial.
    pub chatbox: Delivery,
    /// The baseline, in the median trial.
    pub baseline: Delivery,
    /// The median trial's chatbox / baseline ratio.
    pub ratio: f64,
    /// The bare proxy in the median trial (when it ran).
    pub floor: Option<Delivery>,
    /// The median trial's floor / baseline ratio.
    pub floor_ratio: Option<f64>,
    /// Why the floor is missing, when it is.
    pub floor_error: Option<String>,
    /// Every trial, in the order run (chatbox, baseline, floor, alternated).
    pub trials: Vec<RelayTrial>,
}

impl RelayResult {
    /// Summarizes alternated trials by the one with the median ratio (the upper
    /// median for an even count). `None` without trials.
    pub fn from_trials(
        clients: usize,
        chunks_per_request: usize,
        rounds: usize,
        trials: Vec<RelayTrial>,
    ) -> Option<Self> {
        let (median, _) = scenarios::median_trial(trials.clone(), |t| t.ratio)?;
        Some(Self {
            clients,
            chunks_per_request,
            rounds,
            chatbox: median.chatbox,
            baseline: median.baseline,
            ratio: median.ratio,
            floor: median.floor,
            floor_ratio: median.floor_ratio,
            floor_error: None,
            trials,
        })
    }

    /// The lowest and highest trial ratio.
    pub fn ratio_range(&self) -> (f64, f64) {
        self.trials
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
                (lo.min(t.ratio), hi.max(t.ratio))
            })
    }
}

/// Opens `clients` connections to `addr` and has each ask for `chunks` chunks
/// `rounds` times (all clients at once per round).
pub async fn deliver(
    addr: SocketAddr,
    clients: usize,
    chunks: usize,
    rounds: usize,
    path: impl Fn(usize) -> Result<String, BenchError>,
) -> Result<Delivery, BenchError> {
    let mut conns = open_all(addr, clients, path).await?;
    let start = now_ns();
    let mut delivered = 0;
    let mut errors = 0;
    for _ in 0..rounds {
        let round = chat_round(
            &mut conns,
            &chunks.to_string(),
            Stamps::Ignore,
            Start::AtOnce,
        )
        .await?;
        delivered += round.replies.iter().map(|r| r.chunks).sum::<u64>();
        errors += round.errors.len();
    }
    let seconds = now_ns().saturating_sub(start) as f64 / 1e9;
    Ok(Delivery {
        chunks: delivered,
        seconds,
        chunks_per_s: delivered as f64 / seconds.max(1e-9),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn every_chunk_from_every_client_is_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(crate::echo::serve(listener, stop.clone(), None));
        let delivery = deliver(addr, 3, 7, 2, |_| Ok("/".to_owned()))
            .await
            .unwrap();
        assert_eq!(delivery.chunks, 3 * 7 * 2);
        assert_eq!(delivery.errors, 0);
        assert!(delivery.chunks_per_s > 0.0);
        stop.cancel();
        server.await.unwrap();
    }

    fn delivery(chunks_per_s: f64) -> Delivery {
        Delivery {
            chunks: 100,
            seconds: 100.0 / chunks_per_s,
            chunks_per_s,
            errors: 0,
        }
    }

    #[test]
    fn the_median_trial_is_reported_with_the_range() {
        let trials = [
            (44.0, 100.0),
            (64.0, 100.0),
            (50.0, 100.0),
            (30.0, 50.0),
            (45.0, 100.0),
        ]
        .into_iter()
        .map(|(c, b)| RelayTrial::new(delivery(c), delivery(b)))
        .collect();
        let r = RelayResult::from_trials(100, 1000, 3, trials).unwrap();
        assert!((r.ratio - 0.50).abs() < 1e-9, "{}", r.ratio);
        assert!((r.chatbox.chunks_per_s - 50.0).abs() < 1e-9);
        let (lo, hi) = r.ratio_range();
        assert!(
            (lo - 0.44).abs() < 1e-9 && (hi - 0.64).abs() < 1e-9,
            "{lo} {hi}"
        );
        assert_eq!(r.trials.len(), 5);
        assert!(r.floor.is_none() && r.floor_ratio.is_none());
        assert!(RelayResult::from_trials(1, 1, 1, Vec::new()).is_none());
    }

    #[test]
    fn the_floor_of_the_median_trial_is_reported_against_its_own_baseline() {
        let trials = [(44.0, 100.0, 60.0), (50.0, 100.0, 70.0), (30.0, 50.0, 40.0)]
            .into_iter()
            .map(|(c, b, f)| RelayTrial::new(delivery(c), delivery(b)).with_floor(delivery(f)))
            .collect();
        let r = RelayResult::from_trials(100, 1000, 3, trials).unwrap();
        // Ratios 0.44, 0.50, 0.60: the median trial is the second.
        assert!((r.ratio - 0.50).abs() < 1e-9, "{}", r.ratio);
        assert!((r.floor.unwrap().chunks_per_s - 70.0).abs() < 1e-9);
        assert!((r.floor_ratio.unwrap() - 0.70).abs() < 1e-9);
    }
}
