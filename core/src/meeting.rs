//! Meeting mode's two clocks.
//!
//! Meeting mode lets a group's devices find each other on a room's Wi-Fi by mDNS. Everyone
//! on that network sees what is announced, so nothing announced may let an observer
//! recognise the group, or a person, at the next meeting:
//!
//! - **The service name changes every [`NAME_WINDOW_MS`]** (30 minutes): it is a keyed hash
//!   of the epoch key, the group id and the number of the window. Without the epoch key two
//!   windows' names look unrelated. A device announces and listens under two names at
//!   once, those of the windows around `now − W/2` and `now + W/2` ([`service_names`]), so
//!   two members whose clocks differ by less than half a window (15 minutes) always share
//!   one of them. Meetings of the same group are days apart: their names never repeat.
//! - **The switch ends by itself** at a stated time (3 hours unless the member says
//!   otherwise, at most [`LONGEST_ON_FOR_MS`]), so a device forgotten in meeting mode stops
//!   announcing after the meeting. [`MeetingMode`] is what the device keeps.
//!
//! Time comes in as an argument (Unix milliseconds), as everywhere in core.

use crate::ids::GroupId;

/// How long one meeting-mode service name is used: 30 minutes.
pub const NAME_WINDOW_MS: i64 = 30 * 60 * 1000;

/// How long meeting mode stays on when the member does not say: 3 hours (a meeting and
/// the time around it).
pub const DEFAULT_ON_FOR_MS: i64 = 3 * 60 * 60 * 1000;

/// The longest time meeting mode can be switched on for at once: 12 hours.
pub const LONGEST_ON_FOR_MS: i64 = 12 * 60 * 60 * 1000;

/// The service name of `group` in window number `window` under epoch key `key`: `a` ‖ the
/// first 12 characters of lowercase base32 of BLAKE3-keyed(key, `"alongside/lan-service/v2"`
/// ‖ group id ‖ window as i64 big-endian). 13 characters, within DNS-SD's limit of 15.
pub fn service_name(key: &[u8; 32], group: &GroupId, window: i64) -> String {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"alongside/lan-service/v2");
    h.update(&group.0);
    h.update(&window.to_be_bytes());
    let digest = h.finalize();
    let name = data_encoding::BASE32_NOPAD
        .encode(&digest.as_bytes()[..10])
        .to_ascii_lowercase();
    format!("a{}", &name[..12])
}

/// The window number `now_ms` falls in.
pub fn window_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(NAME_WINDOW_MS)
}

/// The two service names a device announces and listens under at `now_ms`: those of the
/// windows containing `now − W/2` and `now + W/2` (two consecutive windows, one of them
/// `now`'s). Two devices whose clocks differ by less than `W/2` share at least one.
pub fn service_names(key: &[u8; 32], group: &GroupId, now_ms: i64) -> [String; 2] {
    let half = NAME_WINDOW_MS / 2;
    [
        service_name(key, group, window_of(now_ms.saturating_sub(half))),
        service_name(key, group, window_of(now_ms.saturating_add(half))),
    ]
}

/// When the pair [`service_names`] gives next changes (every half window).
pub fn next_names_change_ms(now_ms: i64) -> i64 {
    let half = NAME_WINDOW_MS / 2;
    (now_ms.div_euclid(half) + 1).saturating_mul(half)
}

/// Meeting mode as a device keeps it for one group: on until a stated time, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingMode {
    /// Off (never switched on, switched off, or its time is up).
    Off,
    /// On until this time (Unix ms); off from then on unless renewed.
    OnUntil(i64),
}

impl MeetingMode {
    /// What it is at `now_ms`: a stated time that has passed reads as off.
    pub fn at(self, now_ms: i64) -> MeetingMode {
        match self {
            MeetingMode::OnUntil(until) if until > now_ms => self,
            _ => MeetingMode::Off,
        }
    }

    /// Until when it is on at `now_ms` (`None`: off).
    pub fn on_until(self, now_ms: i64) -> Option<i64> {
        match self.at(now_ms) {
            MeetingMode::OnUntil(until) => Some(until),
            MeetingMode::Off => None,
        }
    }

    /// The stored form: `[2]` ‖ i64 big-endian end time, or `[0]` for off.
    pub(crate) fn encode(self) -> Vec<u8> {
        match self {
            MeetingMode::Off => vec![0],
            MeetingMode::OnUntil(until) => [&[2u8][..], &until.to_be_bytes()].concat(),
        }
    }

    /// Reads the stored form. `[1]`, written before the switch had an end, reads as off:
    /// a switch with no stated end is never shown or run as on.
    pub(crate) fn decode(raw: &[u8]) -> MeetingMode {
        match raw {
            [2, rest @ ..] => {
                <[u8; 8]>::try_from(rest).map_or(MeetingMode::Off, |b| MeetingMode::OnUntil(i64::from_be_bytes(b)))
            }
            _ => MeetingMode::Off,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const GROUP: GroupId = GroupId([3; 32]);
    /// Tuesday 2026-03-03, 19:00 UTC.
    const TUESDAY_7PM: i64 = 1_772_564_400_000;
    const MINUTE: i64 = 60_000;
    const WEEK: i64 = 7 * 24 * 60 * MINUTE;

    #[test]
    fn the_announced_name_differs_between_windows_and_epochs_and_skewed_clocks_share_one() {
        // The same group's meeting a week later, at the same hour, is announced under names
        // an observer has never seen.
        let tonight = service_names(&KEY, &GROUP, TUESDAY_7PM);
        let next_week = service_names(&KEY, &GROUP, TUESDAY_7PM + WEEK);
        for name in &tonight {
            assert!(!next_week.contains(name), "{name} repeats a week later");
            assert_eq!(name.len(), 13);
        }
        // Every window has its own name.
        assert_ne!(
            service_name(&KEY, &GROUP, window_of(TUESDAY_7PM)),
            service_name(&KEY, &GROUP, window_of(TUESDAY_7PM) + 1)
        );
        // Another epoch key gives other names in the same window.
        let other_epoch = service_names(&[8; 32], &GROUP, TUESDAY_7PM);
        assert!(tonight.iter().all(|n| !other_epoch.contains(n)));
        // Two members whose clocks are up to 14 minutes apart, at any moment of the
        // evening (every minute, across several window boundaries), share a name.
        for minute in 0..180 {
            let now = TUESDAY_7PM + minute * MINUTE;
            for skew in [-14, -5, -1, 1, 5, 14] {
                let mine = service_names(&KEY, &GROUP, now);
                let theirs = service_names(&KEY, &GROUP, now + skew * MINUTE);
                assert!(
                    mine.iter().any(|n| theirs.contains(n)),
                    "no common name at minute {minute} with {skew} minutes of skew"
                );
            }
        }
        // The pair changes every quarter of an hour, exactly when announced.
        let change = next_names_change_ms(TUESDAY_7PM + MINUTE);
        assert_eq!(change, TUESDAY_7PM + 15 * MINUTE);
        assert_eq!(
            service_names(&KEY, &GROUP, change - 1),
            service_names(&KEY, &GROUP, TUESDAY_7PM)
        );
        assert_ne!(
            service_names(&KEY, &GROUP, change),
            service_names(&KEY, &GROUP, TUESDAY_7PM)
        );
    }

    #[test]
    fn meeting_mode_reads_as_off_once_its_time_is_up_and_an_endless_old_switch_is_off() {
        let on = MeetingMode::OnUntil(TUESDAY_7PM);
        assert_eq!(on.on_until(TUESDAY_7PM - 1), Some(TUESDAY_7PM));
        assert_eq!(on.at(TUESDAY_7PM), MeetingMode::Off);
        assert_eq!(MeetingMode::decode(&on.encode()), on);
        assert_eq!(MeetingMode::decode(&MeetingMode::Off.encode()), MeetingMode::Off);
        // What the previous version wrote for "on" had no end: it is not run as on.
        assert_eq!(MeetingMode::decode(&[1]), MeetingMode::Off);
        assert_eq!(MeetingMode::decode(&[2, 1, 2]), MeetingMode::Off);
    }
}
