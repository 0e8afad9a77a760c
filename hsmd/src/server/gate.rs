//! Connection caps: at most `max_connections` at once, and at most
//! `max_connections_per_user` from one unix uid, so one listed user cannot
//! take every file descriptor (or all of hsmd's memory) from the others.

use hsmd_protocol::{ErrorBody, ErrorCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counts open connections, in total and per peer uid.
#[derive(Debug)]
pub struct Gate {
    max_total: usize,
    max_per_user: usize,
    open: Mutex<(usize, HashMap<u32, usize>)>,
}

/// One admitted connection; leaving frees its place.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<Gate>,
    uid: u32,
}

impl Gate {
    /// A gate with the two caps.
    pub fn new(max_total: usize, max_per_user: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_user,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Admits a connection from `uid`, or says which cap it hit (`busy`).
    pub fn enter(self: &Arc<Self>, uid: u32) -> Result<Ticket, ErrorBody> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.max_total {
            return Err(ErrorBody::new(
                ErrorCode::Busy,
                format!(
                    "hsmd already serves max_connections ({}) connections; retry later",
                    self.max_total
                ),
            ));
        }
        let mine = open.1.entry(uid).or_insert(0);
        if *mine >= self.max_per_user {
            return Err(ErrorBody::new(
                ErrorCode::Busy,
                format!(
                    "uid {uid} already has max_connections_per_user ({}) connections open; close some (pipeline requests on one connection instead)",
                    self.max_per_user
                ),
            ));
        }
        *mine += 1;
        open.0 += 1;
        Ok(Ticket {
            gate: self.clone(),
            uid,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_user() {
        let g = Gate::new(3, 2);
        let a1 = g.enter(1).unwrap();
        let _a2 = g.enter(1).unwrap();
        assert!(g
            .enter(1)
            .unwrap_err()
            .message
            .contains("max_connections_per_user (2)"));
        let _b = g.enter(2).unwrap();
        assert!(g
            .enter(3)
            .unwrap_err()
            .message
            .contains("max_connections (3)"));
        drop(a1);
        assert!(g.enter(3).is_ok());
    }
}
