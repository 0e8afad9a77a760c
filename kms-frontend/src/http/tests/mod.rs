//! Tests of the HTTP layer with real keys and certificates (the helpers of
//! `crate::auth::tests`).

mod middleware;
mod serve;
