//! How meeting mode's end is said, the same in the window and on the command line.

/// "until 21:30 (in 2 hours 50 minutes)": the local time meeting mode ends at `until_ms`
/// and how far away that is from `now_ms`.
pub fn until_words(until_ms: i64, now_ms: i64) -> String {
    use chrono::TimeZone as _;
    let clock = chrono::Local
        .timestamp_millis_opt(until_ms)
        .single()
        .map(|t| t.format("%H:%M").to_string());
    let left = in_words(until_ms.saturating_sub(now_ms));
    match clock {
        Some(clock) => format!("until {clock} ({left})"),
        None => format!("for {left}"),
    }
}

/// "in 3 hours", "in 1 hour 5 minutes", "in 40 minutes", "in less than a minute".
fn in_words(ms: i64) -> String {
    let minutes = ms.max(0).saturating_add(59_999) / 60_000;
    let (hours, minutes) = (minutes / 60, minutes % 60);
    let unit = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    match (hours, minutes) {
        (0, 0) => "in less than a minute".into(),
        (0, m) => format!("in {}", unit(m, "minute", "minutes")),
        (h, 0) => format!("in {}", unit(h, "hour", "hours")),
        (h, m) => format!("in {} {}", unit(h, "hour", "hours"), unit(m, "minute", "minutes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_left_is_said_in_plain_words() {
        assert_eq!(in_words(3 * 3_600_000), "in 3 hours");
        assert_eq!(in_words(3_600_000 + 5 * 60_000), "in 1 hour 5 minutes");
        assert_eq!(in_words(40 * 60_000 - 10), "in 40 minutes");
        assert_eq!(in_words(0), "in less than a minute");
        assert!(until_words(1_795_953_600_000, 1_795_953_600_000 - 60_000).ends_with("(in 1 minute)"));
    }
}
