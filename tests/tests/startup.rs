//! Start-up failures: hsmd exits non-zero with one sentence naming what is
//! wrong and what would be accepted, and never prints a PIN.

use hsmd_e2e::{base_config, run_hsmd_to_exit, Daemon, Token, PIN};

fn fails_with(token: &Token, toml: &str, args: &[&str], needles: &[&str]) -> String {
    let (status, stderr) = run_hsmd_to_exit(token, toml, args);
    assert!(
        !status.success() && status.code().is_some(),
        "hsmd should exit non-zero; stderr: {stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
    stderr
}

#[test]
fn wrong_pin_fails_start_up_naming_the_slot_never_the_pin() {
    let token = Token::new("wrongpin");
    let toml = base_config(&token, "").replace(PIN, "999999");
    let stderr = fails_with(
        &token,
        &toml,
        &[],
        &[
            &format!("slot {}", token.slot),
            "CKR_PIN_INCORRECT",
            "hsm_password",
        ],
    );
    // Name the leak, never print it.
    assert!(
        !stderr.contains("999999"),
        "the wrong PIN appears in hsmd's stderr"
    );
    // The refused try did not lock the token: the configured PIN still logs in.
    // (That exactly one C_Login was spent is asserted on the fault module, faults.rs.)
    let d = Daemon::start(&token, "");
    drop(d);
}

#[test]
fn unknown_slot_lists_every_slot_with_index_id_hex_label_serial() {
    let token = Token::new("first");
    let second = token.init_token("second");
    let toml = base_config(&token, "").replace(&format!("[{}]", token.slot), "[4242]");
    let stderr = fails_with(
        &token,
        &toml,
        &[],
        &[
            "slot 4242 (0x1092) does not exist",
            "index 0: ID",
            &format!("ID {} ({:#x})", token.slot, token.slot),
            "token \"first\"",
            &format!("ID {second}"),
            "token \"second\"",
            "serial \"",
        ],
    );
    assert!(
        stderr.lines().count() <= 3,
        "one sentence expected: {stderr}"
    );
}

#[test]
fn missing_library_names_the_path_and_what_to_install() {
    let token = Token::new("nolib");
    let toml = base_config(&token, "hsm_library = \"/nonexistent/libx.so\"");
    fails_with(
        &token,
        &toml,
        &[],
        &["/nonexistent/libx.so does not exist", "install SoftHSMv2"],
    );
    // The model names what to install, wherever its library was looked for
    // (an explicit path: the card's library may be installed on this machine).
    let toml = base_config(&token, "hsm_library = \"/nonexistent/libsc-hsm-pkcs11.so\"")
        .replace("hsm_model = \"softhsm2\"", "hsm_model = \"smartcardhsm\"");
    fails_with(
        &token,
        &toml,
        &[],
        &[
            "/nonexistent/libsc-hsm-pkcs11.so does not exist",
            "sc-hsm-embedded",
        ],
    );
}

#[test]
fn library_that_is_a_directory_gets_its_own_sentence() {
    let token = Token::new("libdir");
    let dir = token.path("lib");
    std::fs::create_dir(&dir).expect("dir");
    let toml = base_config(&token, &format!("hsm_library = \"{}\"", dir.display()));
    let stderr = fails_with(
        &token,
        &toml,
        &[],
        &[
            &format!("{} is a directory", dir.display()),
            "module file itself",
        ],
    );
    assert!(!stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn configuration_mistakes_are_one_sentence_each() {
    let token = Token::new("cfg");
    let base = base_config(&token, "");
    fails_with(
        &token,
        &base.replace("softhsm2", "yubihsm"),
        &[],
        &[
            "unknown variant `yubihsm`",
            "smartcardhsm",
            "softhsm2",
            "other",
        ],
    );
    fails_with(
        &token,
        &format!("{base}\nhsm_colour = 1\n"),
        &[],
        &["unknown field `hsm_colour`"],
    );
    fails_with(
        &token,
        &base.replace(&format!("[\"{PIN}\"]"), &format!("[\"{PIN}\", \"1\"]")),
        &[],
        &["hsm_slot has 1 entry but hsm_password has 2 entries"],
    );
    fails_with(
        &token,
        &base.replace("hsm_admin = \"root\"", "hsm_admin = []"),
        &[],
        &["hsm_admin is an empty list"],
    );
    fails_with(
        &token,
        &base,
        &["--hsm-model", "nope"],
        &["invalid value 'nope'", "smartcardhsm"],
    );
    // Flags pair slots and passwords in order: one slot, two passwords.
    let no_slots = base
        .replace(&format!("hsm_slot = [{}]\n", token.slot), "")
        .replace(&format!("hsm_password = [\"{PIN}\"]\n"), "");
    let slot = token.slot.to_string();
    fails_with(
        &token,
        &no_slots,
        &[
            "--hsm-slot",
            &slot,
            "--hsm-password",
            PIN,
            "--hsm-password",
            PIN,
        ],
        &["hsm_slot has 1 entry but hsm_password has 2 entries (from --hsm-password)"],
    );
}

#[test]
fn flags_and_credentials_configure_a_working_daemon() {
    // The seed's flag form, PIN from a systemd credential directory.
    let token = Token::new("flags");
    let creds = token.path("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("hsm_password"), format!("{PIN}\n")).unwrap();
    // The user the token store belongs to (`--check` as root checks the
    // store for it; the default user "hsmd" may or may not exist here).
    let toml = format!(
        "socket_path = \"{}\"\nuser = \"{1}\"\ngroup = \"{1}\"\n",
        token.path("hsmd.sock").display(),
        hsmd_e2e::DAEMON_USER
    );
    std::fs::write(token.path("flags.toml"), toml).unwrap();
    let mut child = std::process::Command::new(hsmd_e2e::bin("hsmd"))
        .args([
            "--config",
            &token.path("flags.toml").display().to_string(),
            "--hsm-model",
            "softhsm2",
            "--hsm-admin",
            "root",
            "--hsm-slot",
            &token.slot.to_string(),
            "--check",
        ])
        .env("SOFTHSM2_CONF", &token.conf)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("PINs from the systemd credential hsm_password"),
        "{err}"
    );
    assert!(!err.contains(PIN), "{err}");
}

#[test]
fn hsmctl_without_hsmd_says_how_to_point_it_at_another_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("no-hsmd.sock");
    let out = hsmd_e2e::hsmctl(&socket, None, &["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for needle in [
        &format!("cannot connect to hsmd at {}", socket.display()),
        "is hsmd running?",
        "--socket PATH",
        "HSMD_SOCKET=PATH",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing: {stderr}");
    }
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
}

/// A SoftHSMv2 token store that the user hsmd drops to cannot write stops
/// hsmd (and `hsmd --check`) with one sentence naming the file, its owner,
/// the user and the chown that fixes it; before, hsmd started, `status` said
/// ready and every create failed with CKR_GENERAL_ERROR.
#[test]
fn token_store_not_owned_by_the_daemon_user_is_named_at_start_up() {
    let token = Token::new("store");
    let tokens = token.path("tokens");
    let out = std::process::Command::new("chown")
        .arg("-R")
        .arg("root:root")
        .arg(&tokens)
        .output()
        .expect("chown");
    assert!(out.status.success(), "{out:?}");
    let toml = base_config(&token, "");
    for args in [&[][..], &["--check"][..]] {
        let stderr = fails_with(
            &token,
            &toml,
            args,
            &[
                &format!("the SoftHSMv2 token store {}", tokens.display()),
                "is not readable and writable by hsmd's user hsmd-e2e-daemon",
                "belongs to root:root",
                &format!("chown -R hsmd-e2e-daemon: {}", tokens.display()),
            ],
        );
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("hsmd: cannot start: the SoftHSMv2 token store")
                && stderr.matches("token store").count() == 1,
            "{args:?}: one sentence expected: {stderr}"
        );
    }
    // Given back, both are fine.
    let out = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{0}:{0}", hsmd_e2e::DAEMON_USER))
        .arg(&tokens)
        .output()
        .expect("chown");
    assert!(out.status.success(), "{out:?}");
    let (status, stderr) = run_hsmd_to_exit(&token, &toml, &["--check"]);
    assert!(status.success(), "{stderr}");
    drop(Daemon::start(&token, ""));
}
