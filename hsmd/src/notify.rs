//! systemd readiness protocol (sd_notify(3)): `STATUS=` while starting,
//! `READY=1` once every slot is logged in and the socket listens,
//! `WATCHDOG=1` at half of `WATCHDOG_USEC` while the slot workers answer,
//! `STOPPING=1` on shutdown. Without `NOTIFY_SOCKET` every call is a no-op.

use sd_notify::NotifyState;
use std::time::Duration;

/// Sends `STATUS=<text>` (and logs it).
pub fn status(text: &str) {
    tracing::debug!("status: {text}");
    send(&[NotifyState::Status(text)]);
}

/// Sends `READY=1` with a final status line.
pub fn ready(text: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(text)]);
}

/// Sends `STOPPING=1`.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: answering requests in flight"),
    ]);
}

/// Sends `WATCHDOG=1`.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// Half the watchdog period systemd asked for (`WATCHDOG_USEC`, for this
/// process), or None when the watchdog is off.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("sd_notify failed: {e}");
    }
}
