//! The one SoftHSMv2 token of a run: a directory of its own (`SOFTHSM2_CONF`),
//! initialized with `softhsm2-util`, used by the direct mode and by hsmd alike.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// User PIN of the bench token.
pub const PIN: &str = "648219";
/// SO PIN of the bench token.
pub const SO_PIN: &str = "3537363231383830";

/// A fresh token in a temporary directory (removed on drop).
pub struct Token {
    /// Token directory, `softhsm2.conf`, hsmd's config, socket and log.
    pub dir: TempDir,
    /// Path of the `softhsm2.conf` every process of the run uses.
    pub conf: PathBuf,
    /// The slot ID SoftHSMv2 gave the token.
    pub slot: u64,
}

impl Token {
    /// Initializes a token labelled `label` with [`PIN`] and [`SO_PIN`]
    /// (file object store, as the tests and the demo use).
    pub fn create(label: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hsmd-bench-")
            .tempdir()
            .context("cannot create the bench directory")?;
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens)?;
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )?;
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", PIN, "--so-pin", SO_PIN])
            .output()
            .context("cannot run softhsm2-util (apt-get install softhsm2)")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("softhsm2-util --init-token failed: {}", text.trim());
        }
        // "The token has been initialized and is reassigned to slot 1147832486"
        let slot = text
            .split_whitespace()
            .last()
            .and_then(|w| w.parse().ok())
            .with_context(|| format!("no slot ID in softhsm2-util's output: {}", text.trim()))?;
        Ok(Self { dir, conf, slot })
    }

    /// A path inside the bench directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The bench directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}
