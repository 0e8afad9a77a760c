//! The emulated SmartCard-HSM rig: CardContact's real sc-hsm-embedded
//! PKCS#11 library, pcscd with a virtual reader, and a SmartCard-HSM
//! emulator, started and stopped by the rig's `up.sh` / `down.sh`
//! (docs/smartcard-hsm.md, "Testing on the card").
//!
//! The card tests run only when `HSMD_CARD_RIG` names the rig's directory
//! (`scripts/card-test` sets it and holds the rig's lock); otherwise each
//! prints one line and passes, so a plain `cargo test` needs no rig. Tests
//! of one binary take the rig in turn ([`Rig::take`]).

use crate::{Daemon, Token, DAEMON_USER, PIN, SO_PIN};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Condvar, Mutex};

/// The sc-hsm-embedded module the rig installs.
pub const CARD_LIB: &str = "/usr/local/lib/libsc-hsm-pkcs11.so";
/// PKCS#11 slot ID of the reader holding the card ("Virtual PCD 00 00").
pub const CARD_SLOT: u64 = 0x1;
/// PKCS#11 slot ID of the second reader, always empty ("Virtual PCD 00 01").
pub const EMPTY_SLOT: u64 = 0x5;
/// The variable naming the rig's directory.
pub const RIG_VAR: &str = "HSMD_CARD_RIG";

/// True while a test of this process holds the rig.
static TAKEN: Mutex<bool> = Mutex::new(false);
static RETURNED: Condvar = Condvar::new();

/// The rig, held by one test at a time (sendable to a blocking thread).
pub struct Rig {
    dir: PathBuf,
}

impl Rig {
    /// The rig with a fresh card in slot 0x1, or None after printing one
    /// line when `HSMD_CARD_RIG` is not set (a run without the rig).
    pub fn take(test: &str) -> Option<Self> {
        let Some(dir) = std::env::var_os(RIG_VAR).filter(|d| !d.is_empty()) else {
            println!(
                "{test}: skipped, {RIG_VAR} is not set (scripts/card-test runs the card tests)"
            );
            return None;
        };
        let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
        while *taken {
            taken = RETURNED.wait(taken).unwrap_or_else(|p| p.into_inner());
        }
        *taken = true;
        drop(taken);
        let rig = Self {
            dir: PathBuf::from(dir),
        };
        rig.fresh();
        Some(rig)
    }

    fn script(&self, name: &str, arg: Option<&str>, env: &[(&str, &str)]) -> String {
        let mut cmd = Command::new(self.dir.join(name));
        cmd.args(arg).envs(env.iter().copied());
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", self.dir.join(name).display()));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} {arg:?} failed: {text}");
        text
    }

    /// A fresh, initialized card (user PIN [`PIN`], SO PIN [`SO_PIN`]),
    /// pcscd started when it is not running; returns once the token shows.
    pub fn fresh(&self) {
        self.script("up.sh", None, &[("STATE", "initialized"), ("LOWLAT", "1")]);
    }

    /// Pulls the card (stops the emulator); returns once pcscd sees it gone.
    pub fn pull(&self) {
        self.script("down.sh", Some("card"), &[]);
    }

    /// Starts whatever is not running, keeping the card's keys: puts a pulled
    /// card back, or restarts pcscd; returns once the token shows.
    pub fn up(&self) {
        self.script("up.sh", None, &[("LOWLAT", "1")]);
    }

    /// Stops the emulator and pcscd.
    pub fn down(&self) {
        self.script("down.sh", None, &[]);
    }

    /// The rig's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Rig {
    /// Stops the rig, so no pcscd or emulator outlives the test.
    fn drop(&mut self) {
        let _ = Command::new(self.dir.join("down.sh")).output();
        *TAKEN.lock().unwrap_or_else(|p| p.into_inner()) = false;
        RETURNED.notify_one();
    }
}

/// A test directory for hsmd on the card (no SoftHSMv2 token in it).
pub fn scratch() -> Token {
    Token::scratch(CARD_SLOT)
}

/// The TOML of a test hsmd on the card: `hsm_model = "smartcardhsm"` on
/// [`CARD_LIB`], slot 0x1 with the card's user PIN, admin root, dropping to
/// [`DAEMON_USER`]; `extra` is appended.
pub fn card_config(dir: &Token, extra: &str) -> String {
    config_for(
        dir,
        &format!("hsm_slot = [{CARD_SLOT}]\nhsm_password = [\"{PIN}\"]"),
        extra,
    )
}

/// [`card_config`] with other `hsm_slot` / `hsm_password` lines.
pub fn config_for(dir: &Token, slots_and_pins: &str, extra: &str) -> String {
    format!(
        "hsm_model = \"smartcardhsm\"\nhsm_library = \"{CARD_LIB}\"\nhsm_admin = \"root\"\n{slots_and_pins}\nsocket_path = \"{}\"\nsocket_mode = \"0666\"\nuser = \"{DAEMON_USER}\"\ngroup = \"{DAEMON_USER}\"\n{extra}\n",
        dir.path("hsmd.sock").display()
    )
}

/// Starts hsmd on the card with [`card_config`] and waits until it listens.
pub fn start(dir: &Token, extra: &str) -> Daemon {
    Daemon::start_with(dir, &card_config(dir, extra), &[])
}

/// `pkcs11-tool --module CARD_LIB --slot 1 args`, its output whatever the
/// exit status (an independent reader of the card).
pub fn pkcs11_tool(args: &[&str]) -> Output {
    Command::new("pkcs11-tool")
        .args(["--module", CARD_LIB, "--slot", &CARD_SLOT.to_string()])
        .args(args)
        .output()
        .expect("pkcs11-tool (install opensc)")
}

/// The user-PIN flags of the card as `pkcs11-tool --list-token-slots`
/// prints them: (count low, final try, locked).
pub fn pin_flags() -> (bool, bool, bool) {
    let out = Command::new("pkcs11-tool")
        .args(["--module", CARD_LIB, "--list-token-slots"])
        .output()
        .expect("pkcs11-tool (install opensc)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let flags = text
        .lines()
        .find(|l| l.trim_start().starts_with("token flags"))
        .unwrap_or_else(|| panic!("no token flags in: {text}"))
        .to_owned();
    (
        flags.contains("user PIN count low"),
        flags.contains("final user PIN try"),
        flags.contains("user PIN locked"),
    )
}

/// Logs in once with `pin` through pkcs11-tool (spends a try when wrong);
/// true when the card accepted it.
pub fn login_once(pin: &str) -> bool {
    pkcs11_tool(&["--login", "--pin", pin, "--list-objects"])
        .status
        .success()
}

/// Unblocks the user PIN with the SO PIN and sets it to [`PIN`] again.
pub fn unblock() {
    let out = pkcs11_tool(&[
        "--login",
        "--login-type",
        "so",
        "--so-pin",
        SO_PIN,
        "--init-pin",
        "--new-pin",
        PIN,
    ]);
    assert!(
        out.status.success(),
        "unblocking the PIN: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
