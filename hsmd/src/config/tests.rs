//! Unit tests of the configuration: file, flags, PIN sources, and their merge
//! into [`Config`]. Every error test checks that the message names the key and
//! what is accepted.

use super::cli::Cli;
use super::file::{FileConfig, OneOrMany};
use super::{parse_file, Admins, ClientRule, Config, ConfigError, Model, SlotRef};
use crate::pin::sources::{PinSource, PinSources};
use crate::pin::SlotPin;
use clap::Parser;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PATH: &str = "/etc/hsmd/hsmd.toml";

/// The seed's TOML example, with its example values filled in.
const SEED_TOML: &str = r#"
hsm_model = "smartcardhsm"
hsm_admin = "kmsadmin"
hsm_slot = [0, 4]
hsm_password = ["648219", "648219"]
"#;

fn cli(args: &[&str]) -> Cli {
    try_cli(args).unwrap_or_else(|e| panic!("flags {args:?} refused: {e}"))
}

fn try_cli(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("hsmd").chain(args.iter().copied()))
}

fn cli_err(args: &[&str]) -> String {
    match try_cli(args) {
        Ok(c) => panic!("flags {args:?} accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn no_flags() -> Cli {
    cli(&[])
}

fn file(text: &str) -> FileConfig {
    parse_file(Path::new(PATH), text).unwrap_or_else(|e| panic!("file refused: {e}\n{text}"))
}

fn file_err(text: &str) -> String {
    match parse_file(Path::new(PATH), text) {
        Ok(f) => panic!("file accepted: {f:?}\n{text}"),
        Err(e) => {
            assert!(
                matches!(e, ConfigError::Parse { .. }),
                "not a parse error: {e:?}"
            );
            let msg = e.to_string();
            assert!(msg.contains(PATH), "message does not name the file: {msg}");
            msg
        }
    }
}

fn resolve(cli: Cli, file: FileConfig) -> Result<Config, ConfigError> {
    Config::resolve(cli, file, PinSources::default())
}

fn ok(r: Result<Config, ConfigError>) -> Config {
    r.unwrap_or_else(|e| panic!("configuration refused: {e}"))
}

fn err(r: Result<Config, ConfigError>) -> String {
    match r {
        Ok(c) => panic!("configuration accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// A minimal valid file plus `extra` keys.
fn with_slot(extra: &str) -> FileConfig {
    file(&format!(
        "hsm_slot = [0]\nhsm_password = [\"1234\"]\n{extra}"
    ))
}

fn ids(c: &Config) -> Vec<u64> {
    c.slots
        .iter()
        .filter_map(|s| match s.slot {
            SlotRef::Id(id) => Some(id),
            _ => None,
        })
        .collect()
}

/// The slot PINs as text: "<null>", "<no-login>" or the PIN.
fn pins(c: &Config) -> Vec<String> {
    c.slots.iter().map(|s| pin_text(&s.pin)).collect()
}

fn pin_text(p: &SlotPin) -> String {
    match p {
        SlotPin::NoLogin => "<no-login>".into(),
        SlotPin::Null => "<null>".into(),
        SlotPin::Pin(s) => s.expose_secret().to_owned(),
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message lacks {p:?}: {msg}");
    }
}

// ---------------------------------------------------------------- models

#[test]
fn seed_toml_example_parses_and_resolves() {
    let f = file(SEED_TOML);
    assert_eq!(f.hsm_model, Some(Model::Smartcardhsm));
    assert_eq!(f.hsm_admin, Some(OneOrMany::One("kmsadmin".into())));
    assert_eq!(f.hsm_slot, Some(vec![0, 4]));
    assert_eq!(f.hsm_password.as_ref().map(Vec::len), Some(2));

    let c = ok(resolve(no_flags(), f));
    assert_eq!(c.model, Model::Smartcardhsm);
    assert_eq!(
        c.library,
        PathBuf::from("/usr/local/lib/libsc-hsm-pkcs11.so")
    );
    assert_eq!(c.sessions_per_slot, 1);
    assert_eq!(c.admins.names, vec!["kmsadmin".to_owned()]);
    assert_eq!(ids(&c), vec![0, 4]);
    assert_eq!(pins(&c), vec!["648219", "648219"]);
    assert_eq!(c.pin_source, PinSource::File);
}

#[test]
fn seed_toml_with_trailing_commas_parses() {
    // The seed writes its arrays with trailing commas.
    let c = ok(resolve(
        no_flags(),
        file(
            "hsm_model = \"smartcardhsm\"\nhsm_slot = [0, 4, ]\nhsm_password = [\"a\", \"b\", ]\n",
        ),
    ));
    assert_eq!(ids(&c), vec![0, 4]);
    assert_eq!(pins(&c), vec!["a", "b"]);
    // The seed's literal placeholder `[0, 0, ]` parses too (and is refused
    // later as a duplicate slot, see `duplicate_slot_is_an_error`).
    assert_eq!(
        file("hsm_slot = [0, 0, ]\nhsm_password = [\"x\", \"y\", ]").hsm_slot,
        Some(vec![0, 0])
    );
}

#[test]
fn model_defaults_to_smartcardhsm() {
    let c = ok(resolve(no_flags(), with_slot("")));
    assert_eq!(c.model, Model::Smartcardhsm);
    assert_eq!(
        c.library,
        PathBuf::from("/usr/local/lib/libsc-hsm-pkcs11.so")
    );
    assert_eq!(c.sessions_per_slot, 1);
}

#[test]
fn softhsm2_default_library_and_sessions() {
    let c = ok(resolve(no_flags(), with_slot("hsm_model = \"softhsm2\"")));
    assert_eq!(c.model, Model::Softhsm2);
    assert_eq!(c.library, PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"));
    assert_eq!(c.sessions_per_slot, 4);
}

#[test]
fn hsm_library_overrides_default_for_every_model() {
    for model in ["smartcardhsm", "softhsm2", "other"] {
        let c = ok(resolve(
            no_flags(),
            with_slot(&format!(
                "hsm_model = \"{model}\"\nhsm_library = \"/opt/x/libp11.so\""
            )),
        ));
        assert_eq!(c.library, PathBuf::from("/opt/x/libp11.so"), "{model}");
        assert_eq!(c.model.as_str(), model);
    }
    // --hsm-library overrides the file's hsm_library and the default.
    let c = ok(resolve(
        cli(&["--hsm-library", "/flag/lib.so"]),
        with_slot("hsm_library = \"/file/lib.so\""),
    ));
    assert_eq!(c.library, PathBuf::from("/flag/lib.so"));
    let c = ok(resolve(
        cli(&["--hsm-model", "other", "--hsm-library", "/flag/lib.so"]),
        with_slot(""),
    ));
    assert_eq!(c.model, Model::Other);
    assert_eq!(c.library, PathBuf::from("/flag/lib.so"));
    assert_eq!(c.sessions_per_slot, 4);
}

#[test]
fn other_without_library_is_an_error_naming_hsm_library() {
    let msg = err(resolve(no_flags(), with_slot("hsm_model = \"other\"")));
    assert_contains(&msg, &["hsm_library", "other", "--hsm-library"]);
    let msg = err(resolve(cli(&["--hsm-model", "other"]), with_slot("")));
    assert_contains(&msg, &["hsm_library"]);
}

#[test]
fn unknown_model_in_file_lists_accepted_models() {
    let msg = file_err("hsm_model = \"nitrokey\"\n");
    assert_contains(
        &msg,
        &["hsm_model", "nitrokey", "smartcardhsm", "softhsm2", "other"],
    );
}

#[test]
fn unknown_model_in_flags_lists_accepted_models() {
    let msg = cli_err(&["--hsm-model", "nitrokey"]);
    assert_contains(
        &msg,
        &[
            "--hsm-model",
            "nitrokey",
            "smartcardhsm",
            "softhsm2",
            "other",
        ],
    );
}

#[test]
fn every_model_name_is_accepted_by_file_and_flags() {
    for (name, model) in [
        ("smartcardhsm", Model::Smartcardhsm),
        ("softhsm2", Model::Softhsm2),
        ("other", Model::Other),
    ] {
        assert_eq!(model.as_str(), name);
        assert_eq!(
            file(&format!("hsm_model = \"{name}\"")).hsm_model,
            Some(model)
        );
        assert_eq!(cli(&["--hsm-model", name]).hsm_model, Some(model));
    }
}

// ---------------------------------------------------------------- flags

#[test]
fn seed_cli_form_pairs_slots_and_passwords_in_order() {
    let c = ok(resolve(
        cli(&[
            "--hsm-model",
            "smartcardhsm",
            "--hsm-admin",
            "bob",
            "--hsm-slot",
            "0",
            "--hsm-password",
            "1234",
            "--hsm-slot",
            "4",
            "--hsm-password",
            "5678",
        ]),
        FileConfig::default(),
    ));
    assert_eq!(c.model, Model::Smartcardhsm);
    assert_eq!(
        c.library,
        PathBuf::from("/usr/local/lib/libsc-hsm-pkcs11.so")
    );
    assert_eq!(c.admins.names, vec!["bob".to_owned()]);
    assert_eq!(ids(&c), vec![0, 4]);
    assert_eq!(pins(&c), vec!["1234", "5678"]);
    assert_eq!(c.pin_source, PinSource::Flags);
    assert_eq!(c.sessions_per_slot, 1);
}

#[test]
fn flags_override_file_keys() {
    let f = file(
        r#"
hsm_model = "softhsm2"
hsm_library = "/file/lib.so"
hsm_admin = ["filea", "fileb"]
hsm_slot = [1, 2]
hsm_password = ["1111", "2222"]
socket_path = "/file/sock"
socket_group = "filegroup"
socket_mode = "0600"
clients = ["fileuser"]
frontends = ["filefront"]
sessions_per_slot = 8
max_frame_len = 2048
max_in_flight = 3
"#,
    );
    let c = ok(resolve(
        cli(&[
            "--hsm-model",
            "smartcardhsm",
            "--hsm-library",
            "/flag/lib.so",
            "--hsm-admin",
            "flaga",
            "--hsm-slot",
            "7",
            "--hsm-password",
            "7777",
            "--socket-path",
            "/flag/sock",
            "--socket-group",
            "flaggroup",
            "--socket-mode",
            "0666",
            "--client",
            "@flaggrp",
            "--frontend",
            "kms",
            "--sessions-per-slot",
            "2",
            "--max-frame-len",
            "4096",
            "--max-in-flight",
            "9",
        ]),
        f,
    ));
    assert_eq!(c.model, Model::Smartcardhsm);
    assert_eq!(c.library, PathBuf::from("/flag/lib.so"));
    assert_eq!(c.admins.names, vec!["flaga".to_owned()]);
    assert_eq!(ids(&c), vec![7]);
    assert_eq!(pins(&c), vec!["7777"]);
    assert_eq!(c.pin_source, PinSource::Flags);
    assert_eq!(c.socket.path, PathBuf::from("/flag/sock"));
    assert_eq!(c.socket.group.as_deref(), Some("flaggroup"));
    assert_eq!(c.socket.mode, 0o666);
    assert_eq!(c.clients, vec![ClientRule::Group("flaggrp".into())]);
    assert_eq!(c.frontends, vec!["kms".to_owned()]);
    assert_eq!(c.sessions_per_slot, 2);
    assert_eq!(c.max_frame_len, 4096);
    assert_eq!(c.max_in_flight, 9);
}

#[test]
fn file_keys_apply_when_flags_are_absent() {
    let c = ok(resolve(
        no_flags(),
        file(
            r#"
hsm_model = "softhsm2"
hsm_slot = [3]
hsm_password = ["3333"]
socket_path = "/file/sock"
socket_group = "hsm"
socket_mode = "0600"
clients = ["alice"]
frontends = ["kms"]
sessions_per_slot = 8
max_frame_len = 2048
max_in_flight = 3
handshake_timeout_secs = 30
queue_depth = 10
"#,
        ),
    ));
    assert_eq!(c.socket.path, PathBuf::from("/file/sock"));
    assert_eq!(c.socket.group.as_deref(), Some("hsm"));
    assert_eq!(c.socket.mode, 0o600);
    assert_eq!(c.clients, vec![ClientRule::User("alice".into())]);
    assert_eq!(c.frontends, vec!["kms".to_owned()]);
    assert_eq!(c.sessions_per_slot, 8);
    assert_eq!(c.max_frame_len, 2048);
    assert_eq!(c.max_in_flight, 3);
    assert_eq!(c.handshake_timeout, Duration::from_secs(30));
    assert_eq!(c.queue_depth, 10);
}

#[test]
fn flag_slot_must_be_a_number() {
    let msg = cli_err(&["--hsm-slot", "zero"]);
    assert_contains(&msg, &["--hsm-slot", "zero"]);
    // clap takes "-1" for a flag, so the message is about an unexpected
    // argument; it is still refused.
    let msg = cli_err(&["--hsm-slot", "-1"]);
    assert_contains(&msg, &["-1"]);
    let msg = cli_err(&["--hsm-slot=-1"]);
    assert_contains(&msg, &["--hsm-slot", "-1"]);
}

#[test]
fn unknown_flag_is_refused() {
    let msg = cli_err(&["--hsm-slots", "0"]);
    assert_contains(&msg, &["--hsm-slots"]);
}

// ---------------------------------------------------------------- hsm_admin

#[test]
fn hsm_admin_one_string_or_a_list() {
    assert_eq!(
        file("hsm_admin = \"alice\"").hsm_admin,
        Some(OneOrMany::One("alice".into()))
    );
    let c = ok(resolve(no_flags(), with_slot("hsm_admin = \"alice\"")));
    assert_eq!(c.admins.names, vec!["alice".to_owned()]);

    let c = ok(resolve(
        no_flags(),
        with_slot("hsm_admin = [\"alice\", \"bob\"]"),
    ));
    assert_eq!(c.admins.names, vec!["alice".to_owned(), "bob".to_owned()]);
    assert!(c.admins.contains("alice"));
    assert!(c.admins.contains("bob"));
    assert!(!c.admins.contains("carol"));
    assert!(!c.admins.contains(""));
    assert!(!c.admins.contains("Alice"));

    let c = ok(resolve(
        cli(&["--hsm-admin", "x", "--hsm-admin", "y"]),
        with_slot("hsm_admin = \"alice\""),
    ));
    assert_eq!(c.admins.names, vec!["x".to_owned(), "y".to_owned()]);
    assert!(!c.admins.contains("alice"));
}

#[test]
fn hsm_admin_defaults_to_admin() {
    let c = ok(resolve(no_flags(), with_slot("")));
    assert_eq!(c.admins.names, vec!["admin".to_owned()]);
    assert!(c.admins.contains("admin"));
    assert!(!c.admins.contains("root"));
}

#[test]
fn hsm_admin_star_means_everyone() {
    let c = ok(resolve(no_flags(), with_slot("hsm_admin = \"*\"")));
    for who in ["admin", "alice", "bob@example.com", "kms"] {
        assert!(c.admins.contains(who), "{who}");
    }
    let a = Admins {
        names: vec!["alice".into(), "*".into()],
    };
    assert!(a.contains("zed"));
    let c = ok(resolve(cli(&["--hsm-admin", "*"]), with_slot("")));
    assert!(c.admins.contains("anyone"));
}

#[test]
fn hsm_admin_empty_list_is_an_error() {
    let msg = err(resolve(no_flags(), with_slot("hsm_admin = []")));
    assert_contains(&msg, &["hsm_admin", "empty", "\"*\"", "admin"]);
}

#[test]
fn hsm_admin_empty_name_is_an_error() {
    for text in ["hsm_admin = \"\"", "hsm_admin = [\"alice\", \" \"]"] {
        let msg = err(resolve(no_flags(), with_slot(text)));
        assert_contains(&msg, &["hsm_admin", "empty name", "\"*\""]);
    }
    let msg = err(resolve(cli(&["--hsm-admin", ""]), with_slot("")));
    assert_contains(&msg, &["hsm_admin"]);
}

#[test]
fn hsm_admin_wrong_type_names_what_is_accepted() {
    let msg = file_err("hsm_admin = 5\n");
    assert_contains(&msg, &["hsm_admin"]);
    assert!(!msg.contains("OneOrMany"), "{msg}");
    assert!(msg.contains("string") || msg.contains("name"), "{msg}");
}

// ---------------------------------------------------------------- file keys

#[test]
fn unknown_key_is_an_error_naming_it() {
    let msg = file_err("hsm_slots = [0]\n");
    assert_contains(&msg, &["hsm_slots", "unknown", "hsm_slot"]);
    let msg = file_err("socket_mode = \"0660\"\nsocketgroup = \"hsm\"\n");
    assert_contains(&msg, &["socketgroup", "socket_group"]);
}

#[test]
fn wrong_types_are_errors() {
    let msg = file_err("hsm_slot = \"0\"\n");
    assert_contains(&msg, &["hsm_slot", "invalid type", "string", "sequence"]);
    let msg = file_err("hsm_slot = [\"0\"]\n");
    assert_contains(&msg, &["hsm_slot", "invalid type", "u64"]);
    let msg = file_err("hsm_slot = [-1]\n");
    assert_contains(&msg, &["hsm_slot", "-1", "u64"]);
    let msg = file_err("hsm_model = 1\n");
    assert_contains(&msg, &["hsm_model"]);
    let msg = file_err("sessions_per_slot = \"4\"\n");
    assert_contains(&msg, &["sessions_per_slot", "invalid type"]);
    let msg = file_err("socket_mode = 432\n");
    assert_contains(&msg, &["socket_mode", "invalid type", "string"]);
    let msg = file_err("clients = \"alice\"\n");
    assert_contains(&msg, &["clients", "invalid type", "sequence"]);
}

#[test]
fn wrong_type_in_multiline_array_names_the_key() {
    let msg = file_err("hsm_slot = [\n  0,\n  \"4\",\n]\n");
    assert_contains(&msg, &["hsm_slot"]);
}

#[test]
fn unquoted_octal_socket_mode_says_what_is_accepted() {
    let msg = file_err("socket_mode = 0660\n");
    assert_contains(&msg, &["socket_mode"]);
    assert!(msg.contains("string") || msg.contains("\"0660\""), "{msg}");
}

#[test]
fn invalid_toml_is_an_error() {
    let msg = file_err("hsm_slot = [0\n");
    assert_contains(&msg, &["line 1"]);
    let msg = file_err("hsm_model = \"softhsm2\"\nhsm_model = \"other\"\n");
    assert_contains(&msg, &["hsm_model"]);
}

#[test]
fn empty_file_is_all_defaults() {
    let f = file("");
    assert!(f.hsm_model.is_none() && f.hsm_slot.is_none() && f.hsm_password.is_none());
}

// ---------------------------------------------------------------- slots and PINs

#[test]
fn mismatched_counts_name_both_counts() {
    let msg = err(resolve(
        no_flags(),
        file("hsm_slot = [0, 4, 5]\nhsm_password = [\"1\", \"2\"]"),
    ));
    assert_contains(&msg, &["hsm_slot", "hsm_password", "3", "2"]);

    let msg = err(resolve(
        cli(&[
            "--hsm-slot",
            "0",
            "--hsm-password",
            "1",
            "--hsm-password",
            "2",
        ]),
        FileConfig::default(),
    ));
    assert_contains(
        &msg,
        &["hsm_slot has 1", "hsm_password has 2", "--hsm-password"],
    );
}

#[test]
fn slots_without_any_password_is_an_error() {
    let msg = err(resolve(no_flags(), file("hsm_slot = [0]")));
    assert_contains(&msg, &["hsm_slot has 1", "hsm_password has 0"]);
}

#[test]
fn no_slot_is_an_error() {
    for f in [
        FileConfig::default(),
        file("hsm_slot = []\nhsm_password = []"),
        file("hsm_password = [\"1234\"]"),
    ] {
        let msg = err(resolve(no_flags(), f));
        assert_contains(&msg, &["no slot", "hsm_slot", "hsm_password", "--hsm-slot"]);
    }
}

#[test]
fn duplicate_slot_is_an_error() {
    // The seed's literal placeholder `hsm_slot = [0, 0, ]`.
    let msg = err(resolve(
        no_flags(),
        file("hsm_slot = [0, 0, ]\nhsm_password = [\"a\", \"b\", ]"),
    ));
    assert_contains(&msg, &["hsm_slot", "slot 0", "twice", "once"]);
    let msg = err(resolve(
        cli(&[
            "--hsm-slot",
            "4",
            "--hsm-password",
            "a",
            "--hsm-slot",
            "4",
            "--hsm-password",
            "b",
        ]),
        FileConfig::default(),
    ));
    assert_contains(&msg, &["slot 4", "twice"]);
}

#[test]
fn password_values_map_to_slot_pins() {
    let c = ok(resolve(
        no_flags(),
        file("hsm_slot = [0, 1, 2, 3]\nhsm_password = [\"\", \"<NO_LOGIN>\", \"648219\", \"<no_login>\"]"),
    ));
    assert!(matches!(c.slots[0].pin, SlotPin::Null));
    assert!(matches!(c.slots[1].pin, SlotPin::NoLogin));
    assert!(matches!(&c.slots[2].pin, SlotPin::Pin(p) if p.expose_secret() == "648219"));
    // Only the exact spelling means no login.
    assert!(matches!(&c.slots[3].pin, SlotPin::Pin(p) if p.expose_secret() == "<no_login>"));

    let c = ok(resolve(
        cli(&[
            "--hsm-slot",
            "0",
            "--hsm-password",
            "",
            "--hsm-slot",
            "1",
            "--hsm-password",
            "<NO_LOGIN>",
        ]),
        FileConfig::default(),
    ));
    assert_eq!(pins(&c), vec!["<null>", "<no-login>"]);
}

#[test]
fn slot_ids_keep_configuration_order() {
    let c = ok(resolve(
        no_flags(),
        file("hsm_slot = [1880000001, 0, 7]\nhsm_password = [\"a\", \"b\", \"c\"]"),
    ));
    assert_eq!(ids(&c), vec![1_880_000_001, 0, 7]);
    assert_eq!(pins(&c), vec!["a", "b", "c"]);
}

// ---------------------------------------------------------------- PIN sources

fn cred_dir(content: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(text) = content {
        std::fs::write(dir.path().join("hsm_password"), text).unwrap();
    }
    dir
}

fn two_slots_file_pins() -> FileConfig {
    file("hsm_slot = [0, 4]\nhsm_password = [\"file0\", \"file4\"]")
}

#[test]
fn flags_beat_env_credential_and_file() {
    let dir = cred_dir(Some("cred0\ncred4\n"));
    let c = ok(Config::resolve(
        cli(&["--hsm-password", "flag0", "--hsm-password", "flag4"]),
        two_slots_file_pins(),
        PinSources {
            env: Some(secret("env0,env4")),
            credentials_dir: Some(dir.path().to_owned()),
        },
    ));
    assert_eq!(c.pin_source, PinSource::Flags);
    assert_eq!(pins(&c), vec!["flag0", "flag4"]);
}

#[test]
fn env_beats_credential_and_file() {
    let dir = cred_dir(Some("cred0\ncred4\n"));
    let c = ok(Config::resolve(
        no_flags(),
        two_slots_file_pins(),
        PinSources {
            env: Some(secret("env0,env4")),
            credentials_dir: Some(dir.path().to_owned()),
        },
    ));
    assert_eq!(c.pin_source, PinSource::Environment);
    assert_eq!(pins(&c), vec!["env0", "env4"]);
}

#[test]
fn env_is_comma_separated_with_null_and_no_login() {
    let c = ok(Config::resolve(
        no_flags(),
        file("hsm_slot = [0, 1, 2]"),
        PinSources {
            env: Some(secret("1234,,<NO_LOGIN>")),
            credentials_dir: None,
        },
    ));
    assert_eq!(c.pin_source, PinSource::Environment);
    assert_eq!(pins(&c), vec!["1234", "<null>", "<no-login>"]);
}

#[test]
fn env_count_mismatch_names_counts_and_source() {
    let msg = err(Config::resolve(
        no_flags(),
        two_slots_file_pins(),
        PinSources {
            env: Some(secret("1,2,3")),
            credentials_dir: None,
        },
    ));
    assert_contains(
        &msg,
        &["hsm_slot has 2", "hsm_password has 3", "HSMD_HSM_PASSWORD"],
    );
    assert!(!msg.contains("file0"), "{msg}");
}

#[test]
fn credential_beats_file() {
    let dir = cred_dir(Some("cred0\ncred4\n"));
    let c = ok(Config::resolve(
        no_flags(),
        two_slots_file_pins(),
        PinSources {
            env: None,
            credentials_dir: Some(dir.path().to_owned()),
        },
    ));
    assert_eq!(c.pin_source, PinSource::Credential);
    assert_eq!(pins(&c), vec!["cred0", "cred4"]);
}

#[test]
fn credential_lines_trailing_newline_optional_empty_line_is_null() {
    for (text, want) in [
        ("a\nb", vec!["a", "b"]),
        ("a\nb\n", vec!["a", "b"]),
        ("a\r\nb\r\n", vec!["a", "b"]),
        ("\nb\n", vec!["<null>", "b"]),
        ("a\n\n", vec!["a", "<null>"]),
        ("<NO_LOGIN>\n\n", vec!["<no-login>", "<null>"]),
    ] {
        let dir = cred_dir(Some(text));
        let c = ok(Config::resolve(
            no_flags(),
            file("hsm_slot = [0, 4]"),
            PinSources {
                env: None,
                credentials_dir: Some(dir.path().to_owned()),
            },
        ));
        assert_eq!(c.pin_source, PinSource::Credential, "{text:?}");
        assert_eq!(pins(&c), want, "{text:?}");
    }
}

#[test]
fn credential_count_mismatch_names_counts_and_source() {
    let dir = cred_dir(Some("only\n"));
    let msg = err(Config::resolve(
        no_flags(),
        two_slots_file_pins(),
        PinSources {
            env: None,
            credentials_dir: Some(dir.path().to_owned()),
        },
    ));
    assert_contains(
        &msg,
        &["hsm_slot has 2", "hsm_password has 1", "credential"],
    );
    assert!(!msg.contains("only"), "{msg}");
}

#[test]
fn missing_credential_falls_through_to_file() {
    let dir = cred_dir(None);
    let c = ok(Config::resolve(
        no_flags(),
        two_slots_file_pins(),
        PinSources {
            env: None,
            credentials_dir: Some(dir.path().to_owned()),
        },
    ));
    assert_eq!(c.pin_source, PinSource::File);
    assert_eq!(pins(&c), vec!["file0", "file4"]);

    // A credentials directory that does not exist either.
    let c = ok(Config::resolve(
        no_flags(),
        two_slots_file_pins(),
        PinSources {
            env: None,
            credentials_dir: Some(dir.path().join("nonexistent")),
        },
    ));
    assert_eq!(c.pin_source, PinSource::File);
}

#[test]
fn missing_credential_without_file_pins_is_source_none() {
    let dir = cred_dir(None);
    let msg = err(Config::resolve(
        no_flags(),
        file("hsm_slot = [0]"),
        PinSources {
            env: None,
            credentials_dir: Some(dir.path().to_owned()),
        },
    ));
    assert_contains(&msg, &["hsm_password has 0", "no source"]);
}

#[test]
fn unreadable_or_non_utf8_credential_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hsm_password"), b"\xff\xfe1234\n").unwrap();
    let msg = err(Config::resolve(
        no_flags(),
        two_slots_file_pins(),
        PinSources {
            env: None,
            credentials_dir: Some(dir.path().to_owned()),
        },
    ));
    assert_contains(&msg, &["credential", "hsm_password", "UTF-8"]);
    assert!(!msg.contains("1234"), "{msg}");

    // A directory where the file should be: not "missing", so not skipped.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("hsm_password")).unwrap();
    let msg = err(Config::resolve(
        no_flags(),
        two_slots_file_pins(),
        PinSources {
            env: None,
            credentials_dir: Some(dir.path().to_owned()),
        },
    ));
    assert_contains(&msg, &["cannot read the credential", "hsm_password"]);
}

#[test]
fn file_pins_when_nothing_else() {
    let c = ok(resolve(no_flags(), two_slots_file_pins()));
    assert_eq!(c.pin_source, PinSource::File);
    assert_eq!(pins(&c), vec!["file0", "file4"]);
}

#[test]
fn pin_source_display_names_the_source_without_pins() {
    assert_eq!(PinSource::Flags.to_string(), "--hsm-password");
    assert!(PinSource::Environment
        .to_string()
        .contains("HSMD_HSM_PASSWORD"));
    assert!(PinSource::Credential.to_string().contains("hsm_password"));
    assert!(PinSource::File.to_string().contains("configuration file"));
}

// ---------------------------------------------------------------- socket, peers, limits

#[test]
fn socket_mode_values() {
    for (text, mode) in [
        ("0660", 0o660),
        ("0666", 0o666),
        ("0600", 0o600),
        ("660", 0o660),
        ("0o640", 0o640),
        ("0777", 0o777),
    ] {
        let c = ok(resolve(
            no_flags(),
            with_slot(&format!("socket_mode = \"{text}\"")),
        ));
        assert_eq!(c.socket.mode, mode, "{text}");
    }
    for bad in ["999", "rw", "01777", "", "0o", "0x1b6", "-660", "u+rw"] {
        let msg = err(resolve(
            no_flags(),
            with_slot(&format!("socket_mode = \"{bad}\"")),
        ));
        assert_contains(&msg, &["socket_mode", bad, "octal", "0660", "0777"]);
    }
    let msg = err(resolve(cli(&["--socket-mode", "999"]), with_slot("")));
    assert_contains(&msg, &["socket_mode", "999", "octal"]);
}

#[test]
fn clients_users_and_groups() {
    let c = ok(resolve(
        no_flags(),
        with_slot("clients = [\"alice\", \"@grp\", \"kms-frontend\"]"),
    ));
    assert_eq!(
        c.clients,
        vec![
            ClientRule::User("alice".into()),
            ClientRule::Group("grp".into()),
            ClientRule::User("kms-frontend".into()),
        ]
    );
    let c = ok(resolve(
        cli(&["--client", "bob", "--client", "@wheel"]),
        with_slot(""),
    ));
    assert_eq!(
        c.clients,
        vec![
            ClientRule::User("bob".into()),
            ClientRule::Group("wheel".into())
        ]
    );
}

#[test]
fn bad_client_names_are_errors() {
    for bad in ["", "@", "a b", "a:b", "a,b", "@ grp"] {
        let msg = err(resolve(
            no_flags(),
            with_slot(&format!("clients = [{bad:?}]")),
        ));
        assert_contains(&msg, &["clients", "unix user name", "@group"]);
    }
}

#[test]
fn frontends_are_users_not_groups() {
    let c = ok(resolve(no_flags(), with_slot("frontends = [\"kms\"]")));
    assert_eq!(c.frontends, vec!["kms".to_owned()]);
    let msg = err(resolve(
        no_flags(),
        with_slot("frontends = [\"kms\", \"@kmsgrp\"]"),
    ));
    assert_contains(&msg, &["frontends", "@kmsgrp", "user names", "not groups"]);
    let msg = err(resolve(cli(&["--frontend", "@kmsgrp"]), with_slot("")));
    assert_contains(&msg, &["frontends", "@kmsgrp"]);
    let msg = err(resolve(no_flags(), with_slot("frontends = [\"k m s\"]")));
    assert_contains(&msg, &["frontends", "unix user name"]);
}

#[test]
fn sessions_per_slot_range() {
    let msg = err(resolve(no_flags(), with_slot("sessions_per_slot = 0")));
    assert_contains(&msg, &["sessions_per_slot", "0", "1 to 64"]);
    let msg = err(resolve(no_flags(), with_slot("sessions_per_slot = 65")));
    assert_contains(&msg, &["sessions_per_slot", "65", "1 to 64"]);
    let msg = err(resolve(cli(&["--sessions-per-slot", "0"]), with_slot("")));
    assert_contains(&msg, &["sessions_per_slot", "1 to 64"]);
    for n in [1, 64] {
        let c = ok(resolve(
            no_flags(),
            with_slot(&format!("sessions_per_slot = {n}")),
        ));
        assert_eq!(c.sessions_per_slot, n);
    }
}

#[test]
fn max_frame_len_range() {
    let msg = err(resolve(no_flags(), with_slot("max_frame_len = 10")));
    assert_contains(&msg, &["max_frame_len", "10", "1024 to 67108864"]);
    let msg = err(resolve(no_flags(), with_slot("max_frame_len = 67108865")));
    assert_contains(&msg, &["max_frame_len", "1024 to 67108864"]);
    let msg = err(resolve(cli(&["--max-frame-len", "10"]), with_slot("")));
    assert_contains(&msg, &["max_frame_len", "1024 to"]);
    for n in [1024, 64 * 1024 * 1024] {
        let c = ok(resolve(
            no_flags(),
            with_slot(&format!("max_frame_len = {n}")),
        ));
        assert_eq!(c.max_frame_len, n);
    }
}

#[test]
fn other_limits_ranges() {
    let msg = err(resolve(no_flags(), with_slot("max_in_flight = 0")));
    assert_contains(&msg, &["max_in_flight", "1 to 65536"]);
    let msg = err(resolve(no_flags(), with_slot("handshake_timeout_secs = 0")));
    assert_contains(&msg, &["handshake_timeout_secs", "1 to 300"]);
    let msg = err(resolve(
        no_flags(),
        with_slot("handshake_timeout_secs = 301"),
    ));
    assert_contains(&msg, &["handshake_timeout_secs", "301", "1 to 300"]);
    let msg = err(resolve(no_flags(), with_slot("queue_depth = 0")));
    assert_contains(&msg, &["queue_depth", "1 to 65536"]);
    let msg = file_err("max_in_flight = -1\n");
    assert_contains(&msg, &["max_in_flight"]);
}

#[test]
fn defaults() {
    let c = ok(resolve(no_flags(), with_slot("")));
    assert_eq!(c.socket.path, PathBuf::from("/run/hsmd/hsmd.sock"));
    assert_eq!(c.socket.group, None);
    assert_eq!(c.socket.mode, 0o660);
    assert!(c.clients.is_empty());
    assert!(c.frontends.is_empty());
    assert_eq!(c.max_in_flight, 64);
    assert_eq!(c.max_frame_len, 1_048_576);
    assert_eq!(c.max_frame_len, hsmd_protocol::DEFAULT_MAX_FRAME_LEN);
    assert_eq!(c.handshake_timeout, Duration::from_secs(5));
    assert_eq!(c.queue_depth, 256);
    assert_eq!(c.admins.names, vec!["admin".to_owned()]);
    assert_eq!(c.model, Model::Smartcardhsm);
}

// ---------------------------------------------------------------- secrets

#[test]
fn debug_of_config_never_shows_pins() {
    let c = ok(resolve(
        no_flags(),
        file("hsm_slot = [0, 4, 5]\nhsm_password = [\"648219\", \"\", \"<NO_LOGIN>\"]"),
    ));
    let text = format!("{c:?}");
    assert!(!text.contains("648219"), "{text}");
    assert!(text.contains("NoLogin"), "{text}");
    let pretty = format!("{c:#?}");
    assert!(!pretty.contains("648219"), "{pretty}");

    let c = ok(resolve(
        cli(&["--hsm-slot", "1", "--hsm-password", "975310"]),
        FileConfig::default(),
    ));
    assert!(!format!("{c:?}").contains("975310"));
}

#[test]
fn debug_of_slot_pin_never_shows_the_pin() {
    let p = SlotPin::Pin(secret("648219"));
    let text = format!("{p:?}");
    assert!(!text.contains("648219"), "{text}");
    assert!(!format!("{p:#?}").contains("648219"));
    assert_eq!(format!("{:?}", SlotPin::Null), "NullPin");
    assert_eq!(format!("{:?}", SlotPin::NoLogin), "NoLogin");
}

#[test]
fn debug_of_flags_and_file_never_shows_pins() {
    let c = cli(&["--hsm-slot", "0", "--hsm-password", "648219"]);
    assert!(!format!("{c:?}").contains("648219"));
    let f = file(SEED_TOML);
    assert!(!format!("{f:?}").contains("648219"));
}

#[test]
fn resolve_errors_never_show_pins() {
    let msg = err(resolve(
        no_flags(),
        file("hsm_slot = [0]\nhsm_password = [\"648219\", \"135790\"]"),
    ));
    assert!(!msg.contains("648219") && !msg.contains("135790"), "{msg}");
    let msg = err(Config::resolve(
        no_flags(),
        file("hsm_slot = [0]"),
        PinSources {
            env: Some(secret("648219,135790")),
            credentials_dir: None,
        },
    ));
    assert!(!msg.contains("648219") && !msg.contains("135790"), "{msg}");
}

#[test]
fn parse_errors_never_show_pins() {
    let mut leaks = Vec::new();
    for text in [
        "hsm_slot = [0]\nhsm_password = \"648219\"\n",
        "hsm_slot = [0]\nhsm_password = [648219]\n",
        "hsm_slot = [0]\nhsm_password = [\"648219\", 5]\n",
        "hsm_slot = [0]\nhsm_password = [\"648219]\n",
        "hsm_slot = [0]\nhsm_passwords = [\"648219\"]\n",
    ] {
        let msg = file_err(text);
        if msg.contains("648219") {
            leaks.push(msg);
        }
    }
    assert!(
        leaks.is_empty(),
        "PIN in error messages:\n{}",
        leaks.join("\n")
    );
}

#[test]
fn tokens_by_serial_or_label_pair_with_passwords() {
    let c = ok(resolve(
        no_flags(),
        file("hsm_token = [\"serial:DECC0100123\", \"label: payroll \"]\nhsm_password = [\"a\", \"b\"]\n"),
    ));
    let refs: Vec<&SlotRef> = c.slots.iter().map(|s| &s.slot).collect();
    assert_eq!(
        refs,
        vec![
            &SlotRef::Serial("DECC0100123".into()),
            &SlotRef::Label("payroll".into())
        ]
    );
    assert_eq!(pins(&c), vec!["a", "b"]);
    assert!(refs[0].matches_token("x", "DECC0100123     "));
    assert!(refs[1].matches_token("payroll                         ", "1"));
    assert!(!refs[1].matches_token("payroll2", "1"));
    let c = ok(resolve(
        cli(&["--hsm-token", "label:x", "--hsm-password", "p"]),
        file(""),
    ));
    assert_eq!(c.slots[0].slot, SlotRef::Label("x".into()));
}

#[test]
fn tokens_are_refused_when_malformed_doubled_unpaired_or_mixed_with_slots() {
    let msg = err(resolve(
        no_flags(),
        file("hsm_token = [\"DECC01\"]\nhsm_password = [\"a\"]\n"),
    ));
    assert_contains(&msg, &["hsm_token", "DECC01", "serial:", "label:"]);
    let msg = err(resolve(
        no_flags(),
        file("hsm_token = [\"label:a\", \"label:a\"]\nhsm_password = [\"a\", \"b\"]\n"),
    ));
    assert_contains(&msg, &["hsm_token", "twice"]);
    let msg = err(resolve(
        no_flags(),
        file("hsm_token = [\"label:a\"]\nhsm_password = [\"a\", \"b\"]\n"),
    ));
    assert_contains(&msg, &["hsm_token has 1", "hsm_password has 2"]);
    let msg = err(resolve(
        no_flags(),
        file("hsm_slot = [0]\nhsm_token = [\"label:a\"]\nhsm_password = [\"a\"]\n"),
    ));
    assert_contains(&msg, &["hsm_slot", "hsm_token", "one way"]);
}
