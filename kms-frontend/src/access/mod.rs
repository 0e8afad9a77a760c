//! Access rights: who may use which HSM key for what ([`policy`]), kept in
//! SQLite ([`store`]) and managed through the reference's `/access/*`
//! endpoints ([`routes`]).

pub mod policy;
pub mod routes;
pub mod store;
