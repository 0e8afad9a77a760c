//! One worker per configured slot: `sessions_per_slot` threads, each owning
//! one PKCS#11 session, fed by one bounded queue so a slow token applies
//! back-pressure to the async side instead of blocking tokio threads or
//! growing memory (docs/design.md "PKCS#11 engine rules").

use super::cardpath;
use super::error::{is_session_lost, OpError};
use super::keys::KeyCache;
use super::library::Library;
use super::login::Login;
use super::mechanisms::Mechanisms;
use super::profile::Profile;
use crate::pin::SlotPin;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use hsmd_protocol::{ErrorBody, ErrorCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a healthy slot is polled (`C_GetSlotInfo`, `C_GetSessionInfo`).
const POLL_HEALTHY: Duration = Duration::from_secs(2);
/// First wait before polling a slot that is down again; doubled up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between polls of a slot that is down.
const POLL_MAX: Duration = Duration::from_secs(4);

/// What hsmd makes of a slot, for `status` and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Serving.
    Ready,
    /// The token is gone (`CKR_TOKEN_NOT_PRESENT`, `CKR_DEVICE_REMOVED`, no
    /// `CKF_TOKEN_PRESENT`); hsmd polls and logs in again when it is back.
    TokenNotPresent,
    /// The PIN was refused or the token forbids another try: hsmd will not
    /// log in on its own again.
    PinRejected,
    /// Another token failure (`CKR_DEVICE_ERROR`, ...).
    Error,
}

impl SlotState {
    /// The name `status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::TokenNotPresent => "token_not_present",
            Self::PinRejected => "pin_rejected",
            Self::Error => "error",
        }
    }
}

/// What every session thread of a slot shares.
pub struct SlotContext {
    /// Configured slot ID.
    pub id: u64,
    /// The cryptoki slot.
    pub slot: Slot,
    /// The module.
    pub pkcs11: Pkcs11,
    /// Login state and PIN.
    pub login: Login,
    /// Mechanisms the token offered at start-up.
    pub mechanisms: Mechanisms,
    /// Key objects the hot operations looked up (cleared on create and
    /// destroy), and the lock that orders lookups against creations and
    /// destructions ([`KeyCache::changing`] also makes "label is free" and
    /// "create" atomic).
    pub keys: KeyCache,
    /// The slot's state and the last failure that set it.
    health: Mutex<(SlotState, Option<String>)>,
    /// `health` is `Ready`: read without the lock on every request.
    ready: AtomicBool,
    /// Set when an operation still failed with `CKR_DEVICE_ERROR` on a fresh
    /// session: the library lost its reader service (pcscd restarted) and
    /// answers so until `C_Finalize` + `C_Initialize` ([`reinitialize`]).
    needs_reinit: AtomicBool,
}

impl SlotContext {
    /// The limits of the token's model (held with its mechanisms).
    pub fn profile(&self) -> &Profile {
        self.mechanisms.profile()
    }

    /// The slot's state and last error.
    pub fn health(&self) -> (SlotState, Option<String>) {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_health(&self, state: SlotState, error: Option<String>) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if h.0 != state {
            match &error {
                Some(e) => tracing::warn!(slot = self.id, "slot now {}: {e}", state.as_str()),
                None => tracing::info!(slot = self.id, "slot now {}", state.as_str()),
            }
        }
        h.0 = state;
        self.ready
            .store(state == SlotState::Ready, Ordering::Release);
        if error.is_some() {
            h.1 = error;
        }
    }

    /// Updates the state from an operation's outcome: success is `ready`; a
    /// missing token, a refused PIN or a token failure change it; refusals of
    /// the request itself (bad input, unknown key, ...) do not.
    fn note<T>(&self, r: &Result<T, OpError>) {
        let Err(e) = r else {
            if !self.ready.load(Ordering::Acquire) {
                self.set_health(SlotState::Ready, None);
            }
            return;
        };
        if e.rv() == Some(RvError::DeviceError) {
            self.needs_reinit.store(true, Ordering::Release);
        }
        let state = match e.rv() {
            Some(RvError::DeviceRemoved | RvError::TokenNotPresent) => SlotState::TokenNotPresent,
            Some(rv) if is_session_lost(rv) => SlotState::Error,
            _ if self.login.blocked_reason().is_some() => SlotState::PinRejected,
            _ => return,
        };
        let why = match e {
            OpError::Pkcs11(ck) => cardpath::call_failed(self.id, ck),
            OpError::Refused(body) => body.message.clone(),
        };
        self.set_health(state, Some(why));
    }
}

/// A session thread's state: the slot and its (re)opened session.
pub struct Worker {
    ctx: Arc<SlotContext>,
    session: Option<Session>,
}

/// The worker's session, opened (and logged in) first when there is none.
/// Takes the two fields apart so the caller can keep using `ctx`.
fn open_session<'a>(
    ctx: &SlotContext,
    session: &'a mut Option<Session>,
) -> Result<&'a Session, OpError> {
    if session.is_none() {
        let s = ctx.pkcs11.open_rw_session(ctx.slot)?;
        ctx.login.ensure(&ctx.pkcs11, ctx.slot, &s)?;
        *session = Some(s);
    }
    session
        .as_ref()
        .ok_or_else(|| OpError::new(ErrorCode::Internal, "session vanished"))
}

impl Worker {
    fn open(&mut self) -> Result<&Session, OpError> {
        open_session(&self.ctx, &mut self.session)
    }

    /// The slot this worker serves.
    pub fn ctx(&self) -> &SlotContext {
        &self.ctx
    }

    /// Runs `f` on this thread's session, opening (and logging in) first when
    /// needed. When the session or its login was lost
    /// (`CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`,
    /// `CKR_USER_NOT_LOGGED_IN`, `CKR_DEVICE_REMOVED`, ...), the session is
    /// dropped and `f` runs once more on a fresh one.
    pub fn with_session<T>(
        &mut self,
        mut f: impl FnMut(&Session, &SlotContext) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        let r = self.with_session_once_retried(&mut f);
        self.ctx.note(&r);
        r
    }

    fn with_session_once_retried<T>(
        &mut self,
        f: &mut impl FnMut(&Session, &SlotContext) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        let mut retried = false;
        loop {
            let result = match open_session(&self.ctx, &mut self.session) {
                Ok(s) => f(s, &self.ctx),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.rv().is_some_and(is_session_lost) => {
                    // The old handle is dead; closing it is harmless and frees it in the module.
                    self.session = None;
                    // After a token is pulled and put back, object handles may
                    // name other objects: look every key up again.
                    self.ctx.keys.clear();
                    if retried {
                        return Err(e);
                    }
                    retried = true;
                    tracing::info!(
                        slot = self.ctx.id,
                        "session lost ({e}); retrying once on a new session"
                    );
                }
                other => return other,
            }
        }
    }
}

impl Worker {
    /// One poll of the slot (PKCS#11 v2.40 section 5.5 `C_GetSlotInfo`;
    /// never `C_WaitForSlotEvent`, which blocks in sc-hsm-embedded even with
    /// `CKF_DONT_BLOCK`). A missing token drops the session; a token that is
    /// back gets a new session and login (never when the PIN was refused:
    /// [`Login::ensure`] refuses on its own); a healthy one is checked with
    /// `C_GetSessionInfo`.
    fn probe(&mut self) {
        let ctx = self.ctx.clone();
        match ctx.pkcs11.get_slot_info(ctx.slot) {
            Ok(info) if !info.token_present() => {
                self.session = None;
                ctx.keys.clear();
                ctx.set_health(
                    SlotState::TokenNotPresent,
                    Some(cardpath::no_token(ctx.id, info.slot_description())),
                );
                return;
            }
            Ok(_) => {}
            Err(e) => {
                if let cryptoki::error::Error::Pkcs11(RvError::DeviceError, _) = e {
                    ctx.needs_reinit.store(true, Ordering::Release);
                }
                ctx.set_health(SlotState::Error, Some(cardpath::call_failed(ctx.id, &e)));
                return;
            }
        }
        if ctx.health().0 == SlotState::PinRejected {
            return;
        }
        let was = ctx.health().0;
        if self.with_session(|s, _| Ok(s.get_session_info()?)).is_ok() && was != SlotState::Ready {
            tracing::info!(
                slot = ctx.id,
                "token back in slot {}: new session open{}",
                ctx.id,
                if ctx.login.is_no_login() {
                    ""
                } else {
                    " and logged in"
                }
            );
        }
    }
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// Every slot's queue and number of session threads. Process-wide because
/// what it serves is: a process loads one PKCS#11 module, and `C_Finalize`
/// (in [`reinitialize`]) ends the sessions of every slot of that module, so
/// the poller of any one slot must reach the session threads of all of them.
/// Written once per slot at start-up ([`OpenSlot::spawn`]).
static SLOTS: Mutex<Vec<(async_channel::Sender<Job>, usize)>> = Mutex::new(Vec::new());
/// One re-initialization at a time: process-wide for the same reason as
/// [`SLOTS`] (two slots' pollers may both see `CKR_DEVICE_ERROR`, and the
/// module is finalized once for all).
static REINIT: Mutex<()> = Mutex::new(());
/// How long a re-initialization waits for every session thread to close its session.
const REINIT_WAIT: Duration = Duration::from_secs(10);

/// A count and a flag the re-initialization and the session threads meet on.
#[derive(Default)]
struct Meeting {
    closed: Mutex<(usize, bool)>,
    cond: std::sync::Condvar,
}

impl Meeting {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, bool)> {
        self.closed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self) {
        self.lock().1 = true;
        self.cond.notify_all();
    }
}

/// `C_Finalize` then `C_Initialize` (PKCS#11 v2.40 section 5.4), for a
/// library that answers `CKR_DEVICE_ERROR` until then (sc-hsm-embedded after
/// pcscd restarted). Every session thread of every slot first closes its
/// session and waits (sc-hsm-embedded deadlocks in `C_Finalize` while a
/// session is open); afterwards they reopen and log in on their next job.
/// Gives up, leaving the library as it is, when a thread does not get there
/// within `REINIT_WAIT` (10 s) or a slot is shutting down.
///
/// Errors: the threads did not all stop, or `C_Initialize` failed.
pub fn reinitialize(pkcs11: &Pkcs11) -> Result<(), String> {
    let _one = REINIT.lock().unwrap_or_else(|p| p.into_inner());
    let slots = SLOTS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let total: usize = slots.iter().map(|(_, n)| n).sum();
    let meeting = Arc::new(Meeting::default());
    let mut sent = 0;
    for (queue, n) in &slots {
        for _ in 0..*n {
            let m = meeting.clone();
            let job: Job = Box::new(move |w| {
                w.session = None;
                w.ctx.keys.clear();
                let mut g = m.lock();
                g.0 += 1;
                m.cond.notify_all();
                let deadline = std::time::Instant::now() + REINIT_WAIT * 2;
                while !g.1 && std::time::Instant::now() < deadline {
                    g = m
                        .cond
                        .wait_timeout(g, REINIT_WAIT)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            });
            if queue.send_blocking(job).is_ok() {
                sent += 1;
            }
        }
    }
    let all_closed = {
        let g = meeting.lock();
        let (g, _) = meeting
            .cond
            .wait_timeout_while(g, REINIT_WAIT, |g| g.0 < total)
            .unwrap_or_else(|p| p.into_inner());
        g.0 == total && sent == total
    };
    if !all_closed {
        meeting.release();
        return Err("not every session thread closed its session in time".into());
    }
    if let Err(e) = pkcs11.clone().finalize() {
        tracing::warn!("C_Finalize failed: {e}");
    }
    let result = match pkcs11.initialize(cryptoki::context::CInitializeArgs::new(
        cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
    )) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
            Ok(())
        }
        Err(e) => Err(format!("C_Initialize failed: {e}")),
    };
    meeting.release();
    result
}

/// Start-up failure of one slot.
#[derive(Debug, thiserror::Error)]
#[error("slot {slot}: {message}")]
pub struct SlotStartError {
    /// Slot ID.
    pub slot: u64,
    /// True when the PIN was refused or the token forbids another try: a
    /// restart would not help and could lock the PIN.
    pub pin_problem: bool,
    /// What went wrong, one sentence (never the PIN).
    pub message: String,
}

/// A slot whose token is open and logged in, before its threads start.
pub struct OpenSlot {
    ctx: Arc<SlotContext>,
    first: Worker,
}

impl OpenSlot {
    /// Opens slot `id` of a token whose model has the limits `profile`:
    /// checks it exists, reads its mechanisms, opens the first session and
    /// logs in (refusing on final-try or locked PIN flags). Runs on the
    /// calling thread, so hsmd can drop privileges before any thread starts.
    ///
    /// Errors: unknown slot (listing every slot), PIN refused or locked (naming
    /// the slot and the `CKR_*`/flag, never the PIN), PKCS#11 failures.
    pub fn open(
        lib: &Library,
        id: u64,
        pin: SlotPin,
        profile: Profile,
    ) -> Result<Self, SlotStartError> {
        let fail = |message: String| SlotStartError {
            slot: id,
            pin_problem: false,
            message,
        };
        let slot = lib.slot(id).map_err(|e| fail(e.to_string()))?;
        // Reader, card and token first: sc-hsm-embedded answers a bare
        // CKR_TOKEN_NOT_PRESENT or CKR_DEVICE_ERROR to everything else.
        let info = lib
            .pkcs11
            .get_slot_info(slot)
            .map_err(|e| fail(cardpath::call_failed(id, &e)))?;
        if !info.token_present() {
            return Err(fail(cardpath::no_token(id, info.slot_description())));
        }
        let token = lib
            .pkcs11
            .get_token_info(slot)
            .map_err(|e| fail(cardpath::call_failed(id, &e)))?;
        let needs_pin = !matches!(pin, SlotPin::NoLogin);
        if let Some(why) = cardpath::uninitialized(
            id,
            token.token_initialized(),
            token.user_pin_initialized() || !needs_pin,
        ) {
            return Err(fail(why));
        }
        let mut mechanisms = Mechanisms::new(
            id,
            super::mechanisms::list_raw(&lib.path, id)
                .map_err(|e| fail(format!("cannot list the token's mechanisms: {e}")))?,
            profile,
        );
        for m in super::mechanisms::SIZED {
            if mechanisms.offers(m) {
                if let Ok(info) = lib.pkcs11.get_mechanism_info(slot, m) {
                    mechanisms.set_key_sizes(m, info.min_key_size(), info.max_key_size());
                }
            }
        }
        let ctx = Arc::new(SlotContext {
            id,
            slot,
            pkcs11: lib.pkcs11.clone(),
            login: Login::new(id, pin),
            mechanisms,
            keys: KeyCache::default(),
            health: Mutex::new((SlotState::Ready, None)),
            ready: AtomicBool::new(true),
            needs_reinit: AtomicBool::new(false),
        });
        let mut first = Worker {
            ctx: ctx.clone(),
            session: None,
        };
        first.open().map_err(|e| {
            let body = e.into_body(id);
            let pin_problem = matches!(body.code, ErrorCode::NotLoggedIn | ErrorCode::PinLocked);
            SlotStartError {
                slot: id,
                pin_problem,
                message: body.message,
            }
        })?;
        Ok(Self { ctx, first })
    }

    /// Shared slot state.
    pub fn ctx(&self) -> &SlotContext {
        &self.ctx
    }

    /// Starts `sessions` threads behind a queue of `queue_depth` jobs; the
    /// first thread keeps the logged-in session.
    ///
    /// Errors: a thread cannot be started.
    pub fn spawn(self, sessions: usize, queue_depth: usize) -> Result<SlotHandle, SlotStartError> {
        let id = self.ctx.id;
        let (tx, rx) = async_channel::bounded::<Job>(queue_depth.max(1));
        let progress = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        let mut first = Some(self.first);
        for n in 0..sessions.max(1) {
            let mut worker = first.take().unwrap_or_else(|| Worker {
                ctx: self.ctx.clone(),
                session: None,
            });
            let rx = rx.clone();
            let progress = progress.clone();
            let handle = std::thread::Builder::new()
                .name(format!("slot-{id}-{n}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv_blocking() {
                        job(&mut worker);
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .map_err(|e| SlotStartError {
                    slot: id,
                    pin_problem: false,
                    message: format!("cannot start a session thread: {e}"),
                })?;
            threads.push(handle);
        }
        SLOTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((tx.clone(), threads.len()));
        let watch = watch(self.ctx.clone(), tx.clone()).map_err(|e| SlotStartError {
            slot: id,
            pin_problem: false,
            message: format!("cannot start the slot's poller thread: {e}"),
        })?;
        Ok(SlotHandle {
            ctx: self.ctx,
            queue: tx,
            threads: Mutex::new(threads),
            watch: Mutex::new(Some(watch)),
            progress,
            watched: AtomicU64::new(0),
        })
    }
}

/// The poller of a slot: a thread that queues a [`Worker::probe`] every
/// [`POLL_HEALTHY`] while the slot is ready, and with back-off from
/// [`POLL_FIRST`] to [`POLL_MAX`] while it is not, so a token that comes back
/// is logged in again without a request or a restart. It stops when its
/// sender is dropped.
struct Watch {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

fn watch(ctx: Arc<SlotContext>, queue: async_channel::Sender<Job>) -> std::io::Result<Watch> {
    let (stop, stopped) = mpsc::channel::<()>();
    let pending = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new()
        .name(format!("slot-{}-poll", ctx.id))
        .spawn(move || {
            let mut wait = POLL_HEALTHY;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                wait = match ctx.health().0 {
                    SlotState::Ready => POLL_HEALTHY,
                    _ if wait >= POLL_HEALTHY => POLL_FIRST,
                    _ => (wait * 2).min(POLL_MAX),
                };
                if ctx.needs_reinit.swap(false, Ordering::AcqRel) {
                    tracing::warn!(
                        slot = ctx.id,
                        "CKR_DEVICE_ERROR on a fresh session: closing every session and re-initializing the PKCS#11 library (C_Finalize, C_Initialize)"
                    );
                    match reinitialize(&ctx.pkcs11) {
                        Ok(()) => tracing::info!("PKCS#11 library re-initialized; sessions reopen and log in again"),
                        Err(e) => tracing::warn!("re-initializing the PKCS#11 library failed: {e}"),
                    }
                }
                // One probe at a time; a busy queue means requests are probing anyway.
                if pending.swap(true, Ordering::AcqRel) {
                    continue;
                }
                let done = pending.clone();
                let job: Job = Box::new(move |w| {
                    w.probe();
                    done.store(false, Ordering::Release);
                });
                match queue.try_send(job) {
                    Ok(()) => {}
                    Err(async_channel::TrySendError::Full(_)) => {
                        pending.store(false, Ordering::Release)
                    }
                    Err(async_channel::TrySendError::Closed(_)) => break,
                }
            }
        })?;
    Ok(Watch { stop, thread })
}

/// The async side's handle on a slot worker.
pub struct SlotHandle {
    /// Shared slot state.
    ctx: Arc<SlotContext>,
    queue: async_channel::Sender<Job>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The slot's poller.
    watch: Mutex<Option<Watch>>,
    /// Jobs finished so far.
    progress: Arc<AtomicU64>,
    /// `progress` at the previous [`SlotHandle::is_answering`] check.
    watched: AtomicU64,
}

impl SlotHandle {
    /// The configured slot ID.
    pub fn id(&self) -> u64 {
        self.ctx.id
    }

    /// For the watchdog: true when the slot's threads are not stuck, i.e. its
    /// queue is empty or at least one job finished since the previous check.
    pub fn is_answering(&self) -> bool {
        let now = self.progress.load(Ordering::Relaxed);
        let before = self.watched.swap(now, Ordering::Relaxed);
        self.queue.is_empty() || now != before
    }

    /// Runs `f` on one of the slot's session threads and returns its result.
    /// Waits for room in the queue (back-pressure).
    ///
    /// Errors: `busy` when the slot is shutting down.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Worker) -> T + Send + 'static,
    ) -> Result<T, ErrorBody> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |w| {
            let _ = tx.send(f(w));
        });
        let gone = || {
            ErrorBody::new(
                ErrorCode::Busy,
                format!(
                    "slot {} is shutting down; retry on a new connection later",
                    self.ctx.id
                ),
            )
        };
        self.queue.send(job).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Stops taking jobs, lets the threads finish what is queued, closes their
    /// sessions, and logs the application out of the token.
    pub fn shutdown(&self) {
        if let Some(w) = self.watch.lock().unwrap_or_else(|p| p.into_inner()).take() {
            drop(w.stop);
            let _ = w.thread.join();
        }
        self.queue.close();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        if let Ok(s) = self.ctx.pkcs11.open_ro_session(self.ctx.slot) {
            self.ctx.login.logout(&s);
        }
    }
}
