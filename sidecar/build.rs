//! Records the commit the sidecar is built from, for `goalstore_build_info{git_sha}`:
//! `GOALSTORE_GIT_SHA` when set (a release pipeline building from a tarball), else `git
//! rev-parse` of the checkout, else `unknown`. Never fails the build.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GOALSTORE_GIT_SHA");
    let sha = std::env::var("GOALSTORE_GIT_SHA")
        .ok()
        .filter(|sha| !sha.is_empty())
        .or_else(from_git)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=GOALSTORE_GIT_SHA={sha}");
}

fn from_git() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    // Build again when HEAD moves: HEAD itself (a checkout) and the branch it names (a commit).
    let git_dir = Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|dir| dir.trim().to_owned());
    if let Some(dir) = git_dir {
        let head = Path::new(&dir).join("HEAD");
        println!("cargo:rerun-if-changed={}", head.display());
        if let Some(branch) = std::fs::read_to_string(&head)
            .ok()
            .and_then(|text| text.strip_prefix("ref: ").map(|r| r.trim().to_owned()))
        {
            let branch = Path::new(&dir).join(branch);
            if branch.exists() {
                println!("cargo:rerun-if-changed={}", branch.display());
            }
        }
    }
    let sha = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!sha.is_empty()).then_some(sha)
}
