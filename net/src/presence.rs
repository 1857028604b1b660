//! The rules for a member's open conversations, kept per member by the node: how many
//! connections a member may have dialed us on, and which call survives when two devices
//! call each other at once. Pure bookkeeping (generic over the connection, so the rules
//! are tested without a network); `Inner::present` applies it under the node's lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use iroh::endpoint::Connection;

use crate::close_code;

/// Most conversations one member may have dialed us on at once: each may hold a few
/// frames in memory (`RELIABILITY.md`, "Bounded resources").
pub(crate) const MAX_ACCEPTED_PER_MEMBER: usize = 4;

/// One open conversation with a member.
pub(crate) struct Conversation<C = Connection> {
    pub(crate) id: u64,
    /// The connection if the member dialed us (while it still counts against
    /// [`MAX_ACCEPTED_PER_MEMBER`]).
    accepted: Option<C>,
    /// The connection if we dialed the member for a live conversation that gives way
    /// when calls cross, and the flag that tells it it did.
    yielding: Option<(C, Arc<AtomicBool>)>,
}

/// How a conversation with a member came about.
pub(crate) enum Call<C = Connection> {
    /// The member dialed us on this connection.
    Accepted(C),
    /// We dialed the member on this connection.
    Dialed {
        /// The connection.
        conn: C,
        /// Whether it is a live conversation (not a one-shot sync).
        live: bool,
    },
}

/// Connections to close, each with its close code and reason.
pub(crate) type Closing<C> = Vec<(C, u32, &'static [u8])>;

/// Adds conversation `id`, which came about by `call`, to `list` (the member's open
/// conversations), and says which connections to close; `None` if the call gives way and
/// is not to be started (then `list` is unchanged).
///
/// - **A member's dialed-in connections are capped** at [`MAX_ACCEPTED_PER_MEMBER`]; a
///   newer one closes the oldest rather than being refused (a device that crashed or lost
///   its network leaves connections here until they time out, and must still get through
///   when it comes back).
/// - **Crossed calls.** When two devices dial each other at once (both redial when a
///   network comes back), each would run the same catch-up on both connections and send
///   everything twice. So one live conversation per pair is kept: the one dialed by the
///   member with the smaller id. The device of the larger id (`yields`) gives way on its
///   side: a live call of its own that finds the member's call already here is not
///   started, and the member's call arriving closes its live calls (setting `gave_way`).
///   Both devices apply the same rule, so whatever order each sees the calls in, the same
///   one survives. A one-shot sync never gives way.
pub(crate) fn admit<C>(
    list: &mut Vec<Conversation<C>>,
    id: u64,
    call: Call<C>,
    yields: bool,
    gave_way: &Arc<AtomicBool>,
) -> Option<Closing<C>> {
    let mut closing = Vec::new();
    let conversation = match call {
        Call::Dialed { live: true, .. } if yields && list.iter().any(|c| c.accepted.is_some()) => return None,
        Call::Dialed { conn, live } => Conversation {
            id,
            accepted: None,
            yielding: (live && yields).then(|| (conn, gave_way.clone())),
        },
        Call::Accepted(conn) => {
            if yields {
                for (ours, flag) in list.iter_mut().filter_map(|c| c.yielding.take()) {
                    flag.store(true, Ordering::SeqCst);
                    closing.push((ours, close_code::CROSSED, &b"calls crossed: the other call is kept"[..]));
                }
            }
            Conversation {
                id,
                accepted: Some(conn),
                yielding: None,
            }
        }
    };
    list.push(conversation);
    let open = list.iter().filter(|c| c.accepted.is_some()).count();
    if open > MAX_ACCEPTED_PER_MEMBER
        && let Some(oldest) = list.iter_mut().find_map(|c| c.accepted.take())
    {
        closing.push((oldest, close_code::PROTOCOL, &b"replaced by a newer connection"[..]));
    }
    Some(closing)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One device's view: its conversations with one member, connections named by text.
    struct Device {
        yields: bool,
        list: Vec<Conversation<&'static str>>,
        flags: Vec<(&'static str, Arc<AtomicBool>)>,
        closed: Vec<(&'static str, u32)>,
    }

    impl Device {
        fn new(yields: bool) -> Device {
            Device {
                yields,
                list: Vec::new(),
                flags: Vec::new(),
                closed: Vec::new(),
            }
        }

        /// Presents a call; whether it may go on.
        fn call(&mut self, call: Call<&'static str>) -> bool {
            let name = match &call {
                Call::Accepted(c) | Call::Dialed { conn: c, .. } => *c,
            };
            let flag = Arc::new(AtomicBool::new(false));
            let id = self.list.len() as u64 + self.closed.len() as u64;
            match admit(&mut self.list, id, call, self.yields, &flag) {
                Some(closing) => {
                    self.flags.push((name, flag));
                    self.closed.extend(closing.into_iter().map(|(c, code, _)| (c, code)));
                    true
                }
                None => false,
            }
        }

        fn gave_way(&self, name: &str) -> bool {
            self.flags.iter().any(|(n, f)| *n == name && f.load(Ordering::SeqCst))
        }
    }

    fn live(conn: &'static str) -> Call<&'static str> {
        Call::Dialed { conn, live: true }
    }

    #[test]
    fn crossed_calls_keep_the_call_of_the_smaller_id_whatever_order_each_side_sees_them_in() {
        // "low" is the call dialed by the member with the smaller id, "high" the other.
        // Each side sees its own call and the other's in either order.
        for low_side_own_first in [true, false] {
            for high_side_own_first in [true, false] {
                let mut low = Device::new(false);
                let mut high = Device::new(true);
                let (low_ok, high_in_ok) = if low_side_own_first {
                    (low.call(live("low")), low.call(Call::Accepted("high")))
                } else {
                    let accepted = low.call(Call::Accepted("high"));
                    (low.call(live("low")), accepted)
                };
                // The smaller id's side never turns anything away.
                assert!(low_ok && high_in_ok);
                assert!(low.closed.is_empty());

                let high_ok = if high_side_own_first {
                    let ok = high.call(live("high"));
                    assert!(high.call(Call::Accepted("low")));
                    // Its own call was open and is now closed, flagged as having given way.
                    assert_eq!(high.closed, [("high", close_code::CROSSED)]);
                    assert!(high.gave_way("high"));
                    ok
                } else {
                    assert!(high.call(Call::Accepted("low")));
                    // Its own call finds the member's call and is not started at all.
                    high.call(live("high"))
                };
                assert!(high_side_own_first || !high_ok);
                // Either way the larger id's side ends with only the member's call open.
                let open: Vec<bool> = high.list.iter().map(|c| c.accepted.is_some()).collect();
                assert_eq!(open.iter().filter(|a| **a).count(), 1);
            }
        }
    }

    #[test]
    fn a_one_shot_sync_never_gives_way_and_the_smaller_id_keeps_its_live_call() {
        let mut high = Device::new(true);
        assert!(high.call(Call::Accepted("theirs")));
        assert!(high.call(Call::Dialed {
            conn: "sync now",
            live: false
        }));
        assert!(high.call(Call::Accepted("again")));
        assert!(
            high.closed.is_empty(),
            "a one-shot sync is not closed: {:?}",
            high.closed
        );

        let mut low = Device::new(false);
        assert!(low.call(Call::Accepted("theirs")));
        assert!(low.call(live("mine")));
        assert!(low.closed.is_empty());
    }

    #[test]
    fn a_fifth_dialed_in_connection_closes_the_oldest() {
        let mut d = Device::new(false);
        for c in ["1", "2", "3", "4"] {
            assert!(d.call(Call::Accepted(c)));
        }
        assert!(d.closed.is_empty());
        assert!(d.call(Call::Accepted("5")));
        assert_eq!(d.closed, [("1", close_code::PROTOCOL)]);
        assert!(d.call(Call::Accepted("6")));
        assert_eq!(d.closed, [("1", close_code::PROTOCOL), ("2", close_code::PROTOCOL)]);
    }
}
