//! kms-frontend's reading of a `POST /kmip/2_1` body: JSON (`http::json`),
//! then JSON TTLV (`Ttlv::from_json`, KMIP 2.1 section 9.1 in its JSON
//! form). What parses serializes (as answers are) to JSON that parses again,
//! to the same item when it holds no BigInteger or DateTimeExtended (which
//! are kept as the JSON text they came in).
#![no_main]

use kms_frontend::ttlv::{Ttlv, TtlvValue};
use libfuzzer_sys::fuzz_target;

fn exact(t: &Ttlv) -> bool {
    match &t.value {
        TtlvValue::Structure(c) => c.iter().all(exact),
        TtlvValue::BigInteger(_) | TtlvValue::DateTimeExtended(_) => false,
        _ => true,
    }
}

fuzz_target!(|body: &[u8]| {
    let Ok(value) = kms_frontend::http::json(body) else {
        return;
    };
    let Ok(item) = Ttlv::from_json(&value) else {
        return;
    };
    let out = serde_json::to_vec(&item).expect("a parsed item serializes");
    let back: serde_json::Value = serde_json::from_slice(&out).expect("serialized TTLV is JSON");
    let again = Ttlv::from_json(&back).expect("serialized TTLV parses");
    if exact(&item) {
        assert_eq!(again, item, "parse/serialize round trip");
    }
});
