//! hsmd's configuration (docs/configuration.md): the TOML file
//! (`config::parse_file`), then merged with no flags and checked
//! (`Config::resolve`).
#![no_main]

use clap::Parser;
use hsmd::config::cli::Cli;
use hsmd::config::{parse_file, Config};
use hsmd::pin::sources::PinSources;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/hsmd/hsmd.toml");
    match parse_file(path, text) {
        Ok(file) => {
            let Ok(cli) = Cli::try_parse_from(["hsmd"]) else {
                return;
            };
            let _ = Config::resolve(cli, file, PinSources::default());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
