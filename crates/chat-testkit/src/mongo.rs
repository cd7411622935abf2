//! A launcher for SecantusDB, a MongoDB-wire server used by the storage tests.
//!
//! SecantusDB is GPL-licensed, so it is only ever run as an external process and
//! never linked. [`ensure_secantusd`] finds the binary (`SECANTUSD_BIN`, `PATH`,
//! `~/.cargo/bin`) and, when it is missing, installs the pinned version with
//! `cargo install` (serialized across parallel test processes by a file lock), falling
//! back to the PyPI build when the cargo install fails. [`TestMongo`] starts one
//! server on a free loopback port with a private data directory, and kills it on
//! drop.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The pinned crate version of the Rust build (`secantusd-rs`).
pub const SECANTUS_CRATE_VERSION: &str = "0.5.3-beta.196";
/// The pinned PyPI version of the fallback build (`secantusd-py`).
pub const SECANTUS_PYPI_VERSION: &str = "0.7.0b3";

/// How long a server gets to print its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a test MongoDB-wire server could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum TestMongoError {
    /// Neither an installed binary nor an automatic install was available.
    #[error("SecantusDB is not installed and could not be installed: {0}")]
    Install(String),
    /// The server process could not be started or did not report its port in time.
    #[error("SecantusDB did not start: {0}")]
    Start(String),
    /// Local I/O (temp dir, log file, lock file) failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Which build of SecantusDB a binary is; the Python build needs `retryWrites=false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecantusFlavor {
    /// `secantusd-rs` from crates.io.
    Rust,
    /// `secantusd-py` from PyPI.
    Python,
}

/// A located server binary.
#[derive(Debug, Clone)]
pub struct SecantusBinary {
    /// Path of the executable.
    pub path: PathBuf,
    /// Which build it is.
    pub flavor: SecantusFlavor,
}

/// Finds (or installs once per process) the SecantusDB binary and returns its path, so
/// `cargo xtask test` can provision it before running the MongoDB conformance run.
pub fn ensure_secantusd() -> Result<PathBuf, TestMongoError> {
    ensure_binary().map(|b| b.path)
}

fn ensure_binary() -> Result<SecantusBinary, TestMongoError> {
    static FOUND: OnceLock<Result<SecantusBinary, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| locate_or_install().map_err(|e| e.to_string()))
        .clone()
        .map_err(TestMongoError::Install)
}

fn locate() -> Option<SecantusBinary> {
    if let Some(path) = std::env::var_os("SECANTUSD_BIN").map(PathBuf::from) {
        if path.is_file() {
            let flavor = if path.to_string_lossy().contains("-py") {
                SecantusFlavor::Python
            } else {
                SecantusFlavor::Rust
            };
            return Some(SecantusBinary { path, flavor });
        }
    }
    for (name, flavor) in [
        ("secantusd-rs", SecantusFlavor::Rust),
        ("secantusd-py", SecantusFlavor::Python),
    ] {
        if let Some(path) = find_in_path(name) {
            return Some(SecantusBinary { path, flavor });
        }
        if let Some(path) = cargo_bin_dir()
            .map(|d| d.join(name))
            .filter(|p| p.is_file())
        {
            return Some(SecantusBinary { path, flavor });
        }
    }
    None
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn cargo_bin_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Some(PathBuf::from(home).join("bin"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").join("bin"))
}

fn locate_or_install() -> Result<SecantusBinary, TestMongoError> {
    if let Some(found) = locate() {
        return Ok(found);
    }
    // Serialize installs across test processes: whoever holds the lock installs, the
    // others find the binary once they get the lock.
    let lock_path = std::env::temp_dir().join("chatbox-secantusd-install.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    lock.lock()?;
    let result = match locate() {
        Some(found) => Ok(found),
        None => install(),
    };
    drop(lock);
    result
}

fn install() -> Result<SecantusBinary, TestMongoError> {
    let cargo_error = match install_with_cargo() {
        Ok(()) => match locate() {
            Some(found) => return Ok(found),
            None => "cargo install succeeded but secantusd-rs was not found".to_owned(),
        },
        Err(e) => e,
    };
    match install_with_pip() {
        Ok(()) => locate().ok_or_else(|| {
            TestMongoError::Install(format!(
                "cargo: {cargo_error}; pip install succeeded but secantusd-py was not found"
            ))
        }),
        Err(pip_error) => Err(TestMongoError::Install(format!(
            "cargo: {cargo_error}; pip: {pip_error}"
        ))),
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} exited with {status}"))
    }
}

fn install_with_cargo() -> Result<(), String> {
    if find_in_path("cmake").is_none() {
        // The WiredTiger build needs cmake; best effort (needs root on Debian/Ubuntu).
        let _ = run(Command::new("apt-get").arg("update"));
        run(Command::new("apt-get").args(["install", "-y", "cmake"]))?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo).args([
        "install",
        "secantus-mdb",
        "--version",
        &format!("={SECANTUS_CRATE_VERSION}"),
        "--locked",
        "--ignore-rust-version",
    ]))
}

fn install_with_pip() -> Result<(), String> {
    let spec = format!("SecantusDB=={SECANTUS_PYPI_VERSION}");
    run(Command::new("pip").args(["install", &spec]))
        .or_else(|_| run(Command::new("pip3").args(["install", &spec])))
}

/// One running SecantusDB server with a private data directory. Killed on drop.
#[derive(Debug)]
pub struct TestMongo {
    binary: SecantusBinary,
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    starts: u32,
}

impl TestMongo {
    /// Installs the server if needed and starts it on a free loopback port.
    pub fn start() -> Result<Self, TestMongoError> {
        let binary = ensure_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("chatbox-mongo-")
            .tempdir()?;
        let mut server = Self {
            binary,
            child: None,
            port: 0,
            dir,
            starts: 0,
        };
        server.spawn(0)?;
        Ok(server)
    }

    /// The port the server listens on (kept across [`TestMongo::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection string for the server (the Python build needs `retryWrites=false`).
    pub fn uri(&self) -> String {
        let mut uri = format!(
            "mongodb://127.0.0.1:{}/?serverSelectionTimeoutMS=5000",
            self.port
        );
        if self.binary.flavor == SecantusFlavor::Python {
            uri.push_str("&retryWrites=false");
        }
        uri
    }

    /// A connection string that talks to `host:port` (e.g. a fault-injecting proxy in
    /// front of this server) without following the replica-set advertisement back to
    /// the real port.
    pub fn direct_uri_via(&self, port: u16) -> String {
        let mut uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
        if self.binary.flavor == SecantusFlavor::Python {
            uri.push_str("&retryWrites=false");
        }
        uri
    }

    /// True while the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s); data stays on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill")
                .args(["-TERM", &pid])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Starts the server again on the same port with the same data directory.
    pub fn restart(&mut self) -> Result<(), TestMongoError> {
        self.stop();
        let port = self.port;
        self.spawn(port)
    }

    fn spawn(&mut self, port: u16) -> Result<(), TestMongoError> {
        self.starts += 1;
        let data = self.dir.path().join("data");
        let log_path = self.dir.path().join(format!("server-{}.log", self.starts));
        let log = File::create(&log_path)?;
        let log_err = log.try_clone()?;
        let mut child = Command::new(&self.binary.path)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| TestMongoError::Start(format!("{}: {e}", self.binary.path.display())))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(found) = read_port(&log_path)? {
                self.port = found;
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(TestMongoError::Start(format!(
                    "exited with {status} before listening: {log}"
                )));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TestMongoError::Start(format!(
                    "no `listening on` line within {START_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Parses `listening on HOST:PORT` from the server log.
fn read_port(log: &Path) -> Result<Option<u16>, TestMongoError> {
    let mut text = String::new();
    File::open(log)?.read_to_string(&mut text)?;
    Ok(text.lines().find_map(|line| {
        let rest = &line[line.find("listening on")? + "listening on".len()..];
        let addr = rest.split_whitespace().next()?;
        addr.rsplit(':').next()?.trim().parse::<u16>().ok()
    }))
}

impl Drop for TestMongo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "starting\nlistening on 127.0.0.1:40123\n").unwrap();
        assert_eq!(read_port(&log).unwrap(), Some(40123));
        std::fs::write(&log, "starting\n").unwrap();
        assert_eq!(read_port(&log).unwrap(), None);
    }

    #[test]
    fn starts_restarts_on_the_same_port_and_stops() {
        let mut server = TestMongo::start().unwrap();
        let port = server.port();
        assert_ne!(port, 0);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        server.stop();
        assert!(!server.is_running());
        server.restart().unwrap();
        assert_eq!(server.port(), port);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    }
}
