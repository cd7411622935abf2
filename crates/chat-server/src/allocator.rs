//! The memory allocator's own statistics, exported as Prometheus gauges.
//!
//! The `chat-server` binary allocates through jemalloc (see `main.rs`) and calls
//! [`use_jemalloc`] first thing; from then on every scrape of `/metrics/prometheus`
//! reports jemalloc's counters. They tell live data from what the allocator keeps:
//! `allocated` is what the program holds right now, `resident` what jemalloc has in
//! RAM (live data, its metadata and free pages not yet returned to the OS), `retained`
//! virtual memory it keeps mapped without RAM behind it. `resident − allocated` is the
//! allocator's retention, the part RSS carries that no data structure owns.
//!
//! The library alone (tests, other embedders) does not assume jemalloc is the global
//! allocator: without [`use_jemalloc`] no allocator gauges are exported, so they never
//! describe an allocator nobody allocates from.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tikv_jemalloc_ctl::{epoch, stats, Access, AsName};

static JEMALLOC_IS_GLOBAL: AtomicBool = AtomicBool::new(false);

/// Bumped by [`request_thread_cache_flush`]; each runtime thread flushes its cache
/// when it parks and sees a value it has not flushed for.
static FLUSH_REQUEST: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static FLUSHED_FOR: Cell<u64> = const { Cell::new(0) };
}

/// Declares jemalloc (`tikv_jemallocator::Jemalloc`) the process's global allocator,
/// which turns on the `chatbox_allocator_*` gauges.
pub fn use_jemalloc() {
    JEMALLOC_IS_GLOBAL.store(true, Ordering::Relaxed);
}

/// Asks every runtime thread to hand its jemalloc thread cache back at its next park
/// ([`flush_thread_cache_if_requested`]).
///
/// jemalloc keeps objects a thread freed in that thread's cache for reuse, and trims
/// the cache only as the same thread allocates again. A worker that goes idle after a
/// load keeps its cache — megabytes of small objects, each pinning a partly used page
/// (see docs/BENCHMARKS.md, soak). Flushed, the objects return to their pages, pages
/// that become empty are purged after the decay time, and the cache refills from the
/// arena on the next allocations (a few microseconds per thread and request).
pub fn request_thread_cache_flush() {
    FLUSH_REQUEST.fetch_add(1, Ordering::Relaxed);
}

/// Flushes this thread's jemalloc cache if a flush was requested since its last one.
/// Meant for the runtime's `on_thread_park` hook: it runs on the worker itself, when
/// it has nothing to do. A no-op unless jemalloc is the global allocator.
pub fn flush_thread_cache_if_requested() {
    let requested = FLUSH_REQUEST.load(Ordering::Relaxed);
    if FLUSHED_FOR.get() == requested || !JEMALLOC_IS_GLOBAL.load(Ordering::Relaxed) {
        return;
    }
    FLUSHED_FOR.set(requested);
    // Disabling the cache flushes and frees it; enabling it again starts an empty
    // one. A failure leaves the cache as it was (nothing lost, only not trimmed).
    let enabled = b"thread.tcache.enabled\0".name();
    if let Err(e) = enabled.write(false).and_then(|()| enabled.write(true)) {
        tracing::debug!(error = %e, "thread cache not flushed");
    }
}

/// jemalloc's counters at one instant, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes in live allocations.
    pub allocated: u64,
    /// Bytes in pages holding at least one live allocation.
    pub active: u64,
    /// Bytes of jemalloc's own metadata.
    pub metadata: u64,
    /// Bytes in physically resident pages (live, metadata, dirty free pages).
    pub resident: u64,
    /// Bytes in mapped extents (active ones and those not yet purged).
    pub mapped: u64,
    /// Bytes of virtual memory kept mapped but released to the OS (no RAM).
    pub retained: u64,
}

impl AllocatorStats {
    /// Reads the counters, first advancing jemalloc's epoch (its statistics are a
    /// snapshot refreshed only on demand).
    ///
    /// # Errors
    /// jemalloc's error when a counter cannot be read (built without statistics).
    pub fn read() -> Result<Self, tikv_jemalloc_ctl::Error> {
        epoch::advance()?;
        Ok(Self {
            allocated: to_u64(stats::allocated::read()?),
            active: to_u64(stats::active::read()?),
            metadata: to_u64(stats::metadata::read()?),
            resident: to_u64(stats::resident::read()?),
            mapped: to_u64(stats::mapped::read()?),
            retained: to_u64(stats::retained::read()?),
        })
    }
}

fn to_u64(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// Sets the `chatbox_allocator_*_bytes` gauges, when the binary declared jemalloc
/// global (nothing otherwise). A read error is logged and leaves the gauges as they were.
pub fn refresh_gauges() {
    if !JEMALLOC_IS_GLOBAL.load(Ordering::Relaxed) {
        return;
    }
    match AllocatorStats::read() {
        Ok(s) => set_gauges(&s),
        Err(e) => tracing::debug!(error = %e, "allocator statistics unavailable"),
    }
}

fn set_gauges(s: &AllocatorStats) {
    // Precision: f64 holds every byte count below 2^53 (8 PiB) exactly.
    let g = |v: u64| v as f64;
    metrics::gauge!("chatbox_allocator_allocated_bytes").set(g(s.allocated));
    metrics::gauge!("chatbox_allocator_active_bytes").set(g(s.active));
    metrics::gauge!("chatbox_allocator_metadata_bytes").set(g(s.metadata));
    metrics::gauge!("chatbox_allocator_resident_bytes").set(g(s.resident));
    metrics::gauge!("chatbox_allocator_mapped_bytes").set(g(s.mapped));
    metrics::gauge!("chatbox_allocator_retained_bytes").set(g(s.retained));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_are_consistent() {
        // jemalloc is linked (prefixed) even where it is not the global allocator, so
        // its counters can be read here; they only need to be coherent.
        let s = AllocatorStats::read().unwrap();
        assert!(s.active >= s.allocated, "{s:?}");
        assert!(s.resident >= s.metadata, "{s:?}");
        assert!(s.mapped >= s.active, "{s:?}");
    }

    #[test]
    fn a_requested_flush_runs_once_per_thread_and_leaves_the_cache_on() {
        use_jemalloc();
        let enabled = b"thread.tcache.enabled\0".name();
        request_thread_cache_flush();
        let wanted = FLUSH_REQUEST.load(Ordering::Relaxed);
        assert_ne!(FLUSHED_FOR.get(), wanted);
        flush_thread_cache_if_requested();
        // `>=`: another test's upkeep may request one more meanwhile.
        assert!(FLUSHED_FOR.get() >= wanted, "flushed for the request");
        assert!(
            Access::<bool>::read(enabled).unwrap(),
            "the cache is on again"
        );
        // Another thread has not flushed for it yet.
        let other = std::thread::spawn(move || {
            let before = FLUSHED_FOR.get();
            flush_thread_cache_if_requested();
            (before, FLUSHED_FOR.get())
        })
        .join()
        .unwrap();
        assert_eq!(other.0, 0, "a new thread has flushed for nothing");
        assert!(other.1 >= wanted, "it flushes at its first park");
    }

    #[test]
    fn the_gauges_are_exported_once_jemalloc_is_declared() {
        let handle = crate::metrics::handle();
        use_jemalloc();
        refresh_gauges();
        let text = handle.render();
        for name in [
            "chatbox_allocator_allocated_bytes",
            "chatbox_allocator_active_bytes",
            "chatbox_allocator_metadata_bytes",
            "chatbox_allocator_resident_bytes",
            "chatbox_allocator_mapped_bytes",
            "chatbox_allocator_retained_bytes",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
