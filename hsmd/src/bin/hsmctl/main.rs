//! `hsmctl`: the operator's local client of hsmd (docs/protocol.md). Human-readable
//! output by default, `--json` for scripts. Exits 0 on success, 1 with the
//! error code and message on stderr otherwise.

// No unwrap, expect or panic outside tests: bad input gets an answer, never
// a crash (docs/design.md "Rules").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod args;
mod commands;
mod show;

use anyhow::Result;
use args::{Args, Cmd};
use clap::Parser;
use commands::{
    call, create, decrypt, destroy, encrypt, export, key, keys, random, sign, slots, status,
    verify, Ctl,
};
use hsmd_protocol::{Client, ClientError};
use show::shown;
use std::process::ExitCode;

/// Connects to hsmd at `socket`; a failed connect names the fixes
/// (start hsmd, or point hsmctl at another socket).
async fn connect(socket: &std::path::Path) -> Result<Client> {
    Client::connect(socket, concat!("hsmctl/", env!("CARGO_PKG_VERSION")))
        .await
        .map_err(|e| match e {
            ClientError::Connect { .. } => anyhow::anyhow!(
                "{e}; is hsmd running? (`systemctl status hsmd`), or point hsmctl at another socket with --socket PATH or HSMD_SOCKET=PATH"
            ),
            e => e.into(),
        })
}

/// Runs one subcommand. `Ok(false)` only for `verify` of a signature
/// that is not valid; errors carry hsmd's code and message.
async fn run(args: Args) -> Result<bool> {
    let client = connect(&args.socket).await?;
    let ctl = Ctl {
        client: &client,
        who: args.as_user.as_deref(),
        json: args.json,
    };
    match args.cmd {
        Cmd::Status => status(&ctl).await?,
        Cmd::Slots => slots(&ctl)?,
        Cmd::Keys { slot, kind } => keys(&ctl, slot, kind).await?,
        Cmd::Key { uid } => key(&ctl, uid).await?,
        Cmd::Create(c) => create(&ctl, c).await?,
        Cmd::Encrypt(a) => encrypt(&ctl, a).await?,
        Cmd::Decrypt(a) => decrypt(&ctl, a).await?,
        Cmd::Sign(a) => sign(&ctl, a).await?,
        Cmd::Verify(a) => return verify(&ctl, a).await,
        Cmd::Export { uid } => export(&ctl, uid).await?,
        Cmd::Random { len, slot } => random(&ctl, len, slot).await?,
        Cmd::Destroy { uid } => destroy(&ctl, uid).await?,
        Cmd::Call { op, params } => call(&ctl, &op, params).await?,
    }
    Ok(true)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hsmctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            match e.downcast_ref::<ClientError>().and_then(|c| match c {
                ClientError::Server(b) | ClientError::Refused(b) => Some(b.clone()),
                _ => None,
            }) {
                Some(body) => eprintln!("hsmctl: {}: {}", body.code, shown(&body.message)),
                None => eprintln!("hsmctl: {}", shown(&format!("{e:#}"))),
            }
            ExitCode::FAILURE
        }
    }
}
