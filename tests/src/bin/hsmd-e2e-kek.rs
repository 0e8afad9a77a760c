//! Runs one token's steps of the shared KEK (`hsmd_e2e::shared_kek`) in a
//! process of its own: SoftHSMv2 reads `SOFTHSM2_CONF` once per process.

fn main() -> std::process::ExitCode {
    hsmd_e2e::shared_kek::helper_main()
}
