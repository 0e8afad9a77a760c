//! The Unix-socket server of docs/protocol.md: listener, peer identification and
//! policy, per-connection protocol handling, request dispatch.

pub mod connection;
pub mod dispatch;
pub mod gate;
mod hello;
mod hot;
pub mod listener;
pub mod peer;
mod reply;
mod writer;

/// Entry points for the fuzz targets (`fuzz/` at the repository root), not
/// an API: the server's decoders exactly as the connection calls them.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::hello::decode_hello;
    pub use super::hot::decode_hot;
}
