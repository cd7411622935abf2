//! The results of one run, each measurement next to its target with a verdict, as
//! `results.json` and a Markdown table (`results.md`).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::plan::Plan;
use crate::scenarios::chunk::ChunkResult;
use crate::scenarios::idle::IdleResult;
use crate::scenarios::relay::RelayResult;
use crate::scenarios::soak::SoakResult;
use crate::scenarios::storage::StorageResult;
use crate::scenarios::ttft::{cpu_text, Shape, TtftLevel};
use crate::BenchError;

/// Bytes per idle connection allowed (10 KB).
pub const IDLE_TARGET_BYTES: f64 = 10_000.0;
/// Added TTFT p99 allowed at 100 streams.
pub const TTFT_TARGET_US: f64 = 1_000.0;
/// Added per-chunk p99 allowed.
pub const CHUNK_TARGET_US: f64 = 250.0;
/// Relay throughput as a share of the baseline, at least.
pub const RELAY_TARGET_RATIO: f64 = 0.5;
/// RSS growth from the first to the second half of the soak, at most (percent).
pub const SOAK_GROWTH_TARGET_PCT: f64 = 10.0;
/// RSS after the soak above the same server at rest after its warm-up, at most
/// (percent): the load left nothing behind beyond noise (see `scenarios::soak`).
pub const SOAK_RECOVERY_TARGET_PCT: f64 = 10.0;

/// What the machine was.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available.
    pub cpus: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// MemTotal in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// Soft RLIMIT_NOFILE of the load generator.
    pub fd_limit: Option<u64>,
}

impl Machine {
    /// Reads /proc (fields stay empty where it cannot).
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory_gib: kb / 1_048_576.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            fd_limit: crate::process::open_files_limit(),
        }
    }
}

/// Pass, fail, or nothing to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The target is met.
    Pass,
    /// The target is missed.
    Fail,
    /// Measured without a target (reported for context).
    Info,
    /// The measurement did not run or failed.
    NotMeasured,
}

impl Verdict {
    fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => "✅ pass",
            Verdict::Fail => "❌ fail",
            Verdict::Info => "ℹ️ info",
            Verdict::NotMeasured => "⚠️ not measured",
        }
    }

    fn of(pass: bool) -> Self {
        if pass {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

/// One row of the summary table.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is measured.
    pub measurement: String,
    /// The measured value, rendered.
    pub measured: String,
    /// The target, rendered.
    pub target: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// Everything one run measured. A phase that failed holds its error instead.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The load sizes used.
    pub plan: Plan,
    /// Where it ran.
    pub machine: Machine,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// Wall time of the whole run.
    pub duration_s: f64,
    /// (1) Idle connection memory.
    pub idle: Result<IdleResult, String>,
    /// (2) Added TTFT per concurrency.
    pub ttft: Result<Vec<TtftLevel>, String>,
    /// (3) Added per-chunk latency.
    pub chunk: Result<ChunkResult, String>,
    /// (4) Relay throughput vs the baseline.
    pub relay: Result<RelayResult, String>,
    /// (5) Soak.
    pub soak: Result<SoakResult, String>,
    /// (6) Storage append throughput per backend.
    pub storage: Vec<Result<StorageResult, String>>,
    /// The summary table.
    pub checks: Vec<Check>,
}

impl Results {
    /// Fills [`Results::checks`] from the measurements.
    pub fn judge(&mut self) {
        let mut checks = Vec::new();
        match &self.idle {
            Ok(idle) => {
                for level in &idle.levels {
                    checks.push(Check {
                        measurement: format!(
                            "Idle memory per WebSocket ({} sockets)",
                            level.sockets
                        ),
                        measured: format!("{:.1} KB", level.bytes_per_socket / 1_000.0),
                        target: "≤ 10 KB".to_owned(),
                        verdict: Verdict::of(level.bytes_per_socket <= IDLE_TARGET_BYTES),
                    });
                }
                if let Some(limited) = &idle.limited {
                    checks.push(Check {
                        measurement: "Idle memory (further levels)".to_owned(),
                        measured: limited.clone(),
                        target: "when fd limits allow".to_owned(),
                        verdict: Verdict::Info,
                    });
                }
                if let Some(note) = &idle.note {
                    checks.push(not_measured("Idle memory (further levels)", note));
                }
            }
            Err(e) => checks.push(not_measured("Idle memory per WebSocket", e)),
        }
        match &self.ttft {
            Ok(levels) => {
                for level in levels {
                    // The target is stated for 100 concurrent streams; the burst shape
                    // (all messages at one instant) is reported beside it.
                    let judged = level.streams == 100 && level.shape == Shape::Steady;
                    checks.push(Check {
                        measurement: format!(
                            "Added TTFT p99 ({} streams, {})",
                            level.streams, level.shape
                        ),
                        measured: if level.trials_added_p99_us.len() > 1 {
                            format!(
                                "{:.0} µs (p50 {:.0} µs; median of {} trials: {}; {} errors)",
                                level.added_p99_us,
                                level.added_p50_us,
                                level.trials_added_p99_us.len(),
                                list_us(&level.trials_added_p99_us),
                                level.errors
                            )
                        } else {
                            format!(
                                "{:.0} µs (p50 {:.0} µs; {} errors)",
                                level.added_p99_us, level.added_p50_us, level.errors
                            )
                        },
                        target: if judged {
                            "≤ 1 ms".to_owned()
                        } else {
                            "—".to_owned()
                        },
                        verdict: if level.errors > 0 && level.through.count == 0 {
                            Verdict::NotMeasured
                        } else if judged {
                            Verdict::of(level.added_p99_us <= TTFT_TARGET_US && level.errors == 0)
                        } else {
                            Verdict::Info
                        },
                    });
                    let floor_row = format!(
                        "Added TTFT p99 by the bare proxy ({} streams, steady): the floor",
                        level.streams
                    );
                    match &level.bare_proxy {
                        None => {}
                        Some(Err(e)) => checks.push(not_measured(&floor_row, e)),
                        Some(Ok(floor)) => checks.push(Check {
                            measurement: floor_row,
                            measured: format!(
                                "{:.0} µs (p50 {:.0} µs; CPU per reply {} vs chatbox's {}; {} errors)",
                                floor.added_p99_us,
                                floor.added_p50_us,
                                cpu_text(floor.cpu_us_per_reply),
                                cpu_text(level.server_cpu_us_per_reply),
                                floor.errors
                            ),
                            target: "—".to_owned(),
                            verdict: if floor.through.count == 0 {
                                Verdict::NotMeasured
                            } else {
                                Verdict::Info
                            },
                        }),
                    }
                }
            }
            Err(e) => checks.push(not_measured("Added TTFT p99", e)),
        }
        match &self.chunk {
            Ok(c) => {
                checks.push(Check {
                    measurement: format!(
                        "Added per-chunk latency p99 ({} streams, steady)",
                        c.streams
                    ),
                    measured: format!(
                        "{:.0} µs (p50 {:.0} µs; median of {} trials: {})",
                        c.added_p99_us,
                        c.added_p50_us,
                        c.trials_added_p99_us.len(),
                        list_us(&c.trials_added_p99_us)
                    ),
                    target: "≤ 250 µs".to_owned(),
                    verdict: Verdict::of(c.added_p99_us <= CHUNK_TARGET_US && c.errors == 0),
                });
                checks.push(Check {
                    measurement: format!(
                        "Added per-chunk latency p99 ({} streams, burst)",
                        c.streams
                    ),
                    measured: format!(
                        "{:.0} µs (p50 {:.0} µs)",
                        c.burst_added_p99_us,
                        c.burst_through.p50_us - c.burst_direct.p50_us
                    ),
                    target: "—".to_owned(),
                    verdict: Verdict::Info,
                });
            }
            Err(e) => checks.push(not_measured("Added per-chunk latency p99", e)),
        }
        match &self.relay {
            Ok(r) => checks.push(Check {
                measurement: format!("Relay throughput ({} clients)", r.clients),
                measured: {
                    let (lo, hi) = r.ratio_range();
                    format!(
                        "{:.0} chunks/s vs {:.0} baseline = {:.2}× (median of {} alternated trials; {:.2}–{:.2}×)",
                        r.chatbox.chunks_per_s,
                        r.baseline.chunks_per_s,
                        r.ratio,
                        r.trials.len(),
                        lo,
                        hi
                    )
                },
                target: "≥ 0.5× baseline".to_owned(),
                verdict: Verdict::of(r.ratio >= RELAY_TARGET_RATIO && r.chatbox.errors == 0),
            }),
            Err(e) => checks.push(not_measured("Relay throughput", e)),
        }
        if let Ok(r) = &self.relay {
            let measured = match (r.floor, r.floor_ratio, &r.floor_error) {
                (Some(floor), Some(ratio), _) => format!(
                    "{:.0} chunks/s = {:.2}× the baseline (chatbox {:.2}×), in the median trial",
                    floor.chunks_per_s, ratio, r.ratio
                ),
                (_, _, Some(e)) => format!("not measured: {e}"),
                _ => "not measured".to_owned(),
            };
            checks.push(Check {
                measurement: format!(
                    "Relay throughput of the bare proxy ({} clients): the floor",
                    r.clients
                ),
                measured,
                target: "—".to_owned(),
                verdict: Verdict::Info,
            });
        }
        match &self.soak {
            Ok(s) => {
                checks.push(Check {
                    measurement: format!("Soak RSS plateau ({:.0} s, {} clients)", s.duration_s, s.clients),
                    measured: format!(
                        "{:+.1} % (1st half max {:.1} MiB → 2nd half max {:.1} MiB; {} replies, {} errors)",
                        s.growth_pct,
                        mib(s.first_half_max_bytes),
                        mib(s.second_half_max_bytes),
                        s.replies,
                        s.errors
                    ),
                    target: "flat (≤ +10 %)".to_owned(),
                    verdict: Verdict::of(s.growth_pct <= SOAK_GROWTH_TARGET_PCT && s.errors == 0),
                });
                checks.push(Check {
                    measurement: "Soak RSS after the load".to_owned(),
                    measured: format!(
                        "{:.1} MiB vs {:.1} MiB at rest after a {:.0} s warm-up ({:+.1} %)",
                        mib(s.after_rss_bytes),
                        mib(s.warm_idle_rss_bytes),
                        s.warm_up_s,
                        s.after_vs_warm_idle_pct
                    ),
                    target: format!("back at rest (≤ +{SOAK_RECOVERY_TARGET_PCT:.0} %)"),
                    verdict: Verdict::of(s.after_vs_warm_idle_pct <= SOAK_RECOVERY_TARGET_PCT),
                });
                checks.push(Check {
                    measurement: "Soak RSS after the load vs the fresh process".to_owned(),
                    measured: format!(
                        "{:.1} MiB vs {:.1} MiB before any client ({:+.1} %): the footprint of \
                         a server that has answered (code paged in, store cache, allocator)",
                        mib(s.after_rss_bytes),
                        mib(s.idle_rss_bytes),
                        s.after_vs_idle_pct
                    ),
                    target: "—".to_owned(),
                    verdict: Verdict::Info,
                });
            }
            Err(e) => checks.push(not_measured("Soak", e)),
        }
        for storage in &self.storage {
            match storage {
                Ok(s) => checks.push(Check {
                    measurement: format!(
                        "Storage append throughput ({}, {} writers)",
                        s.backend, s.writers
                    ),
                    measured: format!(
                        "{:.0} appends/s (p50 {:.0} µs, p99 {:.0} µs)",
                        s.appends_per_s, s.latency.p50_us, s.latency.p99_us
                    ),
                    target: "—".to_owned(),
                    verdict: Verdict::Info,
                }),
                Err(e) => checks.push(not_measured("Storage append throughput", e)),
            }
        }
        self.checks = checks;
    }

    /// `results.json` and `results.md` in `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(), BenchError> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        std::fs::write(dir.join("results.md"), self.markdown())?;
        Ok(())
    }

    /// Rows whose target is missed.
    pub fn failed(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .count()
    }

    /// Rows that could not be measured.
    pub fn not_measured(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::NotMeasured)
            .count()
    }

    /// Rows left out by `--only` (counted among [`Results::not_measured`]).
    pub fn skipped(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::NotMeasured && c.measured == crate::runner::SKIPPED)
            .count()
    }

    /// The Markdown report: summary table, then the details of each measurement.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# chatbox benchmark results ({} run)\n", self.plan.name);
        let _ = writeln!(
            md,
            "Run at {} in {:.0} s on {} CPU(s) ({}), {:.1} GiB RAM, Linux {}, loopback only; \
             open-files limit {}.\n",
            self.started_at,
            self.duration_s,
            m.cpus,
            if m.cpu_model.is_empty() {
                "unknown CPU"
            } else {
                &m.cpu_model
            },
            m.memory_gib,
            m.kernel,
            m.fd_limit.map_or("unlimited".to_owned(), |l| l.to_string())
        );
        let _ = writeln!(md, "| Measurement | Measured | Target | Result |");
        let _ = writeln!(md, "|---|---|---|---|");
        for c in &self.checks {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                c.measurement,
                c.measured.replace('|', "/"),
                c.target,
                c.verdict.mark()
            );
        }
        let _ = writeln!(md, "\n## Details\n");
        if let Ok(idle) = &self.idle {
            let _ = writeln!(
                md,
                "**Idle connections**: server RSS before any socket {:.1} MiB.\n",
                mib(idle.baseline_rss_bytes)
            );
            let _ = writeln!(md, "| Sockets | Server RSS | Per socket |\n|---|---|---|");
            for l in &idle.levels {
                let _ = writeln!(
                    md,
                    "| {} | {:.1} MiB | {:.0} B |",
                    l.sockets,
                    mib(l.rss_bytes),
                    l.bytes_per_socket
                );
            }
            for note in idle.limited.iter().chain(&idle.note) {
                let _ = writeln!(md, "\nNote: {note}");
            }
            let _ = writeln!(md);
        }
        if let Ok(levels) = &self.ttft {
            let _ = writeln!(
                md,
                "**Time to first token** (µs; through = WebSocket `user_message` → first \
                 `ai_response` with text; direct = HTTP request → first delta from the same \
                 fake provider):\n"
            );
            let _ = writeln!(
                md,
                "| Streams | Shape | Samples | Through p50 | Through p99 | Direct p50 | Direct p99 | Added p50 | Added p99 |\n|---|---|---|---|---|---|---|---|---|"
            );
            for l in levels {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                    l.streams,
                    l.shape,
                    l.through.count,
                    l.through.p50_us,
                    l.through.p99_us,
                    l.direct.p50_us,
                    l.direct.p99_us,
                    l.added_p50_us,
                    l.added_p99_us
                );
                if let Some(Ok(f)) = &l.bare_proxy {
                    let _ = writeln!(
                        md,
                        "| {} | steady, bare proxy | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                        l.streams,
                        f.through.count,
                        f.through.p50_us,
                        f.through.p99_us,
                        l.direct.p50_us,
                        l.direct.p99_us,
                        f.added_p50_us,
                        f.added_p99_us
                    );
                }
            }
            let _ = writeln!(md);
        }
        if let Ok(c) = &self.chunk {
            let _ = writeln!(
                md,
                "**Per-chunk latency** (arrival − emission, µs; {} streams × {} chunks; the \
                 median of {} trials): steady (the first {} chunks of each reply left out): \
                 through p50 {:.0} / p99 {:.0} / max {:.0}; direct p50 {:.0} / p99 {:.0} \
                 / max {:.0}. Burst: through p50 {:.0} / p99 {:.0} / max {:.0}; direct p50 {:.0} \
                 / p99 {:.0} / max {:.0}.\n",
                c.streams,
                c.chunks_per_reply,
                c.trials_added_p99_us.len(),
                c.warm_up_chunks,
                c.through.p50_us,
                c.through.p99_us,
                c.through.max_us,
                c.direct.p50_us,
                c.direct.p99_us,
                c.direct.max_us,
                c.burst_through.p50_us,
                c.burst_through.p99_us,
                c.burst_through.max_us,
                c.burst_direct.p50_us,
                c.burst_direct.p99_us,
                c.burst_direct.max_us
            );
        }
        if let Ok(r) = &self.relay {
            let _ = writeln!(
                md,
                "**Relay throughput** ({} clients × {} rounds × {} chunks): chatbox {} chunks in \
                 {:.2} s; baseline {} chunks in {:.2} s.\n",
                r.clients,
                r.rounds,
                r.chunks_per_request,
                r.chatbox.chunks,
                r.chatbox.seconds,
                r.baseline.chunks,
                r.baseline.seconds
            );
        }
        if let Ok(s) = &self.soak {
            let _ = writeln!(md, "**Soak** RSS samples (s → MiB):\n");
            let samples: Vec<String> = s
                .samples
                .iter()
                .map(|x| format!("{:.0}→{:.1}", x.at_s, mib(x.rss_bytes)))
                .collect();
            let _ = writeln!(md, "{}\n", samples.join(", "));
        }
        md
    }
}

fn not_measured(what: &str, why: &str) -> Check {
    Check {
        measurement: what.to_owned(),
        measured: why.to_owned(),
        target: "—".to_owned(),
        verdict: Verdict::NotMeasured,
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Values in µs, rounded, comma-separated (the trials of a median).
fn list_us(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Summary;
    use crate::scenarios::idle::IdleLevel;
    use crate::scenarios::relay::{Delivery, RelayTrial};
    use crate::scenarios::ttft::ProxyFloor;

    fn results() -> Results {
        let delivery = |chunks_per_s| Delivery {
            chunks: 1000,
            seconds: 1.0,
            chunks_per_s,
            errors: 0,
        };
        Results {
            plan: Plan::smoke(),
            machine: Machine::detect(),
            started_at: "2026-11-27T00:00:00Z".to_owned(),
            duration_s: 1.0,
            idle: Ok(IdleResult {
                baseline_rss_bytes: 1 << 20,
                levels: vec![IdleLevel {
                    sockets: 1000,
                    rss_bytes: (1 << 20) + 9_000_000,
                    bytes_per_socket: 9_000.0,
                }],
                fd_limit: Some(20_000),
                limited: Some("50000 sockets not attempted".to_owned()),
                note: None,
            }),
            ttft: Err("server did not start".to_owned()),
            chunk: Err("server did not start".to_owned()),
            relay: Ok(RelayResult::from_trials(
                10,
                100,
                1,
                vec![RelayTrial::new(delivery(40.0), delivery(100.0)).with_floor(delivery(55.0))],
            )
            .unwrap()),
            soak: Err("skipped".to_owned()),
            storage: Vec::new(),
            checks: Vec::new(),
        }
    }

    #[test]
    fn each_measurement_is_judged_against_its_target() {
        let mut r = results();
        r.judge();
        let verdicts: Vec<Verdict> = r.checks.iter().map(|c| c.verdict).collect();
        assert_eq!(
            verdicts,
            vec![
                Verdict::Pass,
                Verdict::Info,
                Verdict::NotMeasured,
                Verdict::NotMeasured,
                Verdict::Fail,
                // The relay's floor, beside it.
                Verdict::Info,
                Verdict::NotMeasured,
            ]
        );
        assert_eq!(r.failed(), 1);
        assert_eq!(r.not_measured(), 3);
    }

    fn summary(p50_us: f64, p99_us: f64) -> Summary {
        Summary {
            count: 500,
            p50_us,
            p99_us,
            max_us: p99_us,
            mean_us: p50_us,
        }
    }

    fn steady_100(bare_proxy: Result<ProxyFloor, String>) -> TtftLevel {
        TtftLevel {
            streams: 100,
            shape: Shape::Steady,
            rounds: 5,
            through: summary(900.0, 1_500.0),
            direct: summary(400.0, 700.0),
            server_cpu_us_per_reply: Some(640.0),
            added_p50_us: 500.0,
            added_p99_us: 800.0,
            trials_added_p99_us: vec![800.0],
            errors: 0,
            first_error: None,
            bare_proxy: Some(bare_proxy),
        }
    }

    /// Judges `r` and returns the rows whose names start with `prefix`.
    fn verdicts(mut r: Results, prefix: &str) -> Vec<(String, Verdict)> {
        r.judge();
        r.checks
            .iter()
            .filter(|c| c.measurement.starts_with(prefix))
            .map(|c| (c.measurement.clone(), c.verdict))
            .collect()
    }

    fn ttft_verdicts(level: TtftLevel) -> Vec<(String, Verdict)> {
        let mut r = results();
        r.ttft = Ok(vec![level]);
        verdicts(r, "Added TTFT")
    }

    #[test]
    fn the_floor_is_reported_beside_chatbox_and_its_failure_costs_chatbox_nothing() {
        let chatbox = "Added TTFT p99 (100 streams, steady)".to_owned();
        let floor = "Added TTFT p99 by the bare proxy (100 streams, steady): the floor".to_owned();
        let measured = ProxyFloor {
            through: summary(600.0, 1_000.0),
            cpu_us_per_reply: Some(360.0),
            added_p50_us: 200.0,
            added_p99_us: 300.0,
            errors: 0,
        };
        assert_eq!(
            ttft_verdicts(steady_100(Ok(measured))),
            vec![
                (chatbox.clone(), Verdict::Pass),
                (floor.clone(), Verdict::Info)
            ]
        );
        let failed = Err("the bare proxy did not start: no such file".to_owned());
        assert_eq!(
            ttft_verdicts(steady_100(failed)),
            vec![(chatbox, Verdict::Pass), (floor, Verdict::NotMeasured)]
        );
    }

    #[test]
    fn a_ttft_median_is_judged_and_shown_with_every_trial() {
        let floor = Err("not started".to_owned());
        let mut level = steady_100(floor.clone());
        level.added_p99_us = 1_200.0;
        level.trials_added_p99_us = vec![3_000.0, 700.0, 1_200.0, 900.0, 2_000.0];
        let mut r = results();
        r.ttft = Ok(vec![level]);
        r.judge();
        let row = r
            .checks
            .iter()
            .find(|c| c.measurement == "Added TTFT p99 (100 streams, steady)")
            .unwrap();
        assert_eq!(
            row.measured,
            "1200 µs (p50 500 µs; median of 5 trials: 3000, 700, 1200, 900, 2000; 0 errors)"
        );
        assert_eq!(
            row.verdict,
            Verdict::Fail,
            "judged on the median, not the best trial"
        );
        // One trial (the smoke run): no list.
        let mut r = results();
        r.ttft = Ok(vec![steady_100(floor)]);
        r.judge();
        assert!(r
            .checks
            .iter()
            .any(|c| c.measured == "800 µs (p50 500 µs; 0 errors)"));
    }

    fn soak(idle: u64, warm_idle: u64, after: u64) -> SoakResult {
        let pct = |a: u64, b: u64| (a as f64 - b as f64) / b as f64 * 100.0;
        SoakResult {
            duration_s: 600.0,
            clients: 100,
            replies: 1000,
            errors: 0,
            first_error: None,
            idle_rss_bytes: idle,
            warm_up_s: 10.0,
            warm_idle_rss_bytes: warm_idle,
            samples: Vec::new(),
            first_half_max_bytes: 50 << 20,
            second_half_max_bytes: 50 << 20,
            growth_pct: 0.0,
            after_rss_bytes: after,
            after_vs_idle_pct: pct(after, idle),
            after_vs_warm_idle_pct: pct(after, warm_idle),
        }
    }

    fn soak_verdicts(s: SoakResult) -> Vec<(String, Verdict)> {
        let mut r = results();
        r.soak = Ok(s);
        verdicts(r, "Soak")
    }

    #[test]
    fn soak_recovery_is_judged_against_the_server_at_rest_after_its_warm_up() {
        const MIB: u64 = 1 << 20;
        // Far above the fresh process, at the level the warm-up left: recovered.
        assert_eq!(
            soak_verdicts(soak(15 * MIB, 23 * MIB, 24 * MIB)),
            vec![
                (
                    "Soak RSS plateau (600 s, 100 clients)".to_owned(),
                    Verdict::Pass
                ),
                ("Soak RSS after the load".to_owned(), Verdict::Pass),
                (
                    "Soak RSS after the load vs the fresh process".to_owned(),
                    Verdict::Info
                ),
            ]
        );
        // More than 10 % above what the warm-up left: the long load kept memory.
        let kept = soak_verdicts(soak(15 * MIB, 20 * MIB, 23 * MIB));
        assert_eq!(
            kept[1],
            ("Soak RSS after the load".to_owned(), Verdict::Fail)
        );
    }

    #[test]
    fn results_are_written_as_json_and_markdown() {
        let mut r = results();
        r.judge();
        let dir = tempfile::tempdir().unwrap();
        r.write(dir.path()).unwrap();
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("results.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["checks"].as_array().unwrap().len(), r.checks.len());
        let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
        assert!(md.contains("| Relay throughput (10 clients) | 40 chunks/s vs 100 baseline = 0.40× (median of 1 alternated trials; 0.40–0.40×) | ≥ 0.5× baseline | ❌ fail |"), "{md}");
        assert!(md.contains("| Relay throughput of the bare proxy (10 clients): the floor | 55 chunks/s = 0.55× the baseline (chatbox 0.40×), in the median trial | — | ℹ️ info |"), "{md}");
        assert!(md.contains("Note: 50000 sockets not attempted"));
    }
}
