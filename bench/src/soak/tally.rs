//! What the soak's clients did: operations and errors counted per minute
//! and in total, with the first message of each error kind.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Longest error message kept, in characters.
const MESSAGE_MAX: usize = 300;

/// Operations (successful or not) by name, and errors by kind
/// (`"<code> in <operation>"`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Operations sent, by name (e.g. `"hsmd encrypt"`, `"kmip Create"`).
    pub ops: BTreeMap<&'static str, u64>,
    /// Failed operations, by `"<code> in <operation>"`.
    pub errors: BTreeMap<String, u64>,
}

impl Counts {
    /// Every operation sent.
    pub fn total_ops(&self) -> u64 {
        self.ops.values().sum()
    }

    /// Every failed operation.
    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    fn add(&mut self, other: &Counts) {
        for (k, v) in &other.ops {
            *self.ops.entry(k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// Why an operation failed: its error code (hsmd's `code` and `ckr`, or
/// `HTTP <status>`, or `connection`, `wrong answer`) and message.
#[derive(Debug)]
pub struct Failure {
    /// What a client branches on.
    pub code: String,
    /// For people.
    pub message: String,
    /// The connection is gone: the client reconnects.
    pub reconnect: bool,
}

impl Failure {
    /// A failure that leaves the connection usable.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            reconnect: false,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    minute: Counts,
    total: Counts,
    first_message: BTreeMap<String, String>,
}

/// Shared by every client of the soak.
#[derive(Debug, Default)]
pub struct Tally {
    inner: Mutex<Inner>,
}

impl Tally {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one `op` and, when it failed, its error.
    pub fn record(&self, op: &'static str, result: &Result<(), Failure>) {
        let mut inner = self.lock();
        *inner.minute.ops.entry(op).or_default() += 1;
        if let Err(f) = result {
            let kind = format!("{} in {op}", f.code);
            *inner.minute.errors.entry(kind.clone()).or_default() += 1;
            inner
                .first_message
                .entry(kind)
                .or_insert_with(|| f.message.chars().take(MESSAGE_MAX).collect());
        }
    }

    /// What happened since the previous call (added to the total).
    pub fn take_minute(&self) -> Counts {
        let mut inner = self.lock();
        let minute = std::mem::take(&mut inner.minute);
        inner.total.add(&minute);
        minute
    }

    /// Everything counted by [`Tally::take_minute`] so far.
    pub fn total(&self) -> Counts {
        self.lock().total.clone()
    }

    /// The first message of each error kind.
    pub fn first_messages(&self) -> BTreeMap<String, String> {
        self.lock().first_message.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_add_up_to_the_total() {
        let t = Tally::default();
        t.record("a", &Ok(()));
        t.record("a", &Err(Failure::new("busy", "first")));
        let m1 = t.take_minute();
        t.record("b", &Err(Failure::new("busy", "second")));
        t.record("a", &Err(Failure::new("busy", "third")));
        let m2 = t.take_minute();
        assert_eq!((m1.total_ops(), m1.total_errors()), (2, 1));
        assert_eq!((m2.total_ops(), m2.total_errors()), (2, 2));
        let total = t.total();
        assert_eq!(total.ops["a"], 3);
        assert_eq!(total.errors["busy in a"], 2);
        assert_eq!(total.errors["busy in b"], 1);
        assert_eq!(t.first_messages()["busy in a"], "first");
    }
}
