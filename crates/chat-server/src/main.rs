//! The `chat-server` binary: parses the command line and hands over to the library.

/// jemalloc (with its background purging thread) instead of glibc malloc: glibc keeps
/// the pages of freed sessions in its per-thread arenas, so RSS stayed near the peak
/// after the load had gone; jemalloc returns whole free pages to the OS after its
/// decay time (10 s), also while the server is idle. See docs/BENCHMARKS.md (soak).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    chat_server::allocator::use_jemalloc();
    chat_server::cli::main()
}
