//! Per-peer connection caps: one client address may hold at most
//! `max_connections_per_peer` HTTP connections at once, and at most
//! `max_pending_per_peer` of them before their first request's headers are
//! in (TLS handshake included), so that one address dripping header bytes
//! cannot take every one of `max_connections` places from the others.
//!
//! A peer is an IP address (an IPv4-mapped IPv6 address counts as its IPv4
//! address); its port does not matter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What one peer holds now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Held {
    open: usize,
    pending: usize,
}

/// The connections of every peer, against the two caps.
#[derive(Debug)]
pub struct PeerTable {
    max_open: usize,
    max_pending: usize,
    held: Mutex<HashMap<IpAddr, Held>>,
}

/// Why a new connection of a peer was refused (one sentence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    /// The peer holds `max_connections_per_peer` connections.
    #[error(
        "{peer} already holds max_connections_per_peer ({max}) connections: the new one is closed"
    )]
    Open {
        /// The peer.
        peer: IpAddr,
        /// The cap.
        max: usize,
    },
    /// The peer holds `max_pending_per_peer` connections without a request.
    #[error("{peer} already holds max_pending_per_peer ({max}) connections that have not sent a request's headers: the new one is closed")]
    Pending {
        /// The peer.
        peer: IpAddr,
        /// The cap.
        max: usize,
    },
}

impl PeerTable {
    /// A table with the caps `max_open` and `max_pending` (each at least 1).
    pub fn new(max_open: usize, max_pending: usize) -> Arc<Self> {
        Arc::new(Self {
            max_open: max_open.max(1),
            max_pending: max_pending.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection of `peer`, pending until
    /// [`PeerTicket::request_seen`]; the ticket gives its places back when
    /// dropped.
    ///
    /// Errors: [`PeerRefusal`] when the peer is at either cap.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<PeerTicket, PeerRefusal> {
        let peer = canonical(peer);
        let mut held = self.lock();
        let h = held.entry(peer).or_default();
        if h.open >= self.max_open {
            return Err(PeerRefusal::Open {
                peer,
                max: self.max_open,
            });
        }
        if h.pending >= self.max_pending {
            return Err(PeerRefusal::Pending {
                peer,
                max: self.max_pending,
            });
        }
        h.open += 1;
        h.pending += 1;
        Ok(PeerTicket {
            table: self.clone(),
            peer,
            pending: AtomicBool::new(true),
        })
    }

    /// How many connections `peer` holds, and how many of them are pending.
    pub fn held(&self, peer: IpAddr) -> (usize, usize) {
        let h = self
            .lock()
            .get(&canonical(peer))
            .copied()
            .unwrap_or_default();
        (h.open, h.pending)
    }
}

fn canonical(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    }
}

/// One admitted connection's places in its peer's counts.
#[derive(Debug)]
pub struct PeerTicket {
    table: Arc<PeerTable>,
    peer: IpAddr,
    pending: AtomicBool,
}

impl PeerTicket {
    /// The connection's first request has its headers in: it no longer
    /// counts as pending. Later calls do nothing.
    pub fn request_seen(&self) {
        if self.pending.swap(false, Ordering::AcqRel) {
            if let Some(h) = self.table.lock().get_mut(&self.peer) {
                h.pending = h.pending.saturating_sub(1);
            }
        }
    }
}

impl Drop for PeerTicket {
    fn drop(&mut self) {
        let still_pending = self.pending.swap(false, Ordering::AcqRel);
        let mut held = self.table.lock();
        if let Some(h) = held.get_mut(&self.peer) {
            h.open = h.open.saturating_sub(1);
            if still_pending {
                h.pending = h.pending.saturating_sub(1);
            }
            if h.open == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_has_its_own_caps() {
        let table = PeerTable::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t1 = table.admit(a).unwrap();
        let t2 = table.admit(a).unwrap();
        // Two pending: a third is refused, another peer is not.
        assert_eq!(
            table.admit(a).unwrap_err(),
            PeerRefusal::Pending { peer: a, max: 2 }
        );
        let tb = table.admit(b).unwrap();
        t1.request_seen();
        t1.request_seen();
        assert_eq!(table.held(a), (2, 1));
        let t3 = table.admit(a).unwrap();
        t2.request_seen();
        t3.request_seen();
        // Three open: refused whatever is pending.
        let e = table.admit(a).unwrap_err();
        assert_eq!(e, PeerRefusal::Open { peer: a, max: 3 });
        assert!(
            e.to_string().contains("max_connections_per_peer (3)"),
            "{e}"
        );
        drop(t1);
        let t4 = table.admit(a).unwrap();
        drop((t2, t3, t4, tb));
        assert_eq!(table.held(a), (0, 0));
        assert!(table.lock().is_empty());
        // IPv4-mapped IPv6 is the same peer as its IPv4 address.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let _t = table.admit(mapped).unwrap();
        assert_eq!(table.held(a), (1, 1));
    }
}
