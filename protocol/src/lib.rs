//! hsmd wire protocol, version 1 (see `docs/protocol.md`, the public contract).
//!
//! - [`codec`]: the frame codec, a 4-byte unsigned big-endian length then that
//!   many bytes of UTF-8 JSON holding one object.
//! - [`message`]: hello frames, requests, responses and error bodies.
//! - [`ops`]: one parameter type per operation, with its result type.
//! - [`client`]: an async client that pipelines requests over one connection
//!   and matches responses by `id`.
//!
//! This crate has no PKCS#11 code and starts no tokio runtime of its own.

// No unwrap, expect or panic outside tests: bad input gets an answer, never
// a crash (docs/design.md "Rules").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod b64;
pub mod client;
pub mod codec;
pub mod error;
#[cfg(feature = "log-filter")]
pub mod log_filter;
pub mod message;
pub mod ops;
pub mod strict;
pub mod uid;

pub use client::{Client, ClientError};
pub use codec::{frame_codec, DEFAULT_MAX_FRAME_LEN};
pub use error::{ErrorBody, ErrorCode};
pub use message::{ClientHello, Request, RequestDecodeError, Response, ServerHello};
pub use ops::*;
pub use uid::{KeyUid, Label, UidError};

/// The protocol version this crate speaks (docs/protocol.md "hsmd wire protocol, version 1").
pub const PROTOCOL_VERSION: u32 = 1;
