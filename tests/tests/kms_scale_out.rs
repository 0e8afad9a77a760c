//! Several frontends, one PostgreSQL (issue 15): two real kms-frontends,
//! each with its own hsmd on its own SoftHSMv2 token, both tokens holding
//! the same KEK (generated on A, wrapped under a transport key and unwrapped
//! on B: `hsmd_e2e::shared_kek`), on one throw-away PostgreSQL cluster
//! (`hsmd_e2e::postgres`).
//!
//! - a key created through one frontend is used through the other (and the
//!   same over TLS to the database, `sslmode=verify-full`);
//! - a grant, a revocation of it, a Revoke and a Destroy made through one
//!   are seen by the other for the very next request, and the other's
//!   unwrapped cache drops the key within a second;
//! - two frontends creating the same uid at once: one wins, the other gets
//!   the reference's "already exists";
//! - PostgreSQL stopped and started again under load: only 200s and 503s
//!   naming the database, `/health` says so, HSM-key operations of an HSM
//!   admin keep working, and service resumes by itself;
//! - one frontend killed under load: the other keeps serving every request;
//! - two frontends started together on an empty database apply each schema
//!   migration once;
//! - a Revoke raced by attribute changes through the other frontend holds
//!   (compare-and-set), and a uid with NUL is "not found", not a 500.
//!
//! Skipped with one line outside CI when PostgreSQL's server binaries are
//! missing (scripts/test installs them).

use hsmd_e2e::kmip::{bytes_hex, create_aes, decrypt, destroy, enumeration, revoke, text};
use hsmd_e2e::postgres::{or_skip, PgServer};
use hsmd_e2e::replay::{bytes_at, hex, item};
use hsmd_e2e::shared_kek::{put_shared_kek, twin};
use hsmd_e2e::{expect, frontend_hsmd_config, Daemon, Frontend, Launch, Reply, Token};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const PLAIN: &[u8] = b"issue 15: one key, two frontends, one database";

/// One host: hsmd on its token, and kms-frontend on the shared database.
struct Host {
    fe: Frontend,
    _daemon: Daemon,
    _token: Token,
}

/// Two hosts on one PostgreSQL, with the same KEK `hsm::<slot>::kek`.
struct Pair {
    a: Host,
    b: Host,
    kek: String,
    url: String,
    pg: PgServer,
}

/// The flags of a frontend of the pair, as `user`.
fn flags<'a>(kek: &'a str, url: &'a str, user: &'a str) -> Vec<&'a str> {
    vec![
        "--default-username",
        user,
        "--key-encryption-key",
        kek,
        "--database-type",
        "postgresql",
        "--database-url",
        url,
    ]
}

impl Pair {
    /// The pair on `pg` (None: skipped), both frontends as `admin`, their
    /// cache's forgetting logged (debug).
    fn start(test: &str, pg: Result<PgServer, hsmd_e2e::postgres::PgError>) -> Option<Self> {
        let pg = or_skip(test, pg)?;
        let token_a = Token::new(&format!("{test}-a"));
        let token_b = twin(&token_a).expect("token B, a twin of A");
        let shared = put_shared_kek(&token_a, &token_b, "kek").expect("the KEK on both tokens");
        assert_eq!(shared.uid_a, shared.uid_b, "same slot, same uid");
        let kek = shared.uid_a;
        let url = pg.url();
        let host = |token: Token| {
            let daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
            let launch = Launch {
                env: vec![("KMS_LOG".into(), "info,kms_frontend::vault=debug".into())],
                ..Launch::default()
            };
            let fe =
                Frontend::try_start(&token, &daemon.socket, &flags(&kek, &url, "admin"), launch)
                    .unwrap_or_else(|e| panic!("{e}"));
            Host {
                fe,
                _daemon: daemon,
                _token: token,
            }
        };
        let a = host(token_a);
        let b = host(token_b);
        Some(Self { a, b, kek, url, pg })
    }

    /// Restarts `host`'s frontend as `user`.
    fn as_user(&mut self, b: bool, user: &str) {
        let (kek, url) = (self.kek.clone(), self.url.clone());
        let host = if b { &mut self.b } else { &mut self.a };
        host.fe.restart(&flags(&kek, &url, user));
    }
}

/// `req` through `fe` must answer 200; its body.
async fn ok(fe: &Frontend, what: &str, req: &Value) -> Value {
    let r = fe.kmip(req).await;
    expect(what, &r, 200, "", fe);
    r.json()
}

/// Encrypt of [`PLAIN`] with `uid`.
fn encrypt(uid: &str) -> Value {
    hsmd_e2e::kmip::encrypt(uid, &hex(PLAIN))
}

/// Encrypt with `uid` through `enc_fe`, Decrypt through `dec_fe`: the plaintext.
async fn round_trip(enc_fe: &Frontend, dec_fe: &Frontend, uid: &str) {
    let enc = ok(enc_fe, "Encrypt", &encrypt(uid)).await;
    let dec = ok(dec_fe, "Decrypt on the other frontend", &decrypt(uid, &enc)).await;
    assert_eq!(bytes_at(&dec, &["Data"]), PLAIN);
}

/// Waits for `fe` to log that it forgot `uid`'s unwrapped key; how long
/// that took from `since`.
fn forgotten(fe: &mut Frontend, uid: &str, since: Instant) -> Duration {
    let line = fe.wait_for_log("unwrapped key forgotten");
    assert!(line.contains(uid), "another key forgotten first: {line}");
    since.elapsed()
}

#[tokio::test]
async fn a_key_made_through_one_frontend_is_used_through_the_other_over_tls() {
    let Some(pair) = Pair::start("scale-tls", PgServer::start_tls()) else {
        return;
    };
    assert!(pair.url.contains("sslmode=verify-full"), "{}", pair.url);
    let (a, b) = (&pair.a.fe, &pair.b.fe);
    ok(a, "Create on A", &create_aes("k1")).await;
    round_trip(a, b, "k1").await;
    round_trip(b, a, "k1").await;
    let pair_req = json!({"tag": "CreateKeyPair", "value": [
        {"tag": "CommonAttributes", "value": [
            enumeration("CryptographicAlgorithm", "EC"),
            enumeration("RecommendedCurve", "P256"),
        ]},
        {"tag": "PrivateKeyAttributes", "value": [text("UniqueIdentifier", "ec1")]},
    ]});
    ok(b, "CreateKeyPair on B", &pair_req).await;
    let sig = ok(
        a,
        "Sign on A",
        &json!({"tag": "Sign", "value": [text("UniqueIdentifier", "ec1"), bytes_hex("Data", &hex(PLAIN))]}),
    )
    .await;
    let verified = ok(
        b,
        "SignatureVerify on B",
        &json!({"tag": "SignatureVerify", "value": [
            text("UniqueIdentifier", "ec1_pk"),
            bytes_hex("Data", &hex(PLAIN)),
            bytes_hex("SignatureData", &hex(&bytes_at(&sig, &["SignatureData"]))),
        ]}),
    )
    .await;
    assert_eq!(
        item(&verified, &["ValidityIndicator"])["value"],
        "Valid",
        "verification on B: {verified}"
    );
    // One row per key, its material wrapped (never the clear key's length
    // alone: AES-GCM adds a 12-byte IV and a 16-byte tag to the 32 bytes).
    let rows = pair
        .pg
        .sql("SELECT uid || ' ' || wrapping_key || ' ' || mechanism || ' ' || length(blob) FROM objects ORDER BY uid")
        .expect("rows");
    let kek = &pair.kek;
    assert!(
        rows.contains(&format!("k1 {kek} aes_gcm 60")),
        "k1 is wrapped by the KEK with AES-GCM: {rows}"
    );
}

#[tokio::test]
async fn grants_revocations_and_destroys_through_one_frontend_hold_at_once_on_the_other() {
    let Some(mut pair) = Pair::start("scale-rights", PgServer::start()) else {
        return;
    };
    ok(&pair.a.fe, "Create on A", &create_aes("shared")).await;
    ok(&pair.a.fe, "Create on A", &create_aes("other")).await;
    pair.as_user(true, "bob");
    let (a, b) = (&pair.a.fe, &pair.b.fe);
    let grant = json!({"unique_identifier": "shared", "user_id": "bob", "operation_types": ["encrypt", "decrypt"]});
    let r = b.kmip(&encrypt("shared")).await;
    expect("bob before any grant", &r, 422, "not shared with bob", b);
    let r = a.post_raw("/access/grant", grant.to_string()).await;
    expect("grant through A", &r, 200, "successfully added", a);
    round_trip(b, b, "shared").await;
    let r = a.post_raw("/access/revoke", grant.to_string()).await;
    expect("revoke through A", &r, 200, "successfully deleted", a);
    let r = b.kmip(&encrypt("shared")).await;
    expect(
        "bob right after the revocation on A",
        &r,
        422,
        "not shared with bob",
        b,
    );

    // Revoke and Destroy through A, with the key cached on B.
    pair.as_user(true, "admin");
    round_trip(&pair.b.fe, &pair.b.fe, "other").await;
    let since = Instant::now();
    ok(&pair.a.fe, "Revoke on A", &revoke("other")).await;
    let r = pair.b.fe.kmip(&encrypt("other")).await;
    expect(
        "Encrypt on B right after the Revoke on A",
        &r,
        422,
        "Deactivated",
        &pair.b.fe,
    );
    let took = forgotten(&mut pair.b.fe, "other", since);
    assert!(
        took < Duration::from_secs(1),
        "B forgot the key after {took:?}"
    );
    // A revoked key still decrypts (KMIP 2.1 section 3.27): B caches it
    // again, then A destroys it.
    let enc = ok(&pair.a.fe, "Encrypt with shared", &encrypt("shared")).await;
    ok(&pair.a.fe, "Revoke on A", &revoke("shared")).await;
    forgotten(&mut pair.b.fe, "shared", Instant::now());
    ok(
        &pair.b.fe,
        "Decrypt on B (cached again)",
        &decrypt("shared", &enc),
    )
    .await;
    let since = Instant::now();
    ok(&pair.a.fe, "Destroy on A", &destroy("shared")).await;
    let r = pair.b.fe.kmip(&decrypt("shared", &enc)).await;
    expect(
        "Decrypt on B right after the Destroy on A",
        &r,
        422,
        "Item not found",
        &pair.b.fe,
    );
    let took = forgotten(&mut pair.b.fe, "shared", since);
    assert!(
        took < Duration::from_secs(1),
        "B forgot the key after {took:?}"
    );
}

#[tokio::test]
async fn the_same_uid_created_through_both_at_once_is_created_once() {
    let Some(pair) = Pair::start("scale-race", PgServer::start()) else {
        return;
    };
    for i in 0..20 {
        let uid = format!("race-{i}");
        let req = create_aes(&uid);
        let (ra, rb) = tokio::join!(pair.a.fe.kmip(&req), pair.b.fe.kmip(&req));
        let mut statuses = [ra.status, rb.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 422], "{uid}: A {ra}, B {rb}");
        let loser = if ra.status == 422 { &ra } else { &rb };
        assert!(loser.body.contains("already exists"), "{uid}: {loser}");
    }
    let count = pair
        .pg
        .sql("SELECT count(*) FROM objects WHERE uid LIKE 'race-%'")
        .expect("count");
    assert_eq!(count.trim(), "20");
}

#[tokio::test]
async fn two_frontends_starting_together_on_an_empty_database_migrate_it_once() {
    let Some(pg) = or_skip("scale-migrate", PgServer::start()) else {
        return;
    };
    let token = Token::new("scale-migrate");
    let daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
    let kek = format!("hsm::{}::kek", token.slot);
    let url = pg.url();
    let (a, b) = std::thread::scope(|s| {
        let start = || {
            s.spawn(|| {
                Frontend::try_start(
                    &token,
                    &daemon.socket,
                    &flags(&kek, &url, "admin"),
                    Launch::default(),
                )
            })
        };
        let (a, b) = (start(), start());
        (a.join().expect("thread A"), b.join().expect("thread B"))
    });
    let (a, b) = (a.expect("frontend A starts"), b.expect("frontend B starts"));
    let versions = pg
        .sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM _sqlx_migrations WHERE success")
        .expect("versions");
    assert_eq!(versions.trim(), "1,2,3", "each migration applied once");
    ok(&a, "Create the HSM KEK through A", &create_aes(&kek)).await;
    ok(&a, "Create through A", &create_aes("k1")).await;
    round_trip(&a, &b, "k1").await;
}

/// SetAttribute of a Name, as `ckms attributes set` sends it.
fn rename(uid: &str, name: &str) -> Value {
    json!({"tag": "SetAttribute", "value": [
        text("UniqueIdentifier", uid),
        {"tag": "NewAttribute", "value": [{"tag": "Name", "value": [
            text("NameValue", name),
            enumeration("NameType", "UninterpretedTextString"),
        ]}]},
    ]})
}

#[tokio::test]
async fn a_revoke_raced_by_an_attribute_change_on_the_other_frontend_is_never_undone() {
    let Some(pair) = Pair::start("scale-lost-update", PgServer::start()) else {
        return;
    };
    let (a, b) = (&pair.a.fe, &pair.b.fe);
    for i in 0..20 {
        let uid = format!("raced-{i}");
        ok(a, "Create", &create_aes(&uid)).await;
        let (revoke_req, one, two) = (revoke(&uid), rename(&uid, "one"), rename(&uid, "two"));
        let (revoked, renamed, renamed_again) =
            tokio::join!(a.kmip(&revoke_req), b.kmip(&one), b.kmip(&two));
        for (what, r) in [
            ("Revoke", &revoked),
            ("SetAttribute", &renamed),
            ("SetAttribute", &renamed_again),
        ] {
            expect(what, r, 200, "", a);
        }
        // The Revoke answered 200: it holds, whatever ran beside it.
        let r = b.kmip(&encrypt(&uid)).await;
        expect("Encrypt after the raced Revoke", &r, 422, "Deactivated", b);
    }
    // ReKey raced by an attribute change: it answers 200 with a new key
    // that exists, or writes nothing; never an unknown key left behind.
    for i in 0..10 {
        let uid = format!("rekeyed-{i}");
        ok(a, "Create", &create_aes(&uid)).await;
        let rekey = json!({"tag": "ReKey", "value": [text("UniqueIdentifier", &uid)]});
        let one = rename(&uid, "one");
        let (rekeyed, renamed) = tokio::join!(a.kmip(&rekey), b.kmip(&one));
        expect("ReKey", &rekeyed, 200, "", a);
        expect("SetAttribute", &renamed, 200, "", b);
        let new_uid = item(&rekeyed.json(), &["UniqueIdentifier"])["value"]
            .as_str()
            .expect("the new uid")
            .to_owned();
        round_trip(b, a, &new_uid).await;
    }
    let orphans = pair
        .pg
        .sql("SELECT count(*) FROM objects n WHERE n.uid NOT LIKE 'raced-%' AND n.uid NOT LIKE 'rekeyed-%' AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.attributes::text LIKE '%' || n.uid || '%' AND o.uid <> n.uid)")
        .expect("orphans");
    assert_eq!(orphans.trim(), "0", "new keys no old key links to");
    // A second Destroy leaves a compromised key's record as it is.
    ok(a, "Create", &create_aes("compromised")).await;
    let compromise = json!({"tag": "Revoke", "value": [
        text("UniqueIdentifier", "compromised"),
        {"tag": "RevocationReason", "value": [enumeration("RevocationReasonCode", "KeyCompromise")]},
    ]});
    ok(a, "Revoke as compromised", &compromise).await;
    for _ in 0..2 {
        ok(b, "Destroy", &destroy("compromised")).await;
        let attrs = ok(
            a,
            "GetAttributes",
            &json!({"tag": "GetAttributes", "value": [text("UniqueIdentifier", "compromised")]}),
        )
        .await;
        assert_eq!(
            item(&attrs, &["Attributes", "State"])["value"],
            "Destroyed_Compromised"
        );
    }
    // PostgreSQL text cannot hold NUL: such a uid names no key (422, as on
    // SQLite), never a 500.
    let r = a.kmip(&encrypt("nul\u{0}uid")).await;
    expect(
        "Encrypt with a NUL in the uid",
        &r,
        422,
        "Item not found",
        a,
    );
}

/// Sends Encrypt with `uid` through `fe` until `stop`, counting the 200s
/// in `served`; every answer's status and, for non-200s, body.
async fn load(
    fe: &Frontend,
    uid: &str,
    stop: Arc<AtomicBool>,
    served: Arc<watch::Sender<usize>>,
) -> Vec<(u16, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut seen = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match fe
            .try_post_with(&client, "/kmip/2_1", encrypt(uid).to_string())
            .await
        {
            Ok(Reply { status: 200, .. }) => {
                served.send_modify(|n| *n += 1);
                seen.push((200, String::new()));
            }
            Ok(r) => seen.push((r.status, r.body)),
            Err(e) => seen.push((0, e.to_string())),
        }
    }
    seen
}

#[tokio::test]
async fn postgresql_restarted_under_load_gives_503s_naming_it_then_service_resumes() {
    let Some(mut pair) = Pair::start("scale-pgdown", PgServer::start()) else {
        return;
    };
    ok(
        &pair.a.fe,
        "Create the HSM key",
        &create_aes(&format!("{}-direct", pair.kek)),
    )
    .await;
    ok(&pair.a.fe, "Create", &create_aes("busy")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(watch::channel(0).0);
    let a = &pair.a.fe;
    let (seen, ()) = tokio::join!(
        async {
            let runs = (0..4).map(|_| load(a, "busy", stop.clone(), served.clone()));
            futures::future::join_all(runs).await
        },
        async {
            // Some load first, then PostgreSQL goes away.
            served_at_least(&served, 100, "100 Encrypts under load").await;
            pair.pg.stop().expect("stop PostgreSQL");
            wait_until("a 503 naming the database", || async {
                let r = a.kmip(&encrypt("busy")).await;
                r.status == 503 && r.body.contains("KMS database unavailable")
            })
            .await;
            let health = a.get("/health").await;
            assert_eq!(health.status, 503, "{health}");
            assert_eq!(health.json()["database"], "unreachable", "{health}");
            assert_eq!(health.json()["hsmd"], "reachable", "{health}");
            // An HSM admin's operation on an HSM key needs no grant lookup.
            let direct = format!("{}-direct", pair.kek);
            ok(
                a,
                "Encrypt with an HSM key while PostgreSQL is down",
                &encrypt(&direct),
            )
            .await;
            pair.pg.start_again().expect("start PostgreSQL again");
            let before = *served.borrow();
            served_at_least(&served, before + 100, "100 more Encrypts under load").await;
            wait_until("/health 200 again", || async {
                a.get("/health").await.status == 200
            })
            .await;
            stop.store(true, Ordering::Relaxed);
        }
    );
    let all: Vec<_> = seen.into_iter().flatten().collect();
    let ok_count = all.iter().filter(|(s, _)| *s == 200).count();
    let unavailable = all
        .iter()
        .filter(|(s, body)| *s == 503 && body.contains("KMS database unavailable"))
        .count();
    let other: Vec<_> = all
        .iter()
        .filter(|(s, body)| {
            !(*s == 200 || (*s == 503 && body.contains("KMS database unavailable")))
        })
        .collect();
    assert!(
        other.is_empty(),
        "answers that are neither 200 nor 503 naming the database: {other:?}"
    );
    assert!(
        ok_count > 0 && unavailable > 0,
        "{ok_count} ok, {unavailable} unavailable"
    );
    eprintln!(
        "under load: {ok_count} answered 200, {unavailable} answered 503 naming the database"
    );
}

#[tokio::test]
async fn one_frontend_killed_under_load_the_other_keeps_serving() {
    let Some(pair) = Pair::start("scale-kill", PgServer::start()) else {
        return;
    };
    ok(&pair.a.fe, "Create", &create_aes("steady")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(watch::channel(0).0);
    let b = &pair.b.fe;
    let (seen, ()) = tokio::join!(
        async {
            let runs = (0..4).map(|_| load(b, "steady", stop.clone(), served.clone()));
            futures::future::join_all(runs).await
        },
        async {
            served_at_least(&served, 100, "100 Encrypts through B").await;
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pair.a.fe.pid()).expect("pid")),
                nix::sys::signal::Signal::SIGKILL,
            )
            .expect("SIGKILL frontend A");
            // B goes on: a Create and its use, while A is gone.
            ok(b, "Create on B after A died", &create_aes("after")).await;
            round_trip(b, b, "after").await;
            let before = *served.borrow();
            served_at_least(&served, before + 100, "100 more Encrypts through B").await;
            stop.store(true, Ordering::Relaxed);
        }
    );
    let all: Vec<_> = seen.into_iter().flatten().collect();
    let failed: Vec<_> = all.iter().filter(|(s, _)| *s != 200).collect();
    assert!(failed.is_empty(), "B failed while A was killed: {failed:?}");
    assert!(all.len() >= 4, "{} requests", all.len());
}

/// Waits (on the counter's changes, no polling) until `served` counts
/// `target` answers; panics naming `what` after 30 s.
async fn served_at_least(served: &watch::Sender<usize>, target: usize, what: &str) {
    let mut seen = served.subscribe();
    let reached = tokio::time::timeout(Duration::from_secs(30), seen.wait_for(|n| *n >= target));
    assert!(
        matches!(reached.await, Ok(Ok(_))),
        "timed out waiting for {what}"
    );
}

/// Sends the request `check` makes until it holds (each try is a request
/// to the system under test, so there is no sleep between them); panics
/// naming `what` after 30 s.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}
