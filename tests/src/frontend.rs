//! The real `kms-frontend` binary in front of a test hsmd: started on an
//! ephemeral port with its access-rights database in the token's directory,
//! ready when it logs "listening on http://ADDR" or "listening on
//! https://ADDR" (never after a sleep), stopped with SIGTERM and restarted
//! with other flags on the same database, killed when dropped. HTTP goes
//! through `reqwest`: the frontend's own client, or the caller's (`*_with`,
//! e.g. an HTTPS client from [`https_client`] with a client certificate or
//! a bearer token).

use crate::process::{terminate, Stderr};
use crate::{bin, config_with_admins, HarnessError, Launch, Token, START_TIMEOUT};
use serde_json::Value;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What kms-frontend logs once it accepts connections, followed by its
/// URL (`http://ADDR` or `https://ADDR`).
const READY: &str = "listening on ";

/// How long one HTTP exchange may take before the test counts the frontend
/// as hung (a KMS answer takes milliseconds; RSA key generation seconds).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The hsmd configuration of frontend tests: [`config_with_admins`] with
/// the KMS user `admin` as the only HSM admin and the tests' own unix user,
/// root (the frontend's user), listed in `frontends`; `extra` is appended.
pub fn frontend_hsmd_config(token: &Token, extra: &str) -> String {
    config_with_admins(
        token,
        "[\"admin\"]",
        &format!("frontends = [\"root\"]\n{extra}"),
    )
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!("HTTP {} body is not JSON ({e}): {}", self.status, self.body)
        })
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.body)
    }
}

/// A running kms-frontend.
pub struct Frontend {
    child: Option<Child>,
    /// `http://host:port` or `https://host:port`: where it listens.
    url: String,
    /// The flags of every start: port, hostname, hsmd socket, database.
    base_args: Vec<OsString>,
    /// Every stderr line of every start so far (empty when
    /// [`Launch::log_file`] took them).
    pub log: Arc<Mutex<Vec<String>>>,
    /// stderr of the current start, from the lines not yet looked at.
    stderr: Option<Stderr>,
    /// Binary, environment and log file of every start.
    launch: Launch,
    http: reqwest::Client,
}

impl Frontend {
    /// Starts `kms-frontend --port 0 --hostname 127.0.0.1 --hsmd-socket
    /// <socket> --sqlite-path <token dir>/kms.db` plus `extra`, and waits
    /// until it listens. Panics with its log when it exits or does not
    /// listen within [`START_TIMEOUT`].
    pub fn start(token: &Token, socket: &Path, extra: &[&str]) -> Self {
        Self::try_start(token, socket, extra, Launch::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Frontend::start`] with `launch` (binary, environment, log file),
    /// or why it does not listen.
    pub fn try_start(
        token: &Token,
        socket: &Path,
        extra: &[&str],
        launch: Launch,
    ) -> Result<Self, HarnessError> {
        let base_args: Vec<OsString> = vec![
            "--port".into(),
            "0".into(),
            "--hostname".into(),
            "127.0.0.1".into(),
            "--hsmd-socket".into(),
            socket.into(),
            "--sqlite-path".into(),
            token.path("kms.db").into(),
        ];
        let mut f = Self {
            child: None,
            url: String::new(),
            base_args,
            log: Arc::new(Mutex::new(Vec::new())),
            stderr: None,
            launch,
            http: reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .build()
                .map_err(|e| HarnessError(format!("HTTP client: {e}")))?,
        };
        f.try_spawn(extra)?;
        Ok(f)
    }

    fn try_spawn(&mut self, extra: &[&str]) -> Result<(), HarnessError> {
        if self.child.is_some() {
            return Err(HarnessError("kms-frontend is already running".into()));
        }
        let mut cmd = Command::new(self.launch.binary("kms-frontend")?);
        cmd.args(&self.base_args)
            .args(extra)
            .env("KMS_LOG", "info")
            .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
            .env_remove("COSMIAN_KMS_CONF")
            .env_remove("KMS_TLS_P12_PASSWORD");
        let (child, stderr) = self.launch.spawn(&mut cmd, "kms-frontend", &self.log)?;
        self.child = Some(child);
        self.stderr = Some(stderr);
        let line = self.try_wait_for_log(READY)?;
        let url = line
            .split(READY)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
            .ok_or_else(|| HarnessError(format!("no http:// or https:// URL in {line:?}")))?;
        self.url = url.to_owned();
        Ok(())
    }

    /// Blocks until the current start logs a line holding `needle` (after
    /// the lines already looked at); panics with the log when it exits or
    /// [`START_TIMEOUT`] passes.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        self.try_wait_for_log(needle)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Frontend::wait_for_log`] (one deadline for the whole wait), or why
    /// the line did not come.
    fn try_wait_for_log(&mut self, needle: &str) -> Result<String, HarnessError> {
        let (Some(child), Some(stderr)) = (self.child.as_mut(), self.stderr.as_mut()) else {
            return Err(HarnessError("kms-frontend is not running".into()));
        };
        stderr.wait_for(
            child,
            "kms-frontend",
            needle,
            START_TIMEOUT,
            &self.log,
            || false,
        )
    }

    /// Its pid (0 when stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// `http://host:port` (or `https://`) of the current start.
    pub fn base_url(&self) -> String {
        self.url.clone()
    }

    /// `host:port` of the current start (for raw TCP).
    pub fn addr(&self) -> &str {
        self.url
            .split_once("://")
            .map_or(&self.url, |(_, addr)| addr)
    }

    /// The frontend's stderr so far (all starts).
    pub fn log_text(&self) -> String {
        match &self.stderr {
            Some(stderr) => stderr.text(&self.log),
            None => self
                .log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .join("\n"),
        }
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("kms-frontend running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("kill");
        child.wait().expect("wait kms-frontend")
    }

    /// SIGTERM and wait at most `timeout` (then SIGKILL and an error).
    pub fn try_stop(&mut self, timeout: Duration) -> Result<ExitStatus, HarnessError> {
        let child = self
            .child
            .take()
            .ok_or_else(|| HarnessError("kms-frontend is not running".into()))?;
        terminate(child, "kms-frontend", timeout)
    }

    /// Stops (SIGTERM; it must exit 0) and starts again with the same base
    /// flags (same hsmd, same database) and `extra` instead of the previous
    /// extra flags; waits until it listens again.
    pub fn restart(&mut self, extra: &[&str]) {
        let status = self.stop();
        assert!(
            status.success(),
            "kms-frontend exited {status} on SIGTERM; its log:\n{}",
            self.log_text()
        );
        self.try_spawn(extra).unwrap_or_else(|e| panic!("{e}"));
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Reply {
        exchange(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}\nkms-frontend log:\n{}", self.log_text()))
    }

    /// `POST /kmip/2_1` with the JSON TTLV `body`.
    pub async fn kmip(&self, body: &Value) -> Reply {
        self.kmip_with(&self.http, body).await
    }

    /// `POST /kmip/2_1` with the JSON TTLV `body`, sent by `client`.
    pub async fn kmip_with(&self, client: &reqwest::Client, body: &Value) -> Reply {
        self.post_with(client, "/kmip/2_1", body.to_string()).await
    }

    /// `POST path` with `body` as is (content type JSON).
    pub async fn post_raw(&self, path: &str, body: String) -> Reply {
        self.post_with(&self.http, path, body).await
    }

    /// `POST path` with `body` as is (content type JSON), sent by `client`.
    pub async fn post_with(&self, client: &reqwest::Client, path: &str, body: String) -> Reply {
        let req = self.post_request(client, path, body);
        self.send(req, &format!("POST {path}")).await
    }

    /// [`Frontend::post_with`], or why no HTTP answer came (e.g. the TLS
    /// handshake failed).
    pub async fn try_post_with(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: String,
    ) -> Result<Reply, reqwest::Error> {
        exchange(self.post_request(client, path, body)).await
    }

    fn post_request(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: String,
    ) -> reqwest::RequestBuilder {
        client
            .post(format!("{}{path}", self.base_url()))
            .header("content-type", "application/json")
            .body(body)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.get_with(&self.http, path).await
    }

    /// `GET path`, sent by `client`.
    pub async fn get_with(&self, client: &reqwest::Client, path: &str) -> Reply {
        self.send(self.get_request(client, path), &format!("GET {path}"))
            .await
    }

    /// [`Frontend::get_with`], or why no HTTP answer came (e.g. the TLS
    /// handshake failed).
    pub async fn try_get_with(
        &self,
        client: &reqwest::Client,
        path: &str,
    ) -> Result<Reply, reqwest::Error> {
        exchange(self.get_request(client, path)).await
    }

    fn get_request(&self, client: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
        client.get(format!("{}{path}", self.base_url()))
    }

    /// `method path` with `body` (empty: none), as the fixtures describe
    /// an exchange.
    pub async fn request(&self, method: &str, path: &str, body: String) -> Reply {
        match method {
            "GET" => self.get(path).await,
            "POST" => self.post_raw(path, body).await,
            other => panic!("no such method in the fixtures: {other}"),
        }
    }
}

/// Sends `req`; its status and body.
async fn exchange(req: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let body = resp.text().await?;
    Ok(Reply { status, body })
}

/// An HTTPS client (rustls, [`HTTP_TIMEOUT`]) that trusts only the CA
/// `server_ca_pem`; add a client identity or default headers before
/// `build()`.
pub fn https_client(server_ca_pem: &str) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(server_ca_pem.as_bytes()).expect("server CA PEM");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(HTTP_TIMEOUT)
}

impl Drop for Frontend {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `kms-frontend args` to its exit (configurations it must refuse);
/// returns its exit status and stderr.
pub fn run_frontend_to_exit<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (ExitStatus, String) {
    let out = Command::new(bin("kms-frontend"))
        .args(args)
        .env_remove("COSMIAN_KMS_CONF")
        .stdin(Stdio::null())
        .output()
        .expect("run kms-frontend");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts `reply` has `status` and a body holding `needle`; on failure
/// the message holds `what`, the reply and the frontend's log.
pub fn expect(what: &str, reply: &Reply, status: u16, needle: &str, fe: &Frontend) {
    assert_eq!(
        reply.status,
        status,
        "{what}: {reply}\nkms-frontend log:\n{}",
        fe.log_text()
    );
    assert!(
        reply.body.contains(needle),
        "{what}: the body does not hold {needle:?}: {reply}"
    );
}
