//! The object store on real SQLite files in temporary directories.

use super::*;
use crate::access::store::GrantStore;
use serde_json::json;
use std::path::Path;

/// A wrapped blob no encoder would make by chance: 12-byte "iv", then
/// bytes 0x00..=0xff, then a 16-byte "tag".
fn blob(seed: u8) -> Vec<u8> {
    let mut b = vec![seed; 12];
    b.extend(0..=255u8);
    b.extend([seed ^ 0xa5; 16]);
    b
}

fn aes_key(uid: &str, owner: &str, names: &[&str], tags: &[&str]) -> StoredObject {
    StoredObject {
        uid: uid.to_owned(),
        object_type: ObjectType::SymmetricKey,
        owner: owner.to_owned(),
        state: State::Active,
        algorithm: Some("AES".to_owned()),
        names: names.iter().map(|s| s.to_string()).collect(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        attributes: json!({
            "tag": "Attributes", "type": "Structure",
            "value": [
                {"tag": "CryptographicAlgorithm", "type": "Enumeration", "value": "AES"},
                {"tag": "CryptographicLength", "type": "Integer", "value": 256}
            ]
        }),
        material: Some(WrappedMaterial {
            wrapping_key: "hsm::0::kek".to_owned(),
            mechanism: "aes_gcm".to_owned(),
            format: "raw".to_owned(),
            blob: blob(uid.len() as u8),
        }),
        version: 0,
    }
}

fn rsa_private(uid: &str, owner: &str) -> StoredObject {
    StoredObject {
        object_type: ObjectType::PrivateKey,
        algorithm: Some("RSA".to_owned()),
        material: Some(WrappedMaterial {
            wrapping_key: "hsm::1::wrap-rsa".to_owned(),
            mechanism: "rsa_oaep_sha256".to_owned(),
            format: "pkcs8".to_owned(),
            blob: vec![0x42; 256],
        }),
        ..aes_key(uid, owner, &[], &[])
    }
}

fn secret(uid: &str, owner: &str) -> StoredObject {
    StoredObject {
        object_type: ObjectType::SecretData,
        algorithm: None,
        attributes: json!({"tag": "Attributes", "type": "Structure", "value": []}),
        ..aes_key(uid, owner, &["db-password"], &["prod"])
    }
}

/// `o` with its version zeroed, to compare with an object as built here:
/// the stores start a row's version at a random number.
fn unversioned(o: Option<StoredObject>) -> Option<StoredObject> {
    o.map(|o| StoredObject { version: 0, ..o })
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).expect("open the object store")
}

fn uids(found: Vec<(String, String)>) -> Vec<String> {
    found.into_iter().map(|(uid, _)| uid).collect()
}

#[test]
fn names_are_kmip_names_and_read_back() {
    let types: Vec<_> = ObjectType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(
        types,
        ["SymmetricKey", "PublicKey", "PrivateKey", "SecretData"]
    );
    for t in ObjectType::ALL {
        assert_eq!(ObjectType::from_name(t.name()), Some(t));
    }
    let states: Vec<_> = State::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        states,
        [
            "PreActive",
            "Active",
            "Deactivated",
            "Compromised",
            "Destroyed",
            "Destroyed_Compromised"
        ]
    );
    for s in State::ALL {
        assert_eq!(State::from_name(s.name()), Some(s));
    }
    assert_eq!(ObjectType::from_name("symmetrickey"), None);
    assert_eq!(ObjectType::from_name("Certificate"), None);
    assert_eq!(State::from_name("DestroyedCompromised"), None);
}

#[test]
fn debug_shows_the_blob_length_only() {
    let m = WrappedMaterial {
        wrapping_key: "hsm::0::kek".to_owned(),
        mechanism: "aes_cbc_pad".to_owned(),
        format: "raw".to_owned(),
        blob: vec![0xde, 0xad, 0xbe, 0xef, 0x17],
    };
    assert_eq!(
        format!("{m:?}"),
        r#"WrappedMaterial { wrapping_key: "hsm::0::kek", mechanism: "aes_cbc_pad", format: "raw", blob_len: 5 }"#
    );
    let obj = format!("{:?}", aes_key("k", "alice", &[], &[]));
    assert!(obj.contains("blob_len: 284"), "{obj}");
    assert!(!obj.contains("255"), "{obj}");
}

#[test]
fn errors_are_one_bounded_sentence() {
    assert_eq!(
        StoreError::Exists("k1".into()).to_string(),
        "an object with Unique Identifier k1 already exists; choose another or leave it out for a UUID"
    );
    assert_eq!(
        StoreError::NotFound("k1".into()).to_string(),
        "no object with Unique Identifier k1 is in the store; only an existing object can be updated"
    );
    let long = StoreError::Exists("é".repeat(10_000)).to_string();
    assert!(long.len() < 400, "{}", long.len());
    assert!(
        long.contains("... (20000 bytes in all) already exists"),
        "{long}"
    );
}

#[tokio::test]
async fn insert_get_and_insert_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir.path().join("kms.db"));
    let k = aes_key("k1", "alice", &["my key", "other name"], &["a", "b"]);
    s.insert(&k).await.expect("insert");
    assert_eq!(
        unversioned(s.get("k1").await.expect("get")),
        Some(k.clone())
    );
    assert_eq!(s.get("k2").await.expect("get absent"), None);

    let mut again = rsa_private("k1", "bob");
    again.names = vec!["thief".into()];
    match s.insert(&again).await {
        Err(StoreError::Exists(uid)) => assert_eq!(uid, "k1"),
        other => panic!("second insert of k1: {other:?}"),
    }
    assert_eq!(unversioned(s.get("k1").await.expect("unchanged")), Some(k));

    let sd = secret("s1", "carol");
    s.insert(&sd).await.expect("insert secret data");
    assert_eq!(
        unversioned(s.get("s1").await.expect("get secret data")),
        Some(sd)
    );
}

#[tokio::test]
async fn update_overwrites_and_destroy_keeps_the_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir.path().join("kms.db"));
    let mut k = aes_key("k1", "alice", &["n1"], &["t1"]);
    match s.update(&k).await {
        Err(StoreError::NotFound(uid)) => assert_eq!(uid, "k1"),
        other => panic!("update of a missing object: {other:?}"),
    }
    assert_eq!(s.get("k1").await.expect("get"), None);

    s.insert(&k).await.expect("insert");
    let start = s.get("k1").await.expect("get").expect("there").version;
    k.version = start;
    k.state = State::Deactivated;
    k.names = vec!["n2".into(), "n3".into()];
    k.tags = vec![];
    k.attributes = json!({"tag": "Attributes", "type": "Structure", "value": [
        {"tag": "State", "type": "Enumeration", "value": "Deactivated"}
    ]});
    s.update(&k).await.expect("update");
    k.version = start + 1;
    assert_eq!(s.get("k1").await.expect("get"), Some(k.clone()));

    // Destroy: the integrator's update with no material.
    k.state = State::Destroyed;
    k.material = None;
    s.update(&k).await.expect("destroy");
    k.version = start + 2;
    let got = s.get("k1").await.expect("get destroyed").expect("row kept");
    assert_eq!(got.material, None);
    assert_eq!(got.state, State::Destroyed);
    assert_eq!(got.names, ["n2", "n3"]);
    assert_eq!(got, k);
}

#[tokio::test]
async fn an_update_over_a_stale_read_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir.path().join("kms.db"));
    s.insert(&aes_key("k1", "alice", &["n"], &[]))
        .await
        .expect("insert");
    let k = s.get("k1").await.expect("get").expect("there");
    let start = k.version;
    // Two read-modify-writes from the same read: a Revoke and an attribute
    // change. The first wins; the second must not undo it.
    let revoked = StoredObject {
        state: State::Deactivated,
        ..k.clone()
    };
    let renamed = StoredObject {
        names: vec!["other".into()],
        ..k.clone()
    };
    s.update(&revoked).await.expect("the first write");
    match s.update(&renamed).await {
        Err(StoreError::Conflict(uid)) => assert_eq!(uid, "k1"),
        other => panic!("a stale write: {other:?}"),
    }
    let now = s.get("k1").await.expect("get").expect("there");
    assert_eq!(
        (now.state, now.names, now.version),
        (State::Deactivated, vec!["n".to_owned()], start + 1)
    );
    // Read again, the change applies on top.
    let renamed = StoredObject {
        names: vec!["other".into()],
        ..now
    };
    s.update(&renamed).await.expect("over a fresh read");
    let now = s.get("k1").await.expect("get").expect("there");
    assert_eq!(
        (now.state, now.names, now.version),
        (State::Deactivated, vec!["other".to_owned()], start + 2)
    );
}

#[tokio::test]
async fn a_uid_created_again_does_not_take_up_its_old_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir.path().join("kms.db"));
    s.insert(&aes_key("k1", "alice", &["old"], &[]))
        .await
        .expect("insert");
    // A read-modify-write reads the key, which is then removed and made
    // again under the same uid: the stale write must not land on the new key.
    let stale = s.get("k1").await.expect("get").expect("there");
    assert!(s.remove("k1").await.expect("remove"));
    s.insert(&aes_key("k1", "alice", &["new"], &[]))
        .await
        .expect("insert again");
    let stale_write = StoredObject {
        state: State::Deactivated,
        ..stale
    };
    match s.update(&stale_write).await {
        Err(StoreError::Conflict(uid)) => assert_eq!(uid, "k1"),
        other => panic!("a write over the old key's read: {other:?}"),
    }
    let now = s.get("k1").await.expect("get").expect("there");
    assert_eq!(
        (now.state, now.names),
        (State::Active, vec!["new".to_owned()])
    );
}

#[tokio::test]
async fn remove_says_whether_there_was_a_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir.path().join("kms.db"));
    s.insert(&aes_key("k1", "alice", &[], &[]))
        .await
        .expect("insert");
    s.insert(&aes_key("k2", "alice", &[], &[]))
        .await
        .expect("insert");
    assert!(s.remove("k1").await.expect("remove"));
    assert!(!s.remove("k1").await.expect("remove again"));
    assert!(!s.remove("never").await.expect("remove absent"));
    assert_eq!(s.get("k1").await.expect("get"), None);
    assert!(s.get("k2").await.expect("get k2").is_some());
    // The uid is free again.
    s.insert(&secret("k1", "bob")).await.expect("reuse the uid");
    assert_eq!(
        s.get("k1").await.expect("get").map(|o| o.object_type),
        Some(ObjectType::SecretData)
    );
}

#[tokio::test]
async fn upsert_inserts_then_replaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir.path().join("kms.db"));
    let k = aes_key("k1", "alice", &["n"], &["t"]);
    s.upsert(&k).await.expect("upsert new");
    let first = s.get("k1").await.expect("get").expect("there");
    assert_eq!(unversioned(Some(first.clone())), Some(k));
    let replacement = rsa_private("k1", "alice");
    s.upsert(&replacement).await.expect("upsert existing");
    // A replaced object is written over: its version moves on.
    let replaced = StoredObject {
        version: first.version + 1,
        ..replacement.clone()
    };
    assert_eq!(s.get("k1").await.expect("get"), Some(replaced.clone()));
    // Another owner's object is never overwritten, whatever was checked
    // before (the check and the write are one statement).
    let theft = aes_key("k1", "bob", &["n"], &["t"]);
    assert!(
        matches!(s.upsert(&theft).await, Err(StoreError::Exists(u)) if u == "k1"),
        "bob overwrote alice's k1"
    );
    assert_eq!(s.get("k1").await.expect("get"), Some(replaced));
    assert_eq!(
        s.locate(&LocateQuery::default()).await.expect("all"),
        [("k1".to_owned(), "alice".to_owned())]
    );
}

#[tokio::test]
async fn locate_by_name_tags_type_algorithm_and_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir.path().join("kms.db"));
    s.insert(&aes_key("a1", "alice", &["payroll"], &["prod", "eu", "hr"]))
        .await
        .expect("a1");
    s.insert(&aes_key(
        "a2",
        "bob",
        &["payroll-old", "archive"],
        &["prod"],
    ))
    .await
    .expect("a2");
    s.insert(&rsa_private("r1", "alice")).await.expect("r1");
    let mut eu = aes_key("a3", "carol", &["payroll"], &["eu", "prod"]);
    eu.state = State::PreActive;
    s.insert(&eu).await.expect("a3");
    s.insert(&secret("s1", "alice")).await.expect("s1");

    let all = s.locate(&LocateQuery::default()).await.expect("all");
    assert_eq!(
        all,
        [
            ("a1".to_owned(), "alice".to_owned()),
            ("a2".to_owned(), "bob".to_owned()),
            ("r1".to_owned(), "alice".to_owned()),
            ("a3".to_owned(), "carol".to_owned()),
            ("s1".to_owned(), "alice".to_owned()),
        ]
    );

    let by_name = |name: &str| LocateQuery {
        name: Some(name.to_owned()),
        ..LocateQuery::default()
    };
    assert_eq!(
        uids(s.locate(&by_name("payroll")).await.expect("name")),
        ["a1", "a3"]
    );
    assert_eq!(
        uids(s.locate(&by_name("archive")).await.expect("second name")),
        ["a2"]
    );
    // A name is matched whole, not as a prefix or a pattern.
    assert!(s
        .locate(&by_name("payroll%"))
        .await
        .expect("none")
        .is_empty());
    assert!(s
        .locate(&by_name("Payroll"))
        .await
        .expect("case")
        .is_empty());

    let tags = |t: &[&str]| LocateQuery {
        tags: t.iter().map(|s| s.to_string()).collect(),
        ..LocateQuery::default()
    };
    assert_eq!(
        uids(s.locate(&tags(&["prod", "eu"])).await.expect("2 tags")),
        ["a1", "a3"]
    );
    assert_eq!(
        uids(s.locate(&tags(&["eu", "hr"])).await.expect("2 tags")),
        ["a1"]
    );
    assert!(s
        .locate(&tags(&["prod", "us"]))
        .await
        .expect("one missing")
        .is_empty());

    let q = LocateQuery {
        object_type: Some(ObjectType::SymmetricKey),
        algorithm: Some("AES".to_owned()),
        ..LocateQuery::default()
    };
    assert_eq!(
        uids(s.locate(&q).await.expect("type+alg")),
        ["a1", "a2", "a3"]
    );
    let q = LocateQuery {
        object_type: Some(ObjectType::PrivateKey),
        algorithm: Some("AES".to_owned()),
        ..LocateQuery::default()
    };
    assert!(s.locate(&q).await.expect("no AES private key").is_empty());
    let q = LocateQuery {
        object_type: Some(ObjectType::SecretData),
        ..LocateQuery::default()
    };
    assert_eq!(uids(s.locate(&q).await.expect("secret data")), ["s1"]);

    let q = LocateQuery {
        state: Some(State::PreActive),
        ..LocateQuery::default()
    };
    assert_eq!(uids(s.locate(&q).await.expect("state")), ["a3"]);

    // Everything at once.
    let q = LocateQuery {
        name: Some("payroll".to_owned()),
        tags: vec!["prod".to_owned()],
        object_type: Some(ObjectType::SymmetricKey),
        algorithm: Some("AES".to_owned()),
        state: Some(State::Active),
    };
    assert_eq!(
        s.locate(&q).await.expect("all filters"),
        [("a1".to_owned(), "alice".to_owned())]
    );
}

#[tokio::test]
async fn locate_answers_in_creation_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir.path().join("kms.db"));
    // Uids out of alphabetical order, all within the same second.
    for uid in ["zeta", "alpha", "mid", "beta"] {
        s.insert(&aes_key(uid, "alice", &[], &["t"]))
            .await
            .expect("insert");
    }
    let q = LocateQuery {
        tags: vec!["t".to_owned()],
        ..LocateQuery::default()
    };
    assert_eq!(
        uids(s.locate(&q).await.expect("locate")),
        ["zeta", "alpha", "mid", "beta"]
    );
}

#[tokio::test]
async fn opening_twice_keeps_the_schema_and_the_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/kms.db");
    let k = aes_key("k1", "alice", &["n"], &["t"]);
    {
        let s = open(&path);
        s.insert(&k).await.expect("insert");
    }
    let s = open(&path);
    let again = open(&path);
    assert_eq!(
        unversioned(s.get("k1").await.expect("get")),
        Some(k.clone())
    );
    assert_eq!(unversioned(again.get("k1").await.expect("get")), Some(k));
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, migrations::LATEST);
    assert_eq!(version, 3);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_grants_only_database_gets_the_objects_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kms.db");
    {
        let g = GrantStore::open(&path).expect("grant store");
        g.grant("hsm::1::k", "bob", &["encrypt"])
            .await
            .expect("grant");
    }
    let s = open(&path);
    let k = aes_key("k1", "alice", &[], &[]);
    s.insert(&k).await.expect("insert");
    assert_eq!(unversioned(s.get("k1").await.expect("get")), Some(k));
    // Both stores on the one file at once, as in the server.
    let g = GrantStore::open(&path).expect("grant store again");
    assert_eq!(
        g.operations("hsm::1::k", "bob").await.expect("grants kept"),
        ["encrypt"]
    );
    g.grant("k1", "carol", &["get"])
        .await
        .expect("grant on the object");
    s.insert(&secret("s1", "alice"))
        .await
        .expect("insert beside");
    assert_eq!(g.operations("k1", "carol").await.expect("ops"), ["get"]);
}

#[tokio::test]
async fn a_new_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir.path().join("kms.db"));
    s.insert(&aes_key("k1", "alice", &[], &[]))
        .await
        .expect("insert");
    for file in ["kms.db", "kms.db-wal", "kms.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .expect(file)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
    }
}

#[tokio::test]
async fn the_blob_is_written_as_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kms.db");
    let k = aes_key("k1", "alice", &[], &[]);
    let r = rsa_private("r1", "alice");
    {
        let s = open(&path);
        s.insert(&k).await.expect("insert");
        s.insert(&r).await.expect("insert");
    }
    // Closing the last connection checkpoints the WAL into the file.
    let bytes = std::fs::read(&path).expect("read the database file");
    for obj in [&k, &r] {
        let blob = &obj.material.as_ref().expect("material").blob;
        let found = bytes.windows(blob.len()).filter(|w| w == blob).count();
        assert_eq!(found, 1, "{}: the wrapped bytes, verbatim, once", obj.uid);
    }
    let kek = b"hsm::0::kek";
    assert!(bytes.windows(kek.len()).any(|w| w == kek));
}

#[tokio::test]
async fn a_row_this_version_cannot_read_is_named_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kms.db");
    let s = open(&path);
    s.insert(&aes_key("k1", "alice", &[], &[]))
        .await
        .expect("insert");
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute("UPDATE objects SET state = 'Gone' WHERE uid = 'k1'", [])
        .expect("spoil the state");
    match s.get("k1").await {
        Err(e @ StoreError::Corrupt { .. }) => assert_eq!(
            e.to_string(),
            "object store: the stored object k1 cannot be read: its state is not a KMIP state name"
        ),
        other => panic!("a spoilt row: {other:?}"),
    }
    // Half a material is refused by the schema itself.
    let half = conn.execute(
        "UPDATE objects SET state = 'Active', blob = NULL WHERE uid = 'k1'",
        [],
    );
    assert!(half.is_err(), "{half:?}");
}

/// `get_for_use` (read inline, on its own connections) gives the row as
/// stored now, without the metadata: a state change, a destruction of the
/// material and a removal, each made through the writing connection, show
/// at the very next read.
#[tokio::test]
async fn get_for_use_reads_the_state_and_material_as_stored_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("kms.db"));
    let key = aes_key("k-use", "alice", &["payroll"], &["prod"]);
    store.insert(&key).await.expect("insert");
    let used = store
        .get_for_use("k-use")
        .await
        .expect("read")
        .expect("there");
    let key = StoredObject {
        version: used.version,
        ..key
    };
    assert_eq!(used.uid, "k-use");
    assert_eq!(used.object_type, ObjectType::SymmetricKey);
    assert_eq!(used.owner, "alice");
    assert_eq!(used.state, State::Active);
    assert_eq!(used.algorithm.as_deref(), Some("AES"));
    assert_eq!(used.material, key.material);
    assert!(used.names.is_empty() && used.tags.is_empty());
    assert_eq!(used.attributes, serde_json::Value::Null);

    let revoked = StoredObject {
        state: State::Deactivated,
        ..key.clone()
    };
    store.update(&revoked).await.expect("revoke");
    let used = store
        .get_for_use("k-use")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(used.state, State::Deactivated);

    let destroyed = StoredObject {
        state: State::Destroyed,
        material: None,
        version: key.version + 1,
        ..key.clone()
    };
    store.update(&destroyed).await.expect("destroy");
    let used = store
        .get_for_use("k-use")
        .await
        .expect("read")
        .expect("there");
    assert_eq!((used.state, used.material), (State::Destroyed, None));

    assert!(store.remove("k-use").await.expect("remove"));
    assert_eq!(store.get_for_use("k-use").await.expect("read"), None);
    assert_eq!(store.get_for_use("never-was").await.expect("read"), None);
}
