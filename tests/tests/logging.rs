//! `HSMD_LOG`: debug lines reach stderr when asked for, a filter that does
//! not parse is reported and the default is used (the audit records stay),
//! and a filter that leaves out the audit records says so, even when it
//! would filter out that warning too.

use hsmd_e2e::{base_config, Daemon, Token};
use hsmd_protocol::Random;

fn start(token: &Token, hsmd_log: &str) -> Daemon {
    Daemon::start_with_env(
        token,
        &base_config(token, ""),
        &[],
        &[("HSMD_LOG".into(), hsmd_log.into())],
    )
}

async fn one_request(d: &Daemon) {
    let c = d.client().await;
    let r = c
        .call(None, &Random { len: 8, slot: None })
        .await
        .unwrap_or_else(|e| panic!("random: {e}\n{}", d.log_text()));
    assert_eq!(r.bytes.expose().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_lines_are_written_when_hsmd_log_asks_for_them() {
    let token = Token::new("log-debug");
    let mut d = start(&token, "debug,cryptoki=off");
    one_request(&d).await;
    // "client connected" is logged at debug, then the audit record at info.
    d.wait_for_line("client connected");
    d.wait_for_line("random by root (uid 0) on -: ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_filter_is_reported_and_the_audit_records_stay() {
    let token = Token::new("log-typo");
    // "inf" is a typo of "info": refused, not taken for a target (which
    // would have turned off every line of hsmd's own).
    let mut d = start(&token, "inf, cryptoki::mechanism=off");
    // Logged before "listening", which the start waited for.
    let log = d.log_text();
    let warning = log
        .lines()
        .find(|l| l.contains("is not a log filter"))
        .unwrap_or_else(|| panic!("no warning about HSMD_LOG:\n{log}"));
    assert!(
        warning.contains("HSMD_LOG=\"inf, cryptoki::mechanism=off\"")
            && warning.contains("\"inf\" is not a level"),
        "{warning}"
    );
    one_request(&d).await;
    d.wait_for_line("random by root (uid 0) on -: ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_without_the_audit_records_says_so() {
    let token = Token::new("log-warn");
    // hsmd=info keeps the "listening" line (the start waits for it);
    // hsmd::server=warn leaves out the records of successful requests.
    let mut d = start(&token, "warn,hsmd=info,hsmd::server=warn");
    assert!(
        d.log_text()
            .contains("with this HSMD_LOG, successful requests are not recorded"),
        "{}",
        d.log_text()
    );
    one_request(&d).await;
    d.stop();
    assert!(!d.log_text().contains("random by root"), "{}", d.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_note_is_shown_even_when_the_filter_would_hide_it() {
    let token = Token::new("log-error");
    // Warnings of hsmd::logging itself are filtered out here, and so are
    // all audit records: the note goes to stderr as it is.
    let d = start(
        &token,
        "error,hsmd=info,hsmd::server=error,hsmd::logging=error",
    );
    assert!(
        d.log_text()
            .contains("hsmd: with this HSMD_LOG, no request is recorded"),
        "{}",
        d.log_text()
    );
}

/// At any level, SoftHSMv2's mechanisms that the PKCS#11 binding has no
/// name for are kept silently as numbers (no "Mechanism type N is not
/// supported." line at start-up nor on `status`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mechanism_noise_at_any_level() {
    for level in ["debug", "info"] {
        let token = Token::new("log-mech");
        let mut d = start(&token, level);
        let c = d.client().await;
        let st = c
            .call(None, &hsmd_protocol::Status {})
            .await
            .unwrap_or_else(|e| panic!("status: {e}\n{}", d.log_text()));
        let names = &st.slots[0].mechanisms;
        assert!(
            names.iter().any(|m| m == "CKM_AES_CBC")
                && names.iter().any(|m| m.starts_with("CKM_0x")),
            "named and numbered mechanisms expected: {names:?}"
        );
        drop(c);
        d.stop();
        let log = d.log_text();
        assert!(
            !log.contains("is not supported"),
            "HSMD_LOG={level}: mechanism noise in the log:\n{log}"
        );
    }
}
