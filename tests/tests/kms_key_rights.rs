//! Access rights and attributes of KMS keys (keys kept in kms-frontend's
//! database, wrapped by an HSM key; issue 14 item 4) against a real hsmd
//! and kms-frontend on a SoftHSMv2 token of the test's own: the owner, not
//! the HSM admins, grants, revokes and lists; SetAttribute, AddAttribute,
//! ModifyAttribute and DeleteAttribute change what GetAttributes answers
//! and what Locate finds by Name and tag. The KMS user is the frontend's
//! default user, changed by restarting it on the same database.

use hsmd_e2e::kmip::{bytes_hex, create_aes, encrypt, enumeration, field, text};
use hsmd_e2e::{expect, frontend_hsmd_config, Daemon, Frontend, Reply, Token};
use serde_json::{json, Value};

/// hsmd, kms-frontend running as `admin` (the HSM admin), and the HSM key
/// `hsm::<slot>::kek` it made, the frontend's `key_encryption_key`.
struct Kms {
    _daemon: Daemon,
    fe: Frontend,
    kek: String,
}

impl Kms {
    async fn start(label: &str) -> (Token, Self) {
        let token = Token::new(label);
        let daemon = Daemon::start_with(&token, &frontend_hsmd_config(&token, ""), &[]);
        let kek = format!("hsm::{}::kek", token.slot);
        let fe = Frontend::start(
            &token,
            &daemon.socket,
            &["--default-username", "admin", "--key-encryption-key", &kek],
        );
        let kms = Self {
            _daemon: daemon,
            fe,
            kek,
        };
        kms.ok("create the HSM KEK", &create_aes(&kms.kek)).await;
        (token, kms)
    }

    /// Restarts the frontend with `user` as its default user.
    fn as_user(&mut self, user: &str) {
        let kek = self.kek.clone();
        self.fe
            .restart(&["--default-username", user, "--key-encryption-key", &kek]);
    }

    /// A KMIP request that must answer 200.
    async fn ok(&self, what: &str, body: &Value) -> Value {
        let r = self.fe.kmip(body).await;
        expect(what, &r, 200, "", &self.fe);
        r.json()
    }

    /// A KMIP request that must answer `status` with `needle` in the body.
    async fn refused(&self, what: &str, body: &Value, status: u16, needle: &str) {
        let r = self.fe.kmip(body).await;
        expect(what, &r, status, needle, &self.fe);
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.fe.post_raw(path, body.to_string()).await
    }
}

fn access(uid: &str, user: &str, ops: &[&str]) -> Value {
    json!({"unique_identifier": uid, "user_id": user, "operation_types": ops})
}

/// A Create of the AES KMS key `uid` with a Name and the reference's tags.
fn create_named(uid: &str, name: &str, tags: &str) -> Value {
    json!({"tag": "Create", "value": [
        enumeration("ObjectType", "SymmetricKey"),
        {"tag": "Attributes", "value": [
            enumeration("CryptographicAlgorithm", "AES"),
            {"tag": "CryptographicLength", "type": "Integer", "value": 256},
            {"tag": "CryptographicUsageMask", "type": "Integer", "value": 12},
            name_item(name),
            enumeration("ObjectType", "SymmetricKey"),
            text("UniqueIdentifier", uid),
            vendor_text("tag", tags),
        ]},
    ]})
}

fn name_item(name: &str) -> Value {
    json!({"tag": "Name", "value": [
        text("NameValue", name),
        enumeration("NameType", "UninterpretedTextString"),
    ]})
}

fn vendor_text(name: &str, value: &str) -> Value {
    json!({"tag": "Attribute", "value": [
        text("VendorIdentification", "cosmian"),
        text("AttributeName", name),
        text("AttributeValue", value),
    ]})
}

/// `op` (SetAttribute, AddAttribute, ModifyAttribute) of `item` on `uid`,
/// as `ckms attributes set` sends it.
fn change(op: &str, uid: &str, item: Value) -> Value {
    json!({"tag": op, "value": [
        text("UniqueIdentifier", uid),
        {"tag": "NewAttribute", "value": [item]},
    ]})
}

fn get_attributes(uid: &str) -> Value {
    json!({"tag": "GetAttributes", "value": [text("UniqueIdentifier", uid)]})
}

fn locate(filter: Vec<Value>) -> Value {
    json!({"tag": "Locate", "value": [{"tag": "Attributes", "value": filter}]})
}

/// The uids a LocateResponse lists.
fn located(v: &Value) -> Vec<String> {
    assert_eq!(v["tag"], "LocateResponse", "{v}");
    v["value"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["tag"] == "UniqueIdentifier")
        .map(|i| i["value"].as_str().expect("uid").to_owned())
        .collect()
}

/// The items of GetAttributesResponse's Attributes.
fn attrs_of(v: &Value) -> Vec<Value> {
    assert_eq!(v["tag"], "GetAttributesResponse", "{v}");
    field(v, "Attributes")
        .and_then(Value::as_array)
        .expect("Attributes")
        .clone()
}

/// The NameValues among `attrs`.
fn names(attrs: &[Value]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a["tag"] == "Name")
        .filter_map(|a| field(a, "NameValue").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// The value of the vendor attribute `cosmian`/`name` among `attrs`.
fn vendor_value(attrs: &[Value], name: &str) -> Option<String> {
    attrs
        .iter()
        .filter(|a| a["tag"] == "Attribute")
        .find(|a| field(a, "AttributeName") == Some(&json!(name)))
        .and_then(|a| field(a, "AttributeValue"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn by_name(name: &str) -> Value {
    locate(vec![name_item(name)])
}

fn by_tag(tag: &str) -> Value {
    locate(vec![vendor_text("tag", &format!("[\"{tag}\"]"))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_of_a_kms_key_grants_and_revokes_and_hsm_admins_get_nothing_on_it() {
    let (_token, mut kms) = Kms::start("kms-key-rights").await;
    let key = "alice-k1";

    kms.as_user("alice");
    kms.ok("alice creates a KMS key", &create_aes(key)).await;
    let r = kms
        .post("/access/grant", &access(key, "bob", &["encrypt"]))
        .await;
    expect(
        "alice grants bob encrypt",
        &r,
        200,
        "Access for bob successfully added",
        &kms.fe,
    );
    let r = kms
        .post("/access/grant", &access("no-such-key", "bob", &["encrypt"]))
        .await;
    expect(
        "a grant on an absent KMS key",
        &r,
        422,
        "Item not found",
        &kms.fe,
    );
    let r = kms.fe.get(&format!("/access/list/{key}")).await;
    expect("alice lists", &r, 200, "", &kms.fe);
    assert_eq!(
        r.json(),
        json!([{"user_id": "bob", "operations": ["encrypt"]}])
    );
    let r = kms.fe.get("/access/owned").await;
    expect("alice's owned", &r, 200, "", &kms.fe);
    assert_eq!(
        r.json(),
        json!([{"object_id": key, "state": "Active", "attributes": {
            "CryptographicAlgorithm": "AES",
            "CryptographicLength": 256,
            "KeyFormatType": "TransparentSymmetricKey",
            "ObjectType": "SymmetricKey",
        }}]),
        "alice owns her key and no HSM key"
    );

    kms.as_user("bob");
    let e = kms
        .ok("bob encrypts with the grant", &encrypt(key, "00112233"))
        .await;
    assert_eq!(e["tag"], "EncryptResponse", "{e}");
    assert!(field(&e, "Data").is_some(), "{e}");
    let r = kms
        .post("/access/grant", &access(key, "carol", &["encrypt"]))
        .await;
    expect(
        "bob cannot grant on alice's key",
        &r,
        401,
        &format!("Access denied: Object with uid `{key}` is not owned by owner `bob`"),
        &kms.fe,
    );
    let r = kms
        .post("/access/revoke", &access(key, "bob", &["encrypt"]))
        .await;
    expect(
        "bob cannot revoke",
        &r,
        401,
        "is not owned by owner `bob`",
        &kms.fe,
    );
    let r = kms.fe.get(&format!("/access/list/{key}")).await;
    expect(
        "bob cannot list",
        &r,
        401,
        "is not owned by owner `bob`",
        &kms.fe,
    );
    kms.refused(
        "bob cannot change an attribute of alice's key",
        &change("SetAttribute", key, name_item("bobs")),
        401,
        "only its owner may",
    )
    .await;
    let r = kms.fe.get("/access/obtained").await;
    expect("bob's obtained", &r, 200, "", &kms.fe);
    assert_eq!(
        r.json(),
        json!([{"object_id": key, "owner_id": "alice", "state": "Active", "operations": ["encrypt"]}])
    );
    let r = kms.fe.get("/access/owned").await;
    assert_eq!(r.json(), json!([]), "bob owns nothing: {r}");

    kms.as_user("admin");
    kms.refused(
        "the HSM admin cannot encrypt with alice's key",
        &encrypt(key, "00112233"),
        422,
        "Item not found",
    )
    .await;
    kms.refused(
        "the HSM admin cannot read its attributes",
        &get_attributes(key),
        422,
        "Item not found",
    )
    .await;
    let r = kms
        .post("/access/grant", &access(key, "admin", &["encrypt"]))
        .await;
    expect(
        "the HSM admin cannot grant on alice's key, nor learn it exists",
        &r,
        422,
        "Item not found",
        &kms.fe,
    );
    let r = kms.fe.get("/access/owned").await;
    expect("the admin's owned", &r, 200, "", &kms.fe);
    let owned: Vec<Value> = r.json().as_array().expect("array").clone();
    assert!(
        owned.iter().any(|o| o["object_id"] == json!(kms.kek)),
        "the admin owns the HSM KEK: {r}"
    );
    assert!(
        !owned.iter().any(|o| o["object_id"] == json!(key)),
        "the admin does not own alice's key: {r}"
    );

    kms.as_user("alice");
    let r = kms
        .post("/access/revoke", &access(key, "bob", &["encrypt"]))
        .await;
    expect(
        "alice revokes",
        &r,
        200,
        "Access for bob successfully deleted",
        &kms.fe,
    );
    let r = kms.fe.get(&format!("/access/list/{key}")).await;
    assert_eq!(r.json(), json!([]), "no grant left: {r}");

    kms.as_user("bob");
    kms.refused(
        "bob cannot encrypt after the revoke",
        &encrypt(key, "00112233"),
        422,
        "Item not found",
    )
    .await;
    let r = kms.fe.get("/access/obtained").await;
    assert_eq!(r.json(), json!([]), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_changes_show_in_get_attributes_and_locate() {
    let (token, mut kms) = Kms::start("kms-key-attrs").await;
    let key = "alice-attrs";
    kms.as_user("alice");
    kms.ok(
        "create a named, tagged key",
        &create_named(key, "payroll", "[\"finance\"]"),
    )
    .await;
    assert_eq!(
        located(&kms.ok("by name", &by_name("payroll")).await),
        [key]
    );
    assert_eq!(located(&kms.ok("by tag", &by_tag("finance")).await), [key]);

    // SetAttribute of a Name replaces the Name; Locate follows.
    let r = kms
        .ok(
            "set Name",
            &change("SetAttribute", key, name_item("salaries")),
        )
        .await;
    assert_eq!(r["tag"], "SetAttributeResponse", "{r}");
    assert_eq!(field(&r, "UniqueIdentifier"), Some(&json!(key)), "{r}");
    assert!(located(&kms.ok("old name", &by_name("payroll")).await).is_empty());
    assert_eq!(
        located(&kms.ok("new name", &by_name("salaries")).await),
        [key]
    );

    // AddAttribute of a second Name: both are found.
    kms.ok("add Name", &change("AddAttribute", key, name_item("wages")))
        .await;
    let a = attrs_of(&kms.ok("attributes", &get_attributes(key)).await);
    assert_eq!(names(&a), ["salaries", "wages"]);
    assert_eq!(
        located(&kms.ok("added name", &by_name("wages")).await),
        [key]
    );
    kms.refused(
        "the same Name twice",
        &change("AddAttribute", key, name_item("wages")),
        422,
        "already has Name `wages`",
    )
    .await;

    // The tags as ckms sends a vendor attribute: a VendorAttribute whose
    // value is the hex-decoded ByteString.
    let tags_hex: String = br#"["hr","eu"]"#.iter().map(|b| format!("{b:02X}")).collect();
    let vendor_bytes = json!({"tag": "VendorAttribute", "value": [
        text("VendorIdentification", "cosmian"),
        text("AttributeName", "tag"),
        bytes_hex("AttributeValue", &tags_hex),
    ]});
    kms.ok("set tags", &change("SetAttribute", key, vendor_bytes))
        .await;
    assert!(located(&kms.ok("old tag", &by_tag("finance")).await).is_empty());
    assert_eq!(located(&kms.ok("new tag", &by_tag("hr")).await), [key]);
    let a = attrs_of(&kms.ok("attributes", &get_attributes(key)).await);
    assert_eq!(vendor_value(&a, "tag").as_deref(), Some("[\"hr\",\"eu\"]"));

    // ModifyAttribute of the usage mask and of one Name.
    let mask = json!({"tag": "CryptographicUsageMask", "type": "Integer", "value": 4});
    kms.ok("modify the mask", &change("ModifyAttribute", key, mask))
        .await;
    let modify_name = json!({"tag": "ModifyAttribute", "value": [
        text("UniqueIdentifier", key),
        {"tag": "CurrentAttribute", "value": [name_item("wages")]},
        {"tag": "NewAttribute", "value": [name_item("pay")]},
    ]});
    kms.ok("modify one Name", &modify_name).await;
    let a = attrs_of(&kms.ok("attributes", &get_attributes(key)).await);
    assert!(
        a.iter()
            .any(|i| i["tag"] == "CryptographicUsageMask" && i["value"] == 4),
        "{a:?}"
    );
    assert_eq!(names(&a), ["salaries", "pay"]);
    assert!(located(&kms.ok("modified away", &by_name("wages")).await).is_empty());

    // DeleteAttribute of a Name by value and of the tags by reference.
    let delete_name = json!({"tag": "DeleteAttribute", "value": [
        text("UniqueIdentifier", key),
        {"tag": "CurrentAttribute", "value": [name_item("salaries")]},
    ]});
    let r = kms.ok("delete a Name", &delete_name).await;
    assert_eq!(r["tag"], "DeleteAttributeResponse", "{r}");
    assert!(located(&kms.ok("deleted name", &by_name("salaries")).await).is_empty());
    assert_eq!(located(&kms.ok("kept name", &by_name("pay")).await), [key]);
    let delete_tags = json!({"tag": "DeleteAttribute", "value": [
        text("UniqueIdentifier", key),
        {"tag": "AttributeReference", "value": [
            text("VendorIdentification", "cosmian"),
            text("AttributeName", "tag"),
        ]},
    ]});
    kms.ok("delete the tags", &delete_tags).await;
    assert!(located(&kms.ok("no tag", &by_tag("hr")).await).is_empty());
    let a = attrs_of(&kms.ok("attributes", &get_attributes(key)).await);
    assert_eq!(vendor_value(&a, "tag"), None);
    // As `ckms attributes delete --attribute Description` sends it.
    let description = text("Description", "payroll key");
    kms.ok(
        "add a Description",
        &change("AddAttribute", key, description),
    )
    .await;
    let a = attrs_of(&kms.ok("attributes", &get_attributes(key)).await);
    assert!(a.iter().any(|i| i["tag"] == "Description"), "{a:?}");
    let delete_description = json!({"tag": "DeleteAttribute", "value": [
        text("UniqueIdentifier", key),
        enumeration("AttributeReferences", "Description"),
    ]});
    kms.ok("delete the Description", &delete_description).await;
    let a = attrs_of(&kms.ok("attributes", &get_attributes(key)).await);
    assert!(!a.iter().any(|i| i["tag"] == "Description"), "{a:?}");
    kms.refused(
        "deleting what is not there",
        &delete_name,
        422,
        "Attribute_Not_Found",
    )
    .await;

    // The server's attributes and HSM keys' attributes stay as they are.
    let length = json!({"tag": "CryptographicLength", "type": "Integer", "value": 128});
    kms.refused(
        "a server-owned attribute",
        &change("SetAttribute", key, length),
        422,
        "what may be changed: Name",
    )
    .await;
    let wrapping = json!({"tag": "Link", "value": [
        enumeration("LinkType", "WrappingKeyLink"),
        text("LinkedObjectIdentifier", "hsm::1::other"),
    ]});
    kms.refused(
        "the wrapping key link",
        &change("SetAttribute", key, wrapping),
        422,
        "Link WrappingKeyLink is the server's",
    )
    .await;
    let a = attrs_of(&kms.ok("attributes", &get_attributes(key)).await);
    assert!(
        a.iter()
            .any(|i| i["tag"] == "CryptographicLength" && i["value"] == 256),
        "{a:?}"
    );
    kms.as_user("admin");
    let hsm_key = format!("hsm::{}::kek", token.slot);
    kms.refused(
        "an HSM key's attribute",
        &change("SetAttribute", &hsm_key, name_item("x")),
        422,
        "attributes of HSM keys are the token's",
    )
    .await;
}
