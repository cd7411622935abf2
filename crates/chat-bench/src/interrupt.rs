//! Stopping a run on SIGINT or SIGTERM, or when whoever started it is gone, without
//! leaving servers behind.
//!
//! Every child a run starts (chatbox, the bare baseline, SecantusDB) is killed when its
//! handle is dropped. A signal's default action ends the process without dropping
//! anything, so `chat-bench` killed with SIGTERM used to leave its `chat-server`
//! running. [`or_interrupted`] races the run against the two signals instead: on a
//! signal the run's future is dropped, every handle in it with it, and the caller exits
//! with the shell's code for that signal.
//!
//! A parent can also hand `chat-bench` a *lifeline*: with `--stop-when-stdin-closes`
//! the run stops the same way when its standard input (a pipe the parent holds) reaches
//! end of file. The kernel closes the parent's end whenever the parent ends, however it
//! ends — `cargo xtask bench` killed by SIGTERM or SIGKILL alone used to leave
//! `chat-bench` and its server running, because xtask has no signal handling.

use std::future::Future;

/// The signal that stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM.
    Term,
    /// Standard input reached end of file (the parent holding the lifeline is gone).
    InputClosed,
}

impl Interrupted {
    /// The exit code a shell reports for a process ended by this signal (128 + its
    /// number), so scripts see the same code as before the handler existed. A closed
    /// lifeline gives SIGHUP's (129): the nearest thing, a controlling end that went away.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Int => 130,
            Self::Term => 143,
            Self::InputClosed => 129,
        }
    }

    /// What stopped the run, for the message printed on the way out.
    pub fn name(self) -> &'static str {
        match self {
            Self::Int => "SIGINT",
            Self::Term => "SIGTERM",
            Self::InputClosed => "the end of its standard input",
        }
    }
}

/// Runs `work` until it finishes or SIGINT/SIGTERM arrives — or, with `watch_input`,
/// until standard input reaches end of file — whichever is first; when stopped,
/// `work` is dropped before this returns. A handler that cannot be installed, or a
/// standard input that cannot be watched (not a pipe), is reported on stderr and that
/// way of stopping is left out.
pub async fn or_interrupted<F: Future>(
    work: F,
    watch_input: bool,
) -> Result<F::Output, Interrupted> {
    let signal = first_signal();
    let lifeline = async {
        if watch_input {
            input_closed().await;
            Interrupted::InputClosed
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        output = work => Ok(output),
        stopped = signal => Err(stopped),
        stopped = lifeline => Err(stopped),
    }
}

/// Resolves when standard input reaches end of file or fails. The read is registered
/// with the runtime's reactor (a non-blocking pipe), not parked on a blocking thread,
/// so a run that finishes first drops it and the runtime shuts down at once.
#[cfg(unix)]
async fn input_closed() {
    use std::os::fd::AsFd;
    use tokio::io::AsyncReadExt;

    let pipe = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(tokio::net::unix::pipe::Receiver::from_owned_fd);
    let mut pipe = match pipe {
        Ok(pipe) => pipe,
        Err(e) => {
            eprintln!("chat-bench: cannot watch standard input (is it a pipe?): {e}");
            return std::future::pending().await;
        }
    };
    let mut buf = [0u8; 256];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(not(unix))]
async fn input_closed() {
    eprintln!("chat-bench: watching standard input needs a Unix pipe");
    std::future::pending().await
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
        assert_eq!(or_interrupted(async { 7 }, false).await, Ok(7));
    }

    #[test]
    fn exit_codes_are_the_shells_for_each_signal() {
        assert_eq!(Interrupted::Int.exit_code(), 130);
        assert_eq!(Interrupted::Term.exit_code(), 143);
        assert_eq!(Interrupted::InputClosed.exit_code(), 129);
    }
}
