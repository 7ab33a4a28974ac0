//! Caps per remote address, so one client cannot hold every slot of a
//! shared cap: HTTP connections (`MAX_CONNECTIONS_PER_ADDRESS`, in
//! [`crate::http::serve`]) and result's live pages
//! (`MAX_CLIENTS_PER_ADDRESS`).
//!
//! Both are off by default: behind a proxy or a NAT every client has the
//! proxy's address, and a per-address cap would then be a cap on everyone.
//! Turn them on where clients reach the service directly. The table holds
//! one entry per address with a slot taken, so it never outgrows the
//! shared cap it sits under.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// How many slots each remote address holds, up to a limit.
#[derive(Debug)]
pub struct AddressCap {
    limit: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One slot in its address's count; given back when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    cap: Arc<AddressCap>,
    ip: IpAddr,
}

impl AddressCap {
    pub fn new(limit: u32) -> Arc<AddressCap> {
        Arc::new(AddressCap {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a client from `ip`, unless that address already holds
    /// `limit`. IPv4 addresses seen through IPv6 sockets count as the IPv4
    /// address they are.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            cap: self.clone(),
            ip,
        })
    }

    /// How many addresses hold a slot (for tests and metrics).
    pub fn addresses(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.cap.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_own_count_and_forgets_it_at_zero() {
        let cap = AddressCap::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = cap.try_take(a).unwrap();
        let a2 = cap.try_take(a).unwrap();
        assert!(cap.try_take(a).is_none());
        // The same address seen through an IPv6 socket.
        assert!(cap.try_take("::ffff:10.0.0.1".parse().unwrap()).is_none());
        let b1 = cap.try_take(b).unwrap();
        assert_eq!(cap.addresses(), 2);
        drop(a1);
        let a3 = cap.try_take(a).unwrap();
        drop((a2, a3, b1));
        assert_eq!(cap.addresses(), 0, "no entry outlives its clients");
    }
}
