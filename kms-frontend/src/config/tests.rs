use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let file = parse_file(Path::new("/etc/kms-frontend/kms.toml"), text)?;
    merge(Args::default(), file)
}

#[test]
fn postgresql_takes_the_references_keys_and_hides_the_password() {
    let c = parse(
        "[db]\ndatabase_type = \"postgresql\"\ndatabase_url = \"postgresql://kms:s3cret@db:5432/kms\"\n",
    )
    .expect("postgresql");
    let Database::Postgres(url) = &c.database else {
        panic!("not postgresql: {:?}", c.database);
    };
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(url),
        "postgresql://kms:s3cret@db:5432/kms"
    );
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn defaults_are_the_reference_servers() {
    let c = parse("").expect("empty config");
    assert_eq!(c.port, 9998);
    assert_eq!(c.hostname, "127.0.0.1");
    assert_eq!(c.default_username, "admin");
    assert!(
        matches!(&c.database, Database::Sqlite(f) if f == &PathBuf::from("./sqlite-data/kms.db"))
    );
    assert_eq!(c.hsmd_socket, PathBuf::from("/run/hsmd/hsmd.sock"));
    assert!(c.clients_ca_cert_file.is_none() && c.jwt_providers.is_empty());
}

#[test]
fn hsm_keys_are_refused_naming_hsmd_config() {
    for key in [
        "hsm_password = [\"1234\"]",
        "hsm_slot = [0]",
        "hsm_model = \"smartcardhsm\"",
    ] {
        let err = parse(key).expect_err(key).to_string();
        let name = key.split(' ').next().unwrap_or_default();
        assert!(err.contains(&format!("`{name}`")), "{err}");
        assert!(err.contains("/etc/hsmd/hsmd.toml"), "{err}");
        assert!(!err.contains("1234"), "the PIN leaked: {err}");
    }
}

#[test]
fn sections_mirror_the_flags() {
    let c = parse(
        "default_username = \"ops\"\n[http]\nport = 9443\nhostname = \"127.0.0.1\"\n[db]\ndatabase_type = \"sqlite\"\nsqlite_path = \"/var/lib/kms/grants.db\"\n[idp_auth]\njwt_auth_provider = [\"https://idp/,/etc/jwks.json,kms\"]\n",
    )
    .expect("config");
    assert_eq!((c.port, c.hostname.as_str()), (9443, "127.0.0.1"));
    assert_eq!(c.default_username, "ops");
    assert!(
        matches!(&c.database, Database::Sqlite(f) if f == &PathBuf::from("/var/lib/kms/grants.db"))
    );
    assert_eq!(
        c.jwt_providers,
        vec![JwtProvider {
            issuer: "https://idp/".into(),
            jwks_uri: "/etc/jwks.json".into(),
            audience: Some("kms".into()),
        }]
    );
}

#[test]
fn mistakes_are_named() {
    let err = parse("prot = 1").expect_err("unknown key").to_string();
    assert!(err.contains("prot"), "{err}");
    let err = parse("[http]\nport = \"abc\"")
        .expect_err("type")
        .to_string();
    assert!(err.contains("line 2"), "{err}");
    let err = parse("[db]\ndatabase_type = \"postgresql\"")
        .expect_err("pg without url")
        .to_string();
    assert!(err.contains("needs database_url"), "{err}");
    let err = parse("[db]\ndatabase_type = \"mysql\"")
        .expect_err("mysql")
        .to_string();
    assert!(
        err.contains("\"mysql\" is not supported") && err.contains("postgresql"),
        "{err}"
    );
    let err = parse("[db]\ndatabase_url = \"postgresql://u:pw@h/d\"")
        .expect_err("url without type")
        .to_string();
    assert!(
        err.contains("database_type is \"sqlite\"") && !err.contains("pw"),
        "{err}"
    );
    let err = parse("[tls]\nclients_ca_cert_file = \"/ca.pem\"")
        .expect_err("no https")
        .to_string();
    assert!(err.contains("needs HTTPS"), "{err}");
    let err = parse("[idp_auth]\njwt_auth_provider = [\"only-issuer\"]")
        .expect_err("jwt")
        .to_string();
    assert!(err.contains("ISSUER,JWKS_URI"), "{err}");
}

#[test]
fn no_authentication_refuses_a_non_loopback_address_naming_both_ways_out() {
    for host in ["0.0.0.0", "::", "192.0.2.7"] {
        let err = parse(&format!("[http]\nhostname = \"{host}\"\n"))
            .expect_err(host)
            .to_string();
        for needle in [
            host,
            "not a loopback address",
            "\"admin\"",
            "configure authentication",
            "jwt_auth_provider",
            "clients_ca_cert_file",
            "listen on loopback",
        ] {
            assert!(err.contains(needle), "{needle:?} missing: {err}");
        }
    }
    for host in ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"] {
        let c = parse(&format!("[http]\nhostname = \"{host}\"\n")).expect(host);
        assert_eq!(c.hostname, host);
    }
    // With authentication configured, any address is accepted.
    let c = parse(
        "[http]\nhostname = \"0.0.0.0\"\n[idp_auth]\njwt_auth_provider = [\"https://idp/,/etc/jwks.json\"]\n",
    )
    .expect("authenticated");
    assert_eq!(c.hostname, "0.0.0.0");
}

#[test]
fn sqlite_path_that_is_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("grants");
    std::fs::write(&file, b"").expect("file");
    let err = parse(&format!("[db]\nsqlite_path = \"{}\"\n", file.display()))
        .expect_err("a regular file")
        .to_string();
    assert!(
        err.contains(&format!("sqlite_path {} is a regular file", file.display()))
            && err.contains("ending in .db"),
        "{err}"
    );
    // A directory, or a .db file, is the database's place.
    let c = parse(&format!(
        "[db]\nsqlite_path = \"{}\"\n",
        dir.path().display()
    ))
    .expect("dir");
    assert!(matches!(&c.database, Database::Sqlite(f) if f == &dir.path().join("kms.db")));
}

#[test]
fn per_peer_caps_default_and_stay_within_the_total() {
    let c = parse("").expect("defaults");
    assert_eq!(
        (
            c.max_connections,
            c.max_connections_per_peer,
            c.max_pending_per_peer
        ),
        (512, 128, 64)
    );
    let c = parse("max_connections = 10\nmax_pending_per_peer = 50\n").expect("small");
    assert_eq!(
        (c.max_connections_per_peer, c.max_pending_per_peer),
        (10, 10)
    );
    let err = parse("max_connections_per_peer = 0\n")
        .expect_err("zero")
        .to_string();
    assert!(
        err.contains("max_connections_per_peer must be at least 1"),
        "{err}"
    );
}

#[test]
fn kms_keys_settings_default_and_parse_as_the_reference() {
    let c = parse("").expect("empty config");
    assert_eq!(c.kms_keys.key_encryption_key, None);
    assert!(c.kms_keys.default_unwrap_type.is_empty());
    assert_eq!(
        c.kms_keys.unwrapped_cache_max_age,
        std::time::Duration::from_secs(15 * 60)
    );
    assert_eq!(c.kms_keys.unwrapped_cache_max_size, 1000);
    let c = parse(
        "key_encryption_key = \"hsm::258476651::kek\"\ndefault_unwrap_type = [\"SymmetricKey\", \"SecretData\"]\n[db]\nunwrapped_cache_max_age = 2\nunwrapped_cache_max_size = 7\n",
    )
    .expect("config");
    assert_eq!(
        c.kms_keys.key_encryption_key.as_deref(),
        Some("hsm::258476651::kek")
    );
    assert_eq!(
        c.kms_keys.default_unwrap_type,
        vec!["SymmetricKey".to_owned(), "SecretData".to_owned()]
    );
    assert_eq!(
        c.kms_keys.unwrapped_cache_max_age,
        std::time::Duration::from_secs(120)
    );
    assert_eq!(c.kms_keys.unwrapped_cache_max_size, 7);
}

#[test]
fn kms_keys_mistakes_are_named() {
    for (text, needle) in [
        ("key_encryption_key = \"kek\"", "hsm::<slot>::<label>"),
        ("key_encryption_key = \"hsm::x::kek\"", "is not an HSM key"),
        // A label hsmd would refuse: a raw control character, 129 bytes.
        ("key_encryption_key = \"hsm::7::k\\nx\"", "holds the raw character"),
        (
            "key_encryption_key = \"hsm::7::kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\"",
            "1 to 128 bytes",
        ),
        (
            "default_unwrap_type = [\"Certificate\"]",
            "SymmetricKey, SecretData",
        ),
        (
            "[db]\nunwrapped_cache_max_age = 0",
            "unwrapped_cache_max_age must be at least 1",
        ),
        (
            "[db]\nunwrapped_cache_max_size = 0",
            "unwrapped_cache_max_size must be at least 1",
        ),
    ] {
        let err = parse(text).expect_err(text).to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}
