//! `kms-frontend` binary: see the library's documentation.
//! (Being built up: for now it checks its configuration, connects to hsmd
//! and prints the hello and the status.)

use anyhow::{Context, Result};
use clap::Parser;
use hsmd_protocol::{Client, Status};
use kms_frontend::config;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let config = config::load(config::Args::parse())?;
    let client = Client::connect(
        &config.hsmd_socket,
        concat!("kms-frontend/", env!("CARGO_PKG_VERSION")),
    )
    .await
    .context("HSM service unavailable")?;
    println!("hello: {}", serde_json::to_string(client.server_hello())?);
    let status = client.call(None, &Status {}).await.context("status")?;
    println!("status: {}", serde_json::to_string(&status)?);
    Ok(())
}
