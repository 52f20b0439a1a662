//! A cap on the connections one client may hold open at once.
//!
//! Deadlines bound how long a stalled connection lives, and `MAX_CONNECTIONS` keeps the
//! service within its open files; but one client that keeps reopening stalled
//! connections could still hold every slot, and everyone else would wait in the listen
//! queue. Counting open connections per client (an IPv4 address, or an IPv6 /64, as the
//! rate limit counts them) and closing a client's connection past its share at once
//! leaves the other slots to other clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::throttle::bucket;

/// The open connections of every client, shared by all workers.
#[derive(Debug, Clone)]
pub struct ConnectionsPerClient {
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection; the count goes down when it is dropped (the connection
/// closed).
#[derive(Debug)]
pub struct Admitted {
    client: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionsPerClient {
    /// At most `cap` connections open at once per client.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            open: Arc::default(),
        }
    }

    /// Admits a connection from `peer`, or `None` when that client already holds its
    /// share.
    pub fn admit(&self, peer: IpAddr) -> Option<Admitted> {
        let client = bucket(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(client).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Admitted {
            client,
            open: self.open.clone(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_its_slots_come_back_when_connections_close() {
        let gate = ConnectionsPerClient::new(2);
        let client: IpAddr = "198.51.100.9".parse().unwrap();
        let other: IpAddr = "198.51.100.10".parse().unwrap();

        let first = gate.admit(client).unwrap();
        let _second = gate.admit(client).unwrap();
        assert!(gate.admit(client).is_none());
        assert!(gate.admit(other).is_some());
        drop(first);
        assert!(gate.admit(client).is_some());
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let gate = ConnectionsPerClient::new(1);
        let _held = gate.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert!(gate.admit("2001:db8::2".parse().unwrap()).is_none());
        assert!(gate.admit("2001:db8:0:1::1".parse().unwrap()).is_some());
    }
}
