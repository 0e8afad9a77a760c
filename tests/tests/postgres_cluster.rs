//! The throw-away PostgreSQL cluster of the harness (`hsmd_e2e::postgres`):
//! its own unprivileged server, the application role's URL with a password
//! (and TLS when asked), data kept across a stop and a crash on the same
//! port, and nothing left running after drop. Outside CI, without the
//! server binaries, each test prints one "skipped" line.

use hsmd_e2e::postgres::{or_skip, PgServer, Proc, APP_USER, DATABASE};

/// The real uid of a running process (`/proc/<pid>/status`).
fn uid_of(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap()
}

#[test]
fn a_cluster_of_its_own_serves_the_application_role_through_its_url() {
    let Some(pg) = or_skip("postgres_cluster", PgServer::start()) else {
        return;
    };
    let url = pg.url();
    assert_eq!(
        url,
        format!(
            "postgresql://kms:{}@127.0.0.1:{}/kms?sslmode=disable",
            pg.password(),
            pg.port()
        )
    );
    assert_eq!(pg.password().len(), 32);
    // The application role over TCP with its password: owner of its database.
    assert_eq!(
        pg.sql_url(&url, "SELECT current_user || ' ' || current_database()")
            .unwrap(),
        format!("{APP_USER} {DATABASE}")
    );
    pg.sql_url(&url, "CREATE TABLE t (k text PRIMARY KEY, v int)")
        .unwrap();
    pg.sql_url(&url, "INSERT INTO t VALUES ('a', 1), ('b', 2)")
        .unwrap();
    assert_eq!(pg.sql("SELECT k, v FROM t ORDER BY k").unwrap(), "a|1\nb|2");
    // Not a superuser; the password is checked (SCRAM), no TLS in this mode.
    assert_eq!(
        pg.sql(&format!(
            "SELECT rolsuper FROM pg_roles WHERE rolname = '{APP_USER}'"
        ))
        .unwrap(),
        "f"
    );
    let wrong = url.replace(pg.password(), "0123456789abcdef0123456789abcdef");
    let refused = pg.sql_url(&wrong, "SELECT 1").unwrap_err().to_string();
    assert!(
        refused.contains("password authentication failed for user \"kms\""),
        "{refused}"
    );
    assert_eq!(
        pg.sql("SELECT count(*) FROM pg_stat_ssl WHERE ssl")
            .unwrap(),
        "0"
    );
    // Runs as nobody when the test is root (initdb and postgres refuse root).
    let pid = pg.pid().unwrap();
    if nix::unistd::geteuid().is_root() {
        assert_eq!(uid_of(pid), 65534);
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(pg.data_dir()).unwrap()),
            65534
        );
    }
    // It listens on loopback only, on its own port.
    assert_eq!(pg.sql("SHOW listen_addresses").unwrap(), "127.0.0.1");
    assert_eq!(pg.sql("SHOW port").unwrap(), pg.port().to_string());
}

#[test]
fn data_survives_a_fast_stop_and_a_crash_on_the_same_port_and_drop_leaves_nothing() {
    let Some(mut pg) = or_skip("postgres_cluster", PgServer::start()) else {
        return;
    };
    let url = pg.url();
    let port = pg.port();
    pg.sql_url(&url, "CREATE TABLE t (n int)").unwrap();
    pg.sql_url(&url, "INSERT INTO t VALUES (1)").unwrap();

    let before = pg.processes();
    pg.stop().unwrap();
    let left: Vec<&Proc> = before.iter().filter(|p| p.runs()).collect();
    assert!(left.is_empty(), "outlived stop(): {left:?}");
    assert!(pg.pid().is_none());
    let down = pg.sql_url(&url, "SELECT 1").unwrap_err().to_string();
    assert!(down.contains("Connection refused"), "{down}");
    pg.stop().unwrap(); // stopping a stopped cluster is nothing

    pg.start_again().unwrap();
    assert_eq!(pg.port(), port);
    pg.sql_url(&url, "INSERT INTO t VALUES (2)").unwrap();

    // A crash: SIGKILL to the postmaster and every process it started;
    // the next start recovers committed rows from the write-ahead log.
    let before = pg.processes();
    assert!(before.len() >= 5, "{before:?}"); // postmaster, checkpointer, ...
    pg.kill();
    assert!(pg.pid().is_none());
    let left: Vec<&Proc> = before.iter().filter(|p| p.runs()).collect();
    assert!(left.is_empty(), "outlived kill(): {left:?}");
    pg.start_again().unwrap();
    assert!(
        pg.log_text().contains("database system was interrupted"),
        "{}",
        pg.log_text()
    );
    assert_eq!(pg.sql_url(&url, "SELECT sum(n) FROM t").unwrap(), "3");

    let before = pg.processes();
    assert!(before.len() >= 5, "{before:?}");
    let dir = pg.data_dir();
    drop(pg);
    let left: Vec<&Proc> = before.iter().filter(|p| p.runs()).collect();
    assert!(left.is_empty(), "outlived drop: {left:?}");
    assert!(!dir.exists(), "drop left {}", dir.display());
}

#[test]
fn with_tls_every_tcp_client_must_verify_the_clusters_certificate() {
    let Some(pg) = or_skip("postgres_cluster", PgServer::start_tls()) else {
        return;
    };
    let url = pg.url();
    assert_eq!(
        url,
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url_base(),
            pg.ca_pem().display()
        )
    );
    assert!(std::fs::read_to_string(pg.ca_pem())
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    // verify-full: the CA and the name 127.0.0.1 check out; the session is TLS.
    assert_eq!(
        pg.sql_url(
            &url,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        .unwrap(),
        "t"
    );
    // localhost is in the certificate too.
    let by_name = url.replace("127.0.0.1", "localhost");
    assert_eq!(pg.sql_url(&by_name, "SELECT 1").unwrap(), "1");
    // Without TLS: refused by pg_hba.conf.
    let plain = format!("{}?sslmode=disable", pg.url_base());
    let refused = pg.sql_url(&plain, "SELECT 1").unwrap_err().to_string();
    assert!(
        refused.contains("no encryption") || refused.contains("pg_hba.conf rejects"),
        "{refused}"
    );
    // Another CA: the client refuses the server.
    let Some(other) = or_skip("postgres_cluster", PgServer::start_tls()) else {
        return;
    };
    let wrong_ca = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url_base(),
        other.ca_pem().display()
    );
    let untrusted = pg.sql_url(&wrong_ca, "SELECT 1").unwrap_err().to_string();
    assert!(
        untrusted.contains("certificate verify failed"),
        "{untrusted}"
    );
}
