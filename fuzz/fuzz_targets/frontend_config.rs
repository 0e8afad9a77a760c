//! kms-frontend's configuration (docs/kms-frontend.md): the TOML file
//! (`config::parse_file`), then merged with no flags and checked
//! (`config::merge`).
#![no_main]

use kms_frontend::config::{merge, parse_file, Args};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_file(Path::new("/etc/kms-frontend/kms.toml"), text) {
        Ok(file) => {
            if let Err(e) = merge(Args::default(), file) {
                let _ = e.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
