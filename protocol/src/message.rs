//! Frames of protocol version 1: the hello exchange, requests and responses
//! (docs/protocol.md "Handshake" and "Requests and responses").

use crate::error::{ErrorBody, ErrorCode};
use crate::ops::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The client's first frame, sent as `{"hello": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Protocol versions the client speaks.
    pub versions: Vec<u32>,
    /// Client name and version, e.g. `"kms-frontend/0.1.0"`; for logs only.
    pub client: String,
}

/// The server's answer to a hello, sent as `{"hello": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// The version chosen: the highest both sides know.
    pub version: u32,
    /// Server name and version, e.g. `"hsmd/0.1.0"`.
    pub server: String,
    /// Configured `hsm_model`.
    pub model: String,
    /// Configured slot IDs, in configuration order.
    pub slots: Vec<u64>,
    /// Configured `hsm_admin` names (`["*"]` = everyone).
    pub admins: Vec<String>,
    /// Largest frame body the server accepts, in bytes.
    pub max_frame_len: usize,
    /// Who the server thinks the peer is (unix user name from `SO_PEERCRED`).
    pub identity: String,
    /// True when the peer is a frontend and may send `as_user`.
    pub may_act_as_others: bool,
}

/// Wire wrapper `{"hello": T}` for both hello frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloFrame<T> {
    /// The hello body.
    pub hello: T,
}

/// A decoded request: `{"id", "op", "as_user"?, "params"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Client-chosen id, echoed in the response.
    pub id: u64,
    /// KMS user a frontend acts for.
    pub as_user: Option<String>,
    /// The operation and its parameters.
    pub op: Operation,
}

/// Writes [`Operation`], [`OP_NAMES`] and the per-operation `match`es from
/// the list of [`for_each_operation!`](crate::for_each_operation).
macro_rules! operations {
    ($($op:ident),* $(,)?) => {
        /// Every operation of version 1 with its typed parameters.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum Operation {
            $($op($op),)*
        }

        /// The `op` names of version 1, for error messages.
        pub const OP_NAMES: &[&str] = &[$($op::NAME,)*];

        impl Operation {
            /// The wire name of the operation.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$op(_) => $op::NAME,)*
                }
            }

            /// The key uid the operation names or creates, if any (for logs
            /// and audit).
            pub fn key_uid(&self) -> Option<String> {
                match self {
                    $(Self::$op(p) => p.key_uid(),)*
                }
            }

            /// Decodes `params` for the operation named `op`.
            ///
            /// Errors: `bad_request` naming the unknown op (and listing the
            /// known ones), or the ill-typed / missing field by its path
            /// (e.g. `params.bits`).
            pub fn decode(op: &str, params: Option<Value>) -> Result<Self, ErrorBody> {
                Ok(match op {
                    $($op::NAME => Self::$op(decode_params(op, params)?),)*
                    other => {
                        return Err(ErrorBody::bad_request(format!(
                            "op: unknown operation {}; known operations are {}",
                            echo(other),
                            OP_NAMES.join(", ")
                        )))
                    }
                })
            }

            fn params(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $(Self::$op(x) => serde_json::to_value(x),)*
                }
            }
        }
    };
}

crate::for_each_operation!(operations);

/// Decodes the `params` of `op` into its parameter type: absent or null is
/// `{}`; anything but an object is refused.
fn decode_params<T: DeserializeOwned>(op: &str, v: Option<Value>) -> Result<T, ErrorBody> {
    let v = match v {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v,
        Some(other) => {
            return Err(ErrorBody::bad_request(format!(
                "{op}: params: expected an object, got {}",
                json_type(&other)
            )))
        }
    };
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "params".to_owned()
        } else {
            format!("params.{path}")
        };
        ErrorBody::bad_request(bound_message(format!("{op}: {field}: {}", e.into_inner())))
    })
}

/// Why a request frame could not be decoded; `id` is the request's id when
/// it could be read, so the error can be matched by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDecodeError {
    /// The request id, if the frame had a valid one.
    pub id: Option<u64>,
    /// The `bad_request` error to send back.
    pub error: ErrorBody,
}

impl Request {
    /// Decodes one request frame body.
    ///
    /// Errors (all `bad_request`, naming the field): not UTF-8 JSON, a
    /// member given twice in any object (see [`crate::strict`]), not an
    /// object, `id` missing or not an unsigned 64-bit integer, `op` missing or
    /// unknown, `as_user` not a string, unknown top-level field, bad `params`.
    pub fn decode(frame: &[u8]) -> Result<Self, RequestDecodeError> {
        let fail = |id, msg: String| RequestDecodeError {
            id,
            error: ErrorBody::bad_request(msg),
        };
        if frame.is_empty() {
            return Err(fail(
                None,
                "empty frame: a frame must hold one JSON object (length 1 to max_frame_len)".into(),
            ));
        }
        let value = crate::strict::from_slice(frame).map_err(|e| {
            if e.is_data() {
                fail(None, format!("frame refused: {e}"))
            } else {
                fail(None, format!("frame is not valid JSON: {e}"))
            }
        })?;
        let Value::Object(mut obj) = value else {
            return Err(fail(
                None,
                format!("frame must be a JSON object, got {}", json_type(&value)),
            ));
        };
        let id = match obj.remove("id") {
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(other) => {
                return Err(fail(
                    None,
                    format!(
                        "id: expected an unsigned 64-bit integer, got {}",
                        echo(&other.to_string())
                    ),
                ))
            }
            None => {
                let hint = if obj.contains_key("hello") {
                    "; the hello was already exchanged"
                } else {
                    ""
                };
                return Err(fail(None, format!("id: missing request id{hint}")));
            }
        };
        let op = match obj.remove("op") {
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(fail(
                    id,
                    format!("op: expected a string, got {}", json_type(&other)),
                ))
            }
            None => return Err(fail(id, "op: missing operation name".into())),
        };
        let as_user = match obj.remove("as_user") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                return Err(fail(
                    id,
                    format!("as_user: expected a string, got {}", json_type(&other)),
                ))
            }
        };
        let params = obj.remove("params");
        if let Some(extra) = obj.keys().next() {
            return Err(fail(
                id,
                format!(
                    "{}: unknown field; a request has id, op, as_user and params",
                    clip(extra).escape_debug()
                ),
            ));
        }
        let op =
            Operation::decode(&op, params).map_err(|error| RequestDecodeError { id, error })?;
        Ok(Request {
            id: id.unwrap_or_default(),
            as_user,
            op,
        })
    }

    /// Encodes the request as a frame body.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut obj = Map::new();
        obj.insert("id".into(), self.id.into());
        obj.insert("op".into(), self.op.name().into());
        if let Some(u) = &self.as_user {
            obj.insert("as_user".into(), u.clone().into());
        }
        obj.insert("params".into(), self.op.params()?);
        serde_json::to_vec(&Value::Object(obj))
    }
}

/// Longest piece of client input echoed in an error message, in characters.
const ECHO_MAX: usize = 64;

/// Client input cut to [`ECHO_MAX`] characters for an error message.
fn clip(v: &str) -> String {
    let mut out: String = v.chars().take(ECHO_MAX).collect();
    if v.chars().nth(ECHO_MAX).is_some() {
        out.push_str("...");
    }
    out
}

/// Client input, cut and quoted, for an error message.
fn echo(v: &str) -> String {
    format!("{:?}", clip(v))
}

/// Bounds an error message built by serde (which may quote input) to a size
/// that always fits in a frame.
fn bound_message(mut m: String) -> String {
    const MAX: usize = 512;
    if m.len() > MAX {
        let mut cut = MAX;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.push_str("...");
    }
    m
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A response frame: `{"id", "result"}` or `{"id", "error"}`. Unknown
/// fields are ignored (later versions may add optional ones). `Debug` does
/// not print the result, which may hold plaintext or key material.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id; null for errors that belong to no request.
    pub id: Option<u64>,
    /// The result object on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("id", &self.id)
            .field("result", &self.result.as_ref().map(|_| "[redacted]"))
            .field("error", &self.error)
            .finish()
    }
}

impl Response {
    /// A success response.
    pub fn ok(id: u64, result: Value) -> Self {
        Self {
            id: Some(id),
            result: Some(result),
            error: None,
        }
    }

    /// An error response; `id` None for errors that belong to no request.
    pub fn err(id: Option<u64>, error: ErrorBody) -> Self {
        Self {
            id,
            result: None,
            error: Some(error),
        }
    }

    /// An error response with a new body.
    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::err(id, ErrorBody::new(code, message))
    }

    /// Splits into the typed result or the error.
    pub fn into_result<T: DeserializeOwned>(self) -> Result<T, ErrorBody> {
        match (self.result, self.error) {
            (_, Some(e)) => Err(e),
            (Some(v), None) => serde_json::from_value(v).map_err(|e| {
                ErrorBody::new(
                    ErrorCode::Internal,
                    format!("result has an unexpected shape: {e}"),
                )
            }),
            (None, None) => Err(ErrorBody::new(
                ErrorCode::Internal,
                "response has neither result nor error",
            )),
        }
    }
}
