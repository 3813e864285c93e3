//! Admission of sockets. Every accepted socket holds a [`Ticket`]: it counts the socket as
//! unauthenticated (in all and for its address) until the peer authenticates, then as a
//! connection of its address, and gives its place back when dropped. An unauthenticated socket
//! must close at its deadline, when a newcomer evicts it at the global cap, or at shutdown.

use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::socket::Budget;
use crate::{Closing, GOING_AWAY, Hub, Relay, TRY_AGAIN_LATER, stopped};

/// What one address holds.
pub(crate) struct Usage {
    /// Sockets not yet authenticated.
    pub(crate) pending: usize,
    /// Authenticated connections.
    pub(crate) connections: usize,
    /// Bytes queued for its connections.
    pub(crate) queued: Arc<Budget>,
}

/// The unit of the per-address limits: an IPv4 address, or the /64 of an IPv6 address (one
/// host or customer gets a whole /64).
fn address_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

/// An accepted socket's place within the limits.
pub(crate) struct Ticket {
    relay: Arc<Relay>,
    id: u64,
    pub(crate) address: IpAddr,
    deadline: Instant,
    /// Ends (its sender is dropped) when the socket is evicted.
    evicted: watch::Receiver<()>,
    authenticated: bool,
}

impl Relay {
    /// Admits a new socket from `ip` as unauthenticated, evicting the oldest such socket at the
    /// global cap; refuses it (with the code) when its address holds its share already.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, &'static str> {
        let address = address_of(ip);
        let mut hub = self.hub.lock().expect("hub lock");
        let pending = hub.per_address.get(&address).map_or(0, |u| u.pending);
        if pending >= self.config.max_pending_per_address {
            return Err("ADDRESS_BUSY");
        }
        let limit = self.config.max_queue_bytes_per_address;
        hub.per_address
            .entry(address)
            .or_insert_with(|| Usage {
                pending: 0,
                connections: 0,
                queued: Arc::new(Budget::new(limit)),
            })
            .pending += 1;
        if hub.pending.len() >= self.config.max_pending {
            hub.pending.pop_first();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (evict, evicted) = watch::channel(());
        hub.pending.insert(id, evict);
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        Ok(Ticket {
            relay: self.clone(),
            id,
            address,
            deadline: Instant::now() + self.config.auth_timeout,
            evicted,
            authenticated: false,
        })
    }
}

impl Ticket {
    /// Resolves, with what to tell the peer, when the unauthenticated socket must close.
    pub(crate) fn expiry(&self) -> impl Future<Output = Closing> + Send + 'static {
        let deadline = self.deadline;
        let mut evicted = self.evicted.clone();
        let mut shutdown = self.relay.shutdown.clone();
        async move {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    Closing::policy("AUTH_TIMEOUT", "not authenticated in time")
                }
                _ = evicted.changed() => Closing {
                    code: "PENDING_EVICTED",
                    message: "too many connections are authenticating: try again".into(),
                    close: TRY_AGAIN_LATER,
                },
                () = stopped(&mut shutdown) => Closing {
                    code: "SHUTTING_DOWN",
                    message: "relay shutting down".into(),
                    close: GOING_AWAY,
                },
            }
        }
    }

    /// Counts the socket as an authenticated connection of its address from now on.
    pub(crate) fn authenticated(&mut self, hub: &mut Hub) {
        hub.pending.remove(&self.id);
        let usage = hub.per_address.get_mut(&self.address).expect("admitted");
        usage.pending -= 1;
        usage.connections += 1;
        self.authenticated = true;
        let stats = &self.relay.stats;
        stats.pending.fetch_sub(1, Ordering::Relaxed);
        stats.connections.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut hub = self.relay.hub.lock().expect("hub lock");
        hub.pending.remove(&self.id);
        if let Entry::Occupied(mut entry) = hub.per_address.entry(self.address) {
            let usage = entry.get_mut();
            if self.authenticated {
                usage.connections -= 1;
            } else {
                usage.pending -= 1;
            }
            if usage.pending == 0 && usage.connections == 0 {
                entry.remove();
            }
        }
        drop(hub);
        let counter = if self.authenticated {
            &self.relay.stats.connections
        } else {
            &self.relay.stats.pending
        };
        counter.fetch_sub(1, Ordering::Relaxed);
        self.relay.closed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(address_of(v4), v4);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(address_of(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_of(a), address_of(b));
        assert_ne!(address_of(a), address_of(other));
        assert_eq!(address_of(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }
}
