//! KMIP Query (KMIP 2.1 section 6.1.37) and DiscoverVersions (6.1.16):
//! what this server supports, answered as the specification defines.

use super::OPERATIONS;
use crate::error::KmsError;
use crate::ttlv::{Ttlv, TtlvValue};

/// The protocol version served: KMIP 2.1.
const VERSION: (i64, i64) = (2, 1);

/// KMIP Query: `QueryOperations`, `QueryObjects`, `QueryServerInformation`
/// are answered; other query functions have nothing to report. No
/// QueryFunction at all answers operations and objects.
pub fn query(req: &Ttlv) -> Result<Ttlv, KmsError> {
    super::allow_only(req, &["QueryFunction"])?;
    let mut functions: Vec<&str> = Vec::new();
    for f in req.children("QueryFunction") {
        match &f.value {
            TtlvValue::Enumeration(name) => functions.push(name),
            _ => {
                return Err(KmsError::unprocessable(
                    "Query: QueryFunction must be an Enumeration (e.g. QueryOperations)",
                ))
            }
        }
    }
    if functions.is_empty() {
        functions = vec!["QueryOperations", "QueryObjects"];
    }
    let mut v = Vec::new();
    if functions.contains(&"QueryOperations") {
        v.extend(OPERATIONS.iter().map(|o| Ttlv::enumeration("Operation", o)));
    }
    if functions.contains(&"QueryObjects") {
        v.extend(
            ["SymmetricKey", "PublicKey", "PrivateKey"]
                .iter()
                .map(|o| Ttlv::enumeration("ObjectType", o)),
        );
    }
    if functions.contains(&"QueryServerInformation") {
        v.push(Ttlv::text(
            "VendorIdentification",
            concat!("hsmd kms-frontend ", env!("CARGO_PKG_VERSION")),
        ));
    }
    Ok(Ttlv::structure("QueryResponse", v))
}

/// KMIP DiscoverVersions: 2.1 when the client lists it or lists nothing.
pub fn discover_versions(req: &Ttlv) -> Result<Ttlv, KmsError> {
    super::allow_only(req, &["ProtocolVersion"])?;
    let mut offered = Vec::new();
    for pv in req.children("ProtocolVersion") {
        let major = pv.int_of("ProtocolVersionMajor")?;
        let minor = pv.int_of("ProtocolVersionMinor")?;
        offered.push((major, minor));
    }
    let ours = offered.is_empty() || offered.contains(&(Some(VERSION.0), Some(VERSION.1)));
    let v = if ours {
        vec![Ttlv::structure(
            "ProtocolVersion",
            vec![
                Ttlv::integer("ProtocolVersionMajor", VERSION.0),
                Ttlv::integer("ProtocolVersionMinor", VERSION.1),
            ],
        )]
    } else {
        vec![]
    };
    Ok(Ttlv::structure("DiscoverVersionsResponse", v))
}
