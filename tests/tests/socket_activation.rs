//! hsmd takes its listening socket from systemd socket activation
//! (`LISTEN_FDS`, sd_listen_fds(3)), here through `systemd-socket-activate`,
//! which passes the socket exactly as systemd's hsmd.socket would.

use hsmd_e2e::{base_config, bin, Token};
use hsmd_protocol::{Client, Status};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_an_inherited_socket_and_leaves_its_file_to_systemd() {
    let token = Token::new("activation");
    let socket = token.path("activated.sock");
    // socket_path points elsewhere: hsmd must use the passed socket, not bind its own.
    let config = token.path("hsmd.toml");
    std::fs::write(&config, base_config(&token, "")).unwrap();
    let mut activator = Command::new("systemd-socket-activate")
        .arg("--listen")
        .arg(&socket)
        .arg(format!("--setenv=SOFTHSM2_CONF={}", token.conf.display()))
        .arg(bin("hsmd"))
        .arg("--config")
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (package systemd)");
    let mut lines = BufReader::new(activator.stderr.take().unwrap()).lines();
    // "Listening on <path> as 3." comes before any connection can be made.
    let listening = lines.next().expect("activator output").unwrap();
    assert!(listening.contains("Listening on"), "{listening}");
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<String>>());

    // The first connection makes the activator exec hsmd with LISTEN_FDS=1.
    let client = Client::connect(&socket, "activation-test/1")
        .await
        .expect("connect through activation");
    let status = client.call(None, &Status {}).await.unwrap();
    assert_eq!(status.slots[0].slot, token.slot);
    assert!(
        !token.path("hsmd.sock").exists(),
        "hsmd bound socket_path instead of using the passed socket"
    );
    drop(client);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(activator.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = activator.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(status.success(), "{log:?}");
    assert!(
        log.iter().any(|l| l.contains("listening")
            && l.contains("inherited=true")
            && l.contains("activated.sock")),
        "{log:?}"
    );
    // The socket file belongs to systemd: hsmd leaves it in place.
    assert!(socket.exists());
}
