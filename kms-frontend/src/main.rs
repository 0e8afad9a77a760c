//! `kms-frontend`: for now, connects to hsmd as a frontend would and prints
//! the hello and the status. The KMS itself (KMIP over HTTP) is to come.

use anyhow::{Context, Result};
use clap::Parser;
use hsmd_protocol::{Client, Status};
use std::path::PathBuf;

/// Connects to hsmd and prints what it says about itself.
#[derive(Debug, Parser)]
#[command(name = "kms-frontend", version)]
struct Args {
    /// hsmd's socket.
    #[arg(long, default_value = "/run/hsmd/hsmd.sock")]
    hsmd_socket: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = Client::connect(
        &args.hsmd_socket,
        concat!("kms-frontend/", env!("CARGO_PKG_VERSION")),
    )
    .await
    .context("HSM service unavailable")?;
    println!("hello: {}", serde_json::to_string(client.server_hello())?);
    let status = client.call(None, &Status {}).await.context("status")?;
    println!("status: {}", serde_json::to_string(&status)?);
    Ok(())
}
