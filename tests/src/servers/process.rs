//! A server process that cannot outlive the test process.
//!
//! A server held in a `static` is never dropped, and a test binary killed by a signal
//! runs no destructors at all, so `Drop` alone would leave servers running after the
//! tests. Each server therefore gets a companion guard: a tiny `sh` whose stdin is a
//! pipe whose only writer is this process. The kernel closes that pipe however this
//! process ends (normal exit, panic, SIGKILL); the guard's `read` then returns and it
//! kills the server's process group, and removes the server's scratch directory if it
//! was given one.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::Context as _;

/// `$1` is the server's process group id, `$2` a directory to remove (may be empty).
///
/// It ignores INT, TERM and HUP because Ctrl-C signals the whole foreground process
/// group, guard included, and the guard must survive the test process to do its job.
/// The server runs in its own process group, so the guard kills it and everything it
/// spawned. (`kill -9 -PGID` is the spelling dash understands.)
const GUARD_SCRIPT: &str = r#"trap '' INT TERM HUP
read _ignored
kill -9 "-$1" 2>/dev/null
if [ -n "$2" ]; then rm -rf "$2"; fi
"#;

/// How much of the log to quote when a server fails.
const LOG_TAIL_BYTES: u64 = 4096;

/// A running server plus the guard that kills it when the test process goes away.
#[derive(Debug)]
pub(crate) struct GuardedProcess {
    program: PathBuf,
    server: Child,
    guard: Child,
    log: PathBuf,
}

impl GuardedProcess {
    /// Starts `program` with `args`, stdout and stderr appended to `log`.
    ///
    /// `remove_on_exit` is removed by the guard once it has killed the server; that is
    /// for servers that live in a `static` and thus never drop their scratch directory.
    /// An explicit [`GuardedProcess::kill`] stops the guard first and does not remove it.
    pub(crate) fn spawn(
        program: &Path,
        args: &[String],
        log: &Path,
        remove_on_exit: Option<&Path>,
    ) -> anyhow::Result<GuardedProcess> {
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening the server log {}", log.display()))?;
        let server = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(
                log_file
                    .try_clone()
                    .context("duplicating the log file handle")?,
            )
            .stderr(log_file)
            // Its own process group, so the guard can kill the server with its children.
            .process_group(0)
            // Python buffers output to files; unbuffered, the log tail is complete.
            .env("PYTHONUNBUFFERED", "1")
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let pgid = server.id().to_string();
        let guard = Command::new("sh")
            .arg("-c")
            .arg(GUARD_SCRIPT)
            .arg("goalstore-test-guard")
            .arg(&pgid)
            .arg(remove_on_exit.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let guard = match guard {
            Ok(guard) => guard,
            Err(error) => {
                // Without a guard the server could outlive us: do not keep it.
                let mut server = server;
                let _ = server.kill();
                let _ = server.wait();
                return Err(error).context("starting the guard process (sh)");
            }
        };
        let process = GuardedProcess {
            program: program.to_owned(),
            server,
            guard,
            log: log.to_owned(),
        };
        Ok(process)
    }

    /// The server's exit status if it has already exited (it is reaped then).
    pub(crate) fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.server
            .try_wait()
            .with_context(|| format!("checking on {}", self.program.display()))
    }

    /// Kills the server (SIGKILL to its process group) and reaps it. Idempotent.
    pub(crate) fn kill(&mut self) {
        // The guard goes first: once the server is reaped its pid, which is also the
        // process group id the guard would kill, may be reused by an unrelated process.
        let _ = self.guard.kill();
        let _ = self.guard.wait();
        self.kill_server();
    }

    fn kill_server(&mut self) {
        if matches!(self.server.try_wait(), Ok(None)) {
            let group_killed = Command::new("sh")
                .arg("-c")
                .arg(r#"kill -9 "-$1""#)
                .arg("goalstore-test-kill")
                .arg(self.server.id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if !group_killed {
                let _ = self.server.kill();
            }
        }
        // Reaping closes the question of whether the server still holds its port.
        let _ = self.server.wait();
    }

    /// The last few KB of the server's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Closes the guard's pipe as if this process had exited, and waits for the guard.
    #[cfg(test)]
    fn fire_guard(&mut self) -> anyhow::Result<ExitStatus> {
        drop(self.guard.stdin.take());
        Ok(self.guard.wait()?)
    }
}

impl Drop for GuardedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last few KB of `log` (or why it could not be read), for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(log)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) if text.trim().is_empty() => format!("(log {} is empty)", log.display()),
        Ok(text) => format!("--- tail of {} ---\n{}", log.display(), text.trim_end()),
        Err(error) => format!("(could not read log {}: {error})", log.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    fn sleeper(dir: &Path, remove_on_exit: Option<&Path>) -> anyhow::Result<GuardedProcess> {
        let sleep = super::super::binary::locate("sleep", "apt-get install -y coreutils")?;
        GuardedProcess::spawn(
            &sleep,
            &["600".to_owned()],
            &dir.join("sleep.log"),
            remove_on_exit,
        )
    }

    #[test]
    fn the_guard_kills_the_server_when_its_pipe_closes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch)?;
        let mut process = sleeper(dir.path(), Some(&scratch))?;
        assert!(process.try_wait()?.is_none(), "the server is running");

        process.fire_guard()?;

        // Blocking wait: returns because the guard killed the server, not by timeout.
        let status = process.server.wait()?;
        assert_eq!(status.signal(), Some(9), "{status}");
        assert!(!scratch.exists(), "the guard removed the scratch directory");
        Ok(())
    }

    #[test]
    fn kill_stops_server_and_guard() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut process = sleeper(dir.path(), None)?;
        process.kill();
        assert!(process.try_wait()?.is_some(), "the server is reaped");
        assert!(process.guard.try_wait()?.is_some(), "the guard is reaped");
        process.kill();
        Ok(())
    }

    #[test]
    fn log_tail_quotes_the_end_of_the_log() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("server.log");
        std::fs::write(&log, format!("{}\nthe last line\n", "x".repeat(10_000)))?;
        let tail = log_tail(&log);
        assert!(tail.ends_with("the last line"), "{tail}");
        assert!(tail.len() < 5000, "only the tail: {} bytes", tail.len());
        Ok(())
    }
}
