//! `hsm_token = ["serial:...", "label:..."]`: slots named by their token.

use hsmd_e2e::{base_config, run_hsmd_to_exit, Daemon, Token};
use hsmd_protocol::Status;

fn by_token(token: &Token, selector: &str) -> String {
    base_config(token, "").replace(
        &format!("hsm_slot = [{}]", token.slot),
        &format!("hsm_token = [\"{selector}\"]"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_found_by_label_and_by_serial() {
    let token = Token::new("alpha");
    let beta = token.init_token("beta");

    let mut d = Daemon::start_with(&token, &by_token(&token, "label:beta"), &[]);
    let c = d.client().await;
    assert_eq!(c.server_hello().slots, vec![beta]);
    let st = c.call(None, &Status {}).await.unwrap();
    let serial = st.slots[0].serial.clone();
    assert_eq!(st.slots[0].token_label, "beta");
    assert!(d
        .log_text()
        .contains(&format!("the token labelled \"beta\" is in slot {beta}")));
    drop(c);
    d.stop();

    let d = Daemon::start_with(&token, &by_token(&token, &format!("serial:{serial}")), &[]);
    assert_eq!(d.client().await.server_hello().slots, vec![beta]);
}

#[test]
fn a_missing_token_stops_hsmd_listing_the_slots() {
    let token = Token::new("alpha");
    let (status, err) = run_hsmd_to_exit(&token, &by_token(&token, "label:gamma"), &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("gamma") && err.contains("\"alpha\""), "{err}");
}
