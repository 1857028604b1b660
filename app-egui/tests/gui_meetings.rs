//! Meetings in the desktop app: scheduling, and shared notes that two apps write at the
//! same time over loopback, each seeing the other's typing as it syncs.

mod support;

use support::*;

#[test]
fn a_scheduled_meeting_reaches_the_group_and_both_apps_write_its_notes_live() {
    let (dir_sam, dir_alex) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sam, mut alex) = sam_and_alex(dir_sam.path(), dir_alex.path());

    click(&mut sam, "Meetings");
    click(&mut sam, "Schedule a meeting");
    fill(&mut sam, "Meeting title", "Tuesday meeting");
    fill(
        &mut sam,
        "When (date and time, like 2026-12-01 19:00)",
        "2026-12-01 19:00",
    );
    fill(&mut sam, "Where, or a link", "Library, room 2");
    click(&mut sam, "Sam");
    fill(&mut sam, "Agenda", "Check-in round, then readings.");
    click(&mut sam, "Save meeting");
    wait_until(&mut sam, "the meeting saved", |a| shows(a, "The meeting is scheduled"));
    assert!(shows(&sam, "Tue 1 Dec 2026, 19:00"), "the time reads as people say it");

    click(&mut alex, "Meetings");
    wait_until(&mut alex, "the meeting on Alex's device", |a| {
        shows(a, "Facilitated by Sam")
    });
    assert!(shows(&alex, "Where: Library, room 2"));
    click(&mut alex, "Open Tuesday meeting");
    click(&mut sam, "Open Tuesday meeting");
    assert!(shows(&alex, "Check-in round, then readings."), "the agenda shows");

    fill(&mut sam, "Meeting notes", "Check-in round.");
    wait_until(&mut alex, "Sam's typing on Alex's screen", |a| {
        notes(a) == "Check-in round."
    });
    fill(&mut alex, "Meeting notes", " Kim shares first.");
    wait_until(&mut sam, "Alex's typing on Sam's screen", |a| {
        notes(a) == "Check-in round. Kim shares first."
    });

    // Both type before either has seen the other's words: both keep their words.
    fill(&mut sam, "Meeting notes", " Sam reads.");
    fill(&mut alex, "Meeting notes", " Alex keeps time.");
    let both = |a: &App| {
        let n = notes(a);
        n.contains(" Sam reads.")
            && n.contains(" Alex keeps time.")
            && n.starts_with("Check-in round. Kim shares first.")
    };
    wait_until(&mut sam, "both sentences on Sam's screen", both);
    wait_until(&mut alex, "both sentences on Alex's screen", both);
    assert_eq!(notes(&sam), notes(&alex), "the two screens agree");

    fill(&mut sam, "New action item", "Alex brings the readings");
    click(&mut sam, "Add action item");
    wait_until(&mut alex, "the action item on Alex's screen", |a| {
        shows(a, "Alex brings the readings")
    });
}
