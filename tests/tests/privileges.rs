//! hsmd started as root sheds every privilege once the token is open, tells
//! systemd what it is doing (sd_notify), and audits refusals.

use hsmd_e2e::{base_config, bin, test_user, KillOnDrop, Token, DAEMON_USER, PIN};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `/proc/<pid>/task/<tid>/status` of every thread of `pid`.
fn thread_statuses(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path().join("status")).unwrap())
        .collect()
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

#[test]
fn root_start_drops_to_the_daemon_user_with_no_capabilities_and_no_pin_in_environ() {
    let token = Token::new("privdrop");
    let daemon = test_user(DAEMON_USER);
    // The PIN comes from a systemd credential file, not the config, env or argv.
    let creds = token.path("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("hsm_password"), format!("{PIN}\n")).unwrap();
    let config = token.path("hsmd.toml");
    std::fs::write(
        &config,
        base_config(&token, "").replace(&format!("hsm_password = [\"{PIN}\"]\n"), ""),
    )
    .unwrap();
    let mut child = KillOnDrop(
        Command::new(bin("hsmd"))
            .arg("--config")
            .arg(&config)
            .env("SOFTHSM2_CONF", &token.conf)
            .env("CREDENTIALS_DIRECTORY", &creds)
            .env_remove("HSMD_HSM_PASSWORD")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push(line.clone());
        if line.contains("listening") {
            break;
        }
    }
    assert!(
        log.iter().any(|l| l.contains("privileges dropped")),
        "{log:?}"
    );
    let pid = child.id();
    let statuses = thread_statuses(pid);
    assert!(
        statuses.len() > 2,
        "expected slot and runtime threads, got {}",
        statuses.len()
    );
    // The log thread (stderr is a pipe, not the journal) is among them: it
    // starts after the drop, and must hold no more than the others.
    assert!(
        statuses.iter().any(|st| field(st, "Name") == "hsmd-log"),
        "no hsmd-log thread: {statuses:?}"
    );
    let (uid, gid) = (daemon.uid.to_string(), daemon.gid.to_string());
    for st in &statuses {
        assert_eq!(
            field(st, "Uid").split_whitespace().collect::<Vec<_>>(),
            vec![uid.as_str(); 4],
            "{st}"
        );
        assert_eq!(
            field(st, "Gid").split_whitespace().collect::<Vec<_>>(),
            vec![gid.as_str(); 4],
            "{st}"
        );
        assert_eq!(field(st, "Groups"), "", "{st}");
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(field(st, cap), "0000000000000000", "{cap} in {st}");
        }
        assert_eq!(field(st, "NoNewPrivs"), "1", "{st}");
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    // Not dumpable: /proc/<pid> entries belong to root, not the daemon user.
    let meta = std::fs::metadata(format!("/proc/{pid}/environ")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        0,
        "process is dumpable"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    for (what, bytes) in [("environ", &environ), ("cmdline", &cmdline)] {
        assert!(
            !bytes.windows(PIN.len()).any(|w| w == PIN.as_bytes()),
            "PIN found in /proc/{pid}/{what}"
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    log.extend(lines.map_while(Result::ok));
    assert!(status.success(), "{log:?}");
    assert!(
        !log.iter().any(|l| l.contains(PIN)),
        "PIN in the log: {log:?}"
    );
    assert!(
        !token.path("hsmd.sock").exists(),
        "the dropped daemon could not remove its socket"
    );
}

/// The PIN given in HSMD_HSM_PASSWORD is gone from /proc/<pid>/environ
/// (the kernel's copy of the initial environment), not only from `environ`.
#[test]
fn pin_from_the_environment_is_gone_from_proc_environ() {
    let token = Token::new("envpin");
    let config = token.path("hsmd.toml");
    std::fs::write(
        &config,
        base_config(&token, "").replace(&format!("hsm_password = [\"{PIN}\"]\n"), ""),
    )
    .unwrap();
    let mut child = KillOnDrop(
        Command::new(bin("hsmd"))
            .arg("--config")
            .arg(&config)
            .env("SOFTHSM2_CONF", &token.conf)
            .env("HSMD_LOG", "info")
            .env("HSMD_HSM_PASSWORD", PIN)
            .env("HSMD_E2E_MARKER", "after-the-pin")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut log = Vec::new();
    for line in BufReader::new(child.0.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("listening");
        log.push(line);
        if done {
            break;
        }
    }
    assert!(
        log.iter()
            .any(|l| l.contains("PINs from the environment variable HSMD_HSM_PASSWORD")),
        "{log:?}"
    );
    let environ = std::fs::read(format!("/proc/{}/environ", child.0.id())).unwrap();
    assert!(
        !environ.windows(PIN.len()).any(|w| w == PIN.as_bytes()),
        "the PIN is still in /proc/<pid>/environ"
    );
    assert!(
        !environ.windows(17).any(|w| w == b"HSMD_HSM_PASSWORD"),
        "HSMD_HSM_PASSWORD is still in /proc/<pid>/environ"
    );
    // The rest of the environment is intact.
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|e| e == b"HSMD_E2E_MARKER=after-the-pin"),
        "other variables were damaged"
    );
}

#[test]
fn sd_notify_status_ready_watchdog_stopping() {
    let token = Token::new("notify");
    let notify_path = token.path("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    // hsmd sends from its dropped user.
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let config = token.path("hsmd.toml");
    std::fs::write(&config, base_config(&token, "")).unwrap();
    let mut child = KillOnDrop(
        // systemd sets WATCHDOG_PID to the service's pid: exec keeps the shell's.
        Command::new("sh")
            .arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" --config \"$1\"")
            .arg(bin("hsmd"))
            .arg(&config)
            .env("SOFTHSM2_CONF", &token.conf)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "200000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 4096];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("hsmd stopped notifying");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut seen = Vec::new();
    loop {
        let msg = recv();
        seen.push(msg.clone());
        if msg.contains("READY=1") {
            break;
        }
    }
    let statuses: Vec<&str> = seen
        .iter()
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("STATUS=")))
        .collect();
    let slot_line = format!("logging in to slot {}", token.slot);
    for want in [
        "reading the configuration",
        "loading the PKCS#11 library",
        slot_line.as_str(),
        "opening the socket",
    ] {
        assert!(statuses.contains(&want), "{want:?} not in {statuses:?}");
    }
    // READY=1 only once the socket accepts connections.
    std::os::unix::net::UnixStream::connect(token.path("hsmd.sock"))
        .expect("READY=1 before the socket listens");
    // Watchdog pings arrive at half of WATCHDOG_USEC while the slot answers.
    let mut pings = 0;
    while pings < 3 {
        if recv().contains("WATCHDOG=1") {
            pings += 1;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    while !recv().contains("STOPPING=1") {}
    assert!(child.wait().unwrap().success());
}

#[test]
fn refused_create_is_audited_with_acting_user_and_peer_uid() {
    let token = Token::new("audit");
    let carol = test_user("hsmd-e2e-carol");
    let mut d = hsmd_e2e::Daemon::start(&token, "clients = [\"hsmd-e2e-carol\"]\n");
    let slot = token.slot.to_string();
    let out = d.hsmctl(
        Some(&carol),
        &["create", "aes", "--slot", &slot, "--label", "nope"],
    );
    let stderr = hsmd_e2e::failed(&out);
    assert!(stderr.contains("forbidden"), "{stderr}");
    // hsmd's log thread may write the record after the answer went out:
    // stop hsmd (it writes every waiting line first) to have the whole log.
    d.stop();
    let log = d.log_text();
    let record = log
        .lines()
        .find(|l| l.contains("generate_key") && l.contains("forbidden"))
        .unwrap_or_else(|| panic!("no audit record of the refused create:\n{log}"));
    assert!(
        record.contains("acting_user=\"hsmd-e2e-carol\""),
        "{record}"
    );
    assert!(
        record.contains(&format!("peer_uid={}", carol.uid)),
        "{record}"
    );
    assert!(record.contains("peer_pid="), "{record}");
    assert!(record.contains("op=\"generate_key\""), "{record}");
    assert!(record.contains("result=\"forbidden\""), "{record}");
}
