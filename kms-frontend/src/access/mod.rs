//! Access rights: who may use which HSM key for what ([`policy`]), kept in
//! SQLite ([`store`]). The `/access/*` endpoints that manage them are
//! `crate::http::access`; nothing here knows HTTP.

pub mod policy;
pub mod store;
