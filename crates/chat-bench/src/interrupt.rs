//! Stopping a run on SIGINT or SIGTERM without leaving servers behind.
//!
//! Every child a run starts (chatbox, the bare baseline, SecantusDB) is killed when its
//! handle is dropped. A signal's default action ends the process without dropping
//! anything, so `chat-bench` killed with SIGTERM used to leave its `chat-server`
//! running. [`or_signal`] races the run against the two signals instead: on a signal the
//! run's future is dropped, every handle in it with it, and the caller exits with the
//! shell's code for that signal.

use std::future::Future;

/// The signal that stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM.
    Term,
}

impl Interrupted {
    /// The exit code a shell reports for a process ended by this signal (128 + its
    /// number), so scripts see the same code as before the handler existed.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Int => 130,
            Self::Term => 143,
        }
    }

    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Int => "SIGINT",
            Self::Term => "SIGTERM",
        }
    }
}

/// Runs `work` until it finishes or SIGINT/SIGTERM arrives, whichever is first; on a
/// signal `work` is dropped before this returns. A handler that cannot be installed
/// is reported on stderr and that signal keeps its default action.
pub async fn or_signal<F: Future>(work: F) -> Result<F::Output, Interrupted> {
    let signal = first_signal();
    tokio::select! {
        output = work => Ok(output),
        stopped = signal => Err(stopped),
    }
}

#[cfg(unix)]
async fn first_signal() -> Interrupted {
    use tokio::signal::unix::{signal, SignalKind};
    let wait_for = |kind: SignalKind, which: Interrupted| async move {
        match signal(kind) {
            Ok(mut stream) => {
                stream.recv().await;
                which
            }
            Err(e) => {
                eprintln!("chat-bench: cannot handle {}: {e}", which.name());
                std::future::pending().await
            }
        }
    };
    tokio::select! {
        which = wait_for(SignalKind::interrupt(), Interrupted::Int) => which,
        which = wait_for(SignalKind::terminate(), Interrupted::Term) => which,
    }
}

#[cfg(not(unix))]
async fn first_signal() -> Interrupted {
    match tokio::signal::ctrl_c().await {
        Ok(()) => Interrupted::Int,
        Err(e) => {
            eprintln!("chat-bench: cannot handle Ctrl-C: {e}");
            std::future::pending().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_that_finishes_first_returns_its_output() {
        assert_eq!(or_signal(async { 7 }).await, Ok(7));
    }

    #[test]
    fn exit_codes_are_the_shells_for_each_signal() {
        assert_eq!(Interrupted::Int.exit_code(), 130);
        assert_eq!(Interrupted::Term.exit_code(), 143);
    }
}
