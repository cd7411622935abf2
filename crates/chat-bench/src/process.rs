//! A child server process (chatbox or the baseline): started, its address read from
//! its first stdout line, its memory read from `/proc`, killed when dropped.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::BenchError;

/// How long a child may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running child that printed `listening on ADDR`. Killed on drop (the command is
/// spawned with `kill_on_drop`), so a failed run never leaves a server behind.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    /// Reads the rest of stdout so the child never blocks on a full pipe.
    drain: JoinHandle<()>,
}

impl ChildServer {
    /// Spawns `command` (stdout piped, stdin piped so the child sees EOF when we go,
    /// stderr inherited) and waits for its `listening on ADDR` line.
    pub async fn spawn(mut command: Command) -> Result<Self, BenchError> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Process("child exited at once".to_owned()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Process("no stdout pipe".to_owned()))?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = parse_listening(&line) {
                    return Ok(addr);
                }
            }
            Err(BenchError::Process(
                "the child exited before printing `listening on`".to_owned(),
            ))
        })
        .await
        .map_err(|_| BenchError::Timeout("child server start".to_owned()))??;
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            pid,
            addr,
            drain,
        })
    }

    /// The address the child listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's resident set size now.
    pub fn rss_bytes(&self) -> Result<u64, BenchError> {
        rss_bytes(self.pid)
    }

    /// CPU time the child has used so far (user + system, all threads).
    pub fn cpu_time(&self) -> Result<std::time::Duration, BenchError> {
        cpu_time(self.pid)
    }

    /// Kills the child and waits for it (and for the stdout reader) to finish.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        self.child.start_kill()?;
        self.child.wait().await?;
        let _ = (&mut self.drain).await;
        Ok(())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

/// The address in a `listening on 127.0.0.1:PORT` line.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    line.trim()
        .strip_prefix("listening on ")?
        .trim()
        .parse()
        .ok()
}

/// `VmRSS` of process `pid` from `/proc/PID/status`, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| BenchError::Process(format!("no VmRSS line for pid {pid}")))
}

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

/// CPU time (user + system, all threads) of process `pid` from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Result<std::time::Duration, BenchError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| std::time::Duration::from_millis(ticks * 1000 / USER_HZ))
        .ok_or_else(|| BenchError::Process(format!("unreadable /proc/{pid}/stat")))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks.
/// Fields are counted after the command name, which may itself contain spaces.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The `VmRSS:   1234 kB` value of a `/proc/PID/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The soft `Max open files` limit of this process (`None` when unlimited or unknown).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t    1234 kB\nThreads: 2\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_after_a_command_name_with_spaces() {
        let stat = "42 (tokio rt) S 1 42 42 0 -1 4194560 10 0 0 0 250 17 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(267));
        assert_eq!(parse_cpu_ticks("42 (x) S 1"), None);
        assert!(cpu_time(std::process::id()).is_ok());
    }

    #[test]
    fn this_process_has_a_resident_size_and_an_fd_limit() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        assert!(open_files_limit().unwrap_or(u64::MAX) > 0);
    }

    #[test]
    fn parses_the_listening_line() {
        assert_eq!(
            parse_listening("listening on 127.0.0.1:4242"),
            Some("127.0.0.1:4242".parse().unwrap())
        );
        assert_eq!(parse_listening("chatbox / at http://x"), None);
    }
}
