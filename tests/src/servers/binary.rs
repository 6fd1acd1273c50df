//! Finding a server binary on `PATH`, and failing loudly with the command that installs it.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The absolute path of `program` on `PATH`.
///
/// Looked up before spawning (rather than letting `spawn` fail with a bare `ENOENT`) so
/// that a missing binary produces an error saying how to install it.
pub(crate) fn locate(program: &str, install: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| missing(program, install, &path))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn missing(program: &str, install: &str, path: &OsStr) -> anyhow::Error {
    anyhow::anyhow!(
        "`{program}` was not found on PATH ({}). The integration tests start a real \
         {program}; install it with `{install}`, or run `scripts/test.sh`, which installs \
         everything the tests need.",
        path.to_string_lossy()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh() -> anyhow::Result<()> {
        let sh = locate("sh", "apt-get install -y dash")?;
        assert!(sh.is_absolute(), "{}", sh.display());
        Ok(())
    }

    #[test]
    fn a_missing_binary_names_the_install_command() {
        let error = locate("goalstore-no-such-binary", "apt-get install -y nothing")
            .expect_err("the binary does not exist");
        let message = error.to_string();
        assert!(message.contains("apt-get install -y nothing"), "{message}");
        assert!(message.contains("scripts/test.sh"), "{message}");
    }
}
