//! The shared `moto_server`: one DynamoDB-compatible server per test process.
//!
//! Starting moto costs a Python interpreter start-up (a second or more), so all tests of
//! a process share one server and isolate themselves with uniquely named tables (see
//! [`crate::dynamo::fresh_table`]).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::binary;
use super::port::free_port;
use super::process::GuardedProcess;

const PROGRAM: &str = "moto_server";
const INSTALL: &str = "pip install 'moto[server]'";
/// Generous: the machine may be busy compiling while moto imports its many modules.
const START_DEADLINE: Duration = Duration::from_secs(90);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// New ports to try when the server exits during start-up (typically: port taken).
const ATTEMPTS: usize = 3;

/// The outcome of the first start attempt, kept so every test reports the same failure
/// instead of each paying for another doomed start.
static SHARED: OnceLock<Result<MotoServer, String>> = OnceLock::new();

/// A `moto_server` listening on a loopback port.
#[derive(Debug)]
pub struct MotoServer {
    endpoint: String,
    /// Never dropped (it lives in a static); its guard stops the server when the test
    /// process exits and removes the server's scratch directory.
    _process: GuardedProcess,
}

impl MotoServer {
    /// One moto_server per test process, started on first use on a free 127.0.0.1 port,
    /// and stopped when the test process exits (even though statics are never dropped).
    ///
    /// Blocks while the server starts. Panics if it cannot be started, with the reason
    /// and the tail of the server's log; use [`MotoServer::try_shared`] for a `Result`.
    pub fn shared() -> &'static MotoServer {
        match MotoServer::try_shared() {
            Ok(server) => server,
            Err(error) => panic!("{error:?}"),
        }
    }

    /// Like [`MotoServer::shared`], but returns start-up failures as an error.
    pub fn try_shared() -> anyhow::Result<&'static MotoServer> {
        SHARED
            .get_or_init(|| start().map_err(|error| format!("{error:?}")))
            .as_ref()
            .map_err(|error| anyhow::anyhow!("moto_server could not be started: {error}"))
    }

    /// e.g. "http://127.0.0.1:43125"
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

fn start() -> anyhow::Result<MotoServer> {
    let program = binary::locate(PROGRAM, INSTALL)?;
    // Kept (not a TempDir): the server outlives every destructor, so its guard removes
    // the directory when the test process exits.
    let dir = tempfile::Builder::new()
        .prefix("goalstore-moto-")
        .tempdir()
        .context("creating a scratch directory for moto_server")?
        .keep();
    let started = start_in(&program, &dir);
    if started.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    started
}

fn start_in(program: &Path, dir: &Path) -> anyhow::Result<MotoServer> {
    let mut failures = Vec::new();
    for _ in 0..ATTEMPTS {
        let port = free_port()?;
        let log = dir.join(format!("moto_server-{port}.log"));
        let args = [
            "-H".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
        ];
        let mut process = GuardedProcess::spawn(program, &args, &log, Some(dir))?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = process.try_wait()? {
                // Most likely someone took the port between free_port() and the bind.
                failures.push(format!(
                    "moto_server on port {port} exited during start-up ({status})\n{}",
                    process.log_tail()
                ));
                break;
            }
            // Answering and still alive: the answer came from our server, not from some
            // other process that owns the port our server then failed to bind.
            if answers_http(port) && process.try_wait()?.is_none() {
                return Ok(MotoServer {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    _process: process,
                });
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "moto_server on port {port} did not answer HTTP within {START_DEADLINE:?}\n{}",
                    process.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    anyhow::bail!(
        "moto_server failed to start {ATTEMPTS} times:\n{}",
        failures.join("\n")
    )
}

/// Whether an HTTP server answers on the port, with any status.
///
/// Hand-written HTTP/1.0 over a blocking socket: this runs outside any async runtime
/// (the shared server is started from whichever thread first needs it).
fn answers_http(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut head = [0_u8; 5];
        stream.read_exact(&mut head)?;
        Ok(&head == b"HTTP/")
    };
    probe().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_starts_one_server_that_answers_http() -> anyhow::Result<()> {
        let first = MotoServer::try_shared()?;
        let second = MotoServer::shared();
        assert!(std::ptr::eq(first, second), "one server per process");

        let port: u16 = first
            .endpoint()
            .strip_prefix("http://127.0.0.1:")
            .context("a loopback http endpoint")?
            .parse()?;
        assert!(answers_http(port), "{} answers", first.endpoint());
        Ok(())
    }
}
