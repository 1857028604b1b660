//! A page of stories and goals with only their latest check-ins hold exactly what the full
//! views would show, so the app can read a page without reading a group's whole history.

use std::collections::BTreeSet;

use alongside_core::model::edits::{CheckInKind, NewCheckIn, NewStory};
use alongside_core::model::views::StoryQuery;
use alongside_tests::{NOW_MS, group, sync_all};

const MINUTE: i64 = 60_000;

fn story(i: usize) -> NewStory {
    NewStory {
        title: format!("Evening {i}"),
        body: format!("What helped on evening {i}."),
        warnings: if i.is_multiple_of(5) {
            vec!["grief".into()]
        } else {
            vec![]
        },
        no_replies: false,
    }
}

#[test]
fn a_page_is_the_newest_stories_with_what_was_kept_out_counted() {
    // Alice writes 25 stories and Bob 10, one a minute, interleaved at the end.
    let mut g = group(41, &["Alice", "Bob"]);
    for i in 0..35 {
        let writer = if i >= 25 { 1 } else { 0 };
        g[writer].add_story(&story(i), NOW_MS + i as i64 * MINUTE).unwrap();
    }
    sync_all(&mut g);
    let newest = g[1].stories()[0].id.clone();
    g[1].react(&newest, "support", NOW_MS + 40 * MINUTE).unwrap();
    g[1].reply(&newest, "I hear you.", NOW_MS + 41 * MINUTE).unwrap();
    sync_all(&mut g);

    let alice = &g[0];
    let every = alice.stories();
    let nobody = BTreeSet::new();
    let page = alice.story_page(&StoryQuery {
        limit: 30,
        rest_warned: false,
        muted: &nobody,
    });
    assert_eq!((page.total, page.older, page.resting, page.muted), (35, 5, 0, 0));
    assert_eq!(page.stories, every[..30], "the page is the newest 30, read in full");
    assert_eq!(
        page.stories[0].reactions.len(),
        1,
        "support on the newest story is on the page"
    );
    assert_eq!(page.stories[0].replies[0].text, "I hear you.");

    // On a break, the seven stories with warnings rest; muting Bob hides his ten.
    let bob = BTreeSet::from([g[1].me()]);
    let page = alice.story_page(&StoryQuery {
        limit: 30,
        rest_warned: true,
        muted: &bob,
    });
    assert_eq!((page.total, page.resting, page.muted), (35, 7, 10));
    let expected: Vec<_> = every
        .iter()
        .filter(|s| s.warnings.is_empty() && s.author.name != "Bob")
        .cloned()
        .collect();
    assert_eq!(expected.len(), 20, "35 less 10 by Bob less Alice's 5 with warnings");
    assert_eq!(page.stories, expected);
    assert_eq!(page.older, 0);

    // Who wrote each story and when, newest first, for counting what is new.
    let times = alice.story_times();
    assert_eq!(times.len(), 35);
    assert_eq!(times[0], (g[1].me(), NOW_MS + 34 * MINUTE));
    assert!(times.windows(2).all(|w| w[0].1 >= w[1].1));
}

#[test]
fn a_goal_keeps_its_latest_check_ins_and_its_whole_streak() {
    let mut g = group(42, &["Alice"]);
    let goal = g[0].add_goal("Walk every morning", None, &[], NOW_MS).unwrap().to_hex();
    for day in 1..=20 {
        let checkin = NewCheckIn {
            date: format!("2026-11-{day:02}"),
            kind: if day == 12 {
                CheckInKind::Setback
            } else {
                CheckInKind::Progress
            },
            mood: Some(3),
            craving: Some(day % 10),
            halt: vec!["tired".into()],
            note: format!("day {day}"),
        };
        g[0].check_in(&goal, &checkin, NOW_MS + day * MINUTE).unwrap();
    }
    let full = &g[0].goals(NOW_MS)[0];
    let kept = &g[0].goals_keeping(NOW_MS, 3)[0];
    assert_eq!(full.checkins.len(), 20);
    assert_eq!(kept.checkins, full.checkins[17..], "the latest three, read in full");
    assert_eq!(kept.streak, full.streak, "the streak still counts all twenty");
    assert_eq!((kept.streak.total_days, kept.streak.longest_run), (19, 11));
}
