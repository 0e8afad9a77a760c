//! The Unix-socket server of PROTOCOL.md: listener, peer identification and
//! policy, per-connection protocol handling, request dispatch.

pub mod connection;
pub mod dispatch;
pub mod gate;
mod hot;
pub mod listener;
pub mod peer;
