//! Every KMIP operation of kms-frontend (`kmip::handle`, KMIP 2.1 section 6.1)
//! reading a fuzzed request: the body parsed as on `POST /kmip/2_1`, then
//! served for the HSM admin `admin` or the user `bob` (who holds grants on
//! some keys) against an hsmd stand-in on a Unix socket (`stub`), which
//! answers each hsmd operation with a well-formed result shaped by the key's
//! label (`rsa`, `ec`, else AES; `_pk` the public half; `missing` not
//! found), so the operations go on reading the request after asking hsmd.
//! No request may end in a 5xx answer (a client's mistake is 4xx), and every
//! answer serializes.
//!
//! Input: 1 byte choosing the user (even: admin, odd: bob), then the body.
#![no_main]

#[path = "../stub/hsmd.rs"]
mod stub;

use kms_frontend::access::store::GrantStore;
use kms_frontend::config::KmsKeysConfig;
use kms_frontend::hsm::Hsmd;
use kms_frontend::http::AppState;
use kms_frontend::kmip::{self, Ctx};
use kms_frontend::store::SqliteStore;
use kms_frontend::ttlv::Ttlv;
use kms_frontend::vault::Vault;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::sync::OnceLock;

struct World {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    dir: tempfile::TempDir,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// libFuzzer ends the process with `exit()`, which runs no destructor, so
/// the world's temporary directory is removed by an `atexit` handler.
extern "C" fn remove_world_dir() {
    if let Some(w) = WORLD.get() {
        let _ = std::fs::remove_dir_all(w.dir.path());
    }
}

fn world() -> &'static World {
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        // SAFETY: registers a plain function with no arguments.
        unsafe { libc::atexit(remove_world_dir) };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let socket = dir.path().join("hsmd.sock");
        let listener = runtime
            .block_on(async { tokio::net::UnixListener::bind(&socket) })
            .expect("bind the stand-in's socket");
        runtime.spawn(stub::serve(listener));
        let grants = GrantStore::open(&dir.path().join("kms.db")).expect("grant store");
        for uid in [
            "hsm::0::aes1",
            "hsm::0::rsa1",
            "hsm::0::rsa1_pk",
            "hsm::0::ec1",
        ] {
            runtime
                .block_on(grants.grant(
                    uid,
                    "bob",
                    &["encrypt", "decrypt", "get", "get_attributes", "sign"],
                ))
                .expect("grant");
        }
        World {
            runtime,
            state: AppState {
                hsmd: Hsmd::new(socket, 1, 64),
                grants,
                vault: Vault::new(
                    Arc::new(SqliteStore::open(&dir.path().join("kms.db")).expect("object store")),
                    KmsKeysConfig {
                        // KMS keys are wrapped by the stand-in's AES key.
                        key_encryption_key: Some("hsm::0::aes1".into()),
                        default_unwrap_type: vec![],
                        unwrapped_cache_max_age: std::time::Duration::from_secs(60),
                        unwrapped_cache_max_size: 100,
                    },
                ),
                max_body_bytes: 1 << 20,
            },
            dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [who, body @ ..] = data else {
        return;
    };
    let Ok(value) = kms_frontend::http::json(body) else {
        return;
    };
    let Ok(req) = Ttlv::from_json(&value) else {
        return;
    };
    let w = world();
    let user = if who % 2 == 0 { "admin" } else { "bob" };
    let ctx = Ctx {
        hsmd: &w.state.hsmd,
        grants: &w.state.grants,
        vault: &w.state.vault,
        user,
    };
    match w.runtime.block_on(kmip::handle(&ctx, &req)) {
        Ok(answer) => {
            serde_json::to_vec(&answer).expect("a KMIP answer serializes");
        }
        Err(e) => assert!(
            !e.status.is_server_error(),
            "{} for a request: {}",
            e.status,
            e.message
        ),
    }
});
