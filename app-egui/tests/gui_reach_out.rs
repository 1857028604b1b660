//! Reaching out in the desktop app: delivery state, answers, a reach-out that stays on
//! the home until answered, and the member's own crisis lines shown at once when nobody
//! can be reached. Real apps, real nodes on loopback, driven by widget label.

mod support;

use support::*;

const CRISIS_LINE: &str = "County crisis line";
const CRISIS_NUMBER: &str = "0800 111 222";

#[test]
fn a_reach_out_with_nobody_reachable_shows_the_saved_crisis_lines_at_once() {
    let (dir_sam, dir_alex) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sam, alex) = sam_and_alex(dir_sam.path(), dir_alex.path());
    // Alex closes the app: nobody in the group can be reached from Sam's device now.
    drop(alex);
    wait_until(&mut sam, "Alex gone", |a| {
        shows(a, "Offline: nobody in this group is reachable")
    });

    click(&mut sam, "Reach out");
    assert!(
        shows(&sam, "You have not saved a crisis line yet"),
        "the tab offers to save a crisis line before it is needed"
    );
    fill(&mut sam, "Name of the line or person", CRISIS_LINE);
    fill(&mut sam, "Number or how to reach them", CRISIS_NUMBER);
    click(&mut sam, "Save contact");
    wait_until(&mut sam, "the saved contact", |a| shows(a, "Saved on this device only"));

    fill(
        &mut sam,
        "What is going on, and what would help?",
        "Rough night, could use a voice.",
    );
    assert!(
        shows(&sam, "Goes to everyone in Tuesday Circle: Alex."),
        "the audience is shown first"
    );
    click(&mut sam, "Send reach-out");
    // At once: no waiting for a sync to give up.
    wait_until(&mut sam, "the reach-out saved", |a| {
        shows(a, "Delivered to 0 of 1 member")
    });
    assert!(shows(&sam, "Nobody in the group can be reached right now."));
    assert!(
        shows(&sam, &format!("{CRISIS_LINE} — {CRISIS_NUMBER}")),
        "Sam's saved crisis line is on the screen"
    );
    assert!(shows(&sam, "Not yet: Alex"));
}

#[test]
fn a_reach_out_is_delivered_stays_on_the_home_until_answered_and_the_answer_comes_back() {
    let (dir_sam, dir_alex) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sam, mut alex) = sam_and_alex(dir_sam.path(), dir_alex.path());
    click(&mut sam, "Stories");

    click(&mut alex, "Reach out");
    fill(
        &mut alex,
        "What is going on, and what would help?",
        "Court date tomorrow and I am scared.",
    );
    click(&mut alex, "Send reach-out");
    wait_until(&mut alex, "delivery to Sam", |a| shows(a, "Delivered to 1 of 1 member"));
    assert!(shows(&alex, "Has it: Sam"));
    assert!(
        !shows(&alex, "Nobody in the group can be reached"),
        "no crisis screen when it arrived"
    );

    wait_until(&mut sam, "the reach-out on Sam's home", |a| {
        shows(a, "Alex reached out and no one has answered yet.")
    });
    click(&mut sam, "See reach-outs");
    assert!(shows(&sam, "Court date tomorrow and I am scared."));
    fill(&mut sam, "Your answer to Alex", "I can come with you. Call me tonight.");
    click(&mut sam, "Answer Alex");
    wait_until(&mut sam, "the answer saved", |a| shows(a, "Your answer is saved"));
    click(&mut sam, "Stories");
    assert!(
        !shows(&sam, "no one has answered yet"),
        "an answered reach-out leaves the home"
    );

    wait_until(&mut alex, "Sam's answer on Alex's device", |a| {
        shows(a, "Sam: I can come with you. Call me tonight.")
    });

    // What Alex's device learned is kept: opened again while Sam is away, it still knows
    // Sam has the reach-out, and when they last synced.
    drop(sam);
    drop(alex);
    let mut alex = unlock_profile(dir_alex.path());
    click(&mut alex, "Tuesday Circle");
    wait_until(&mut alex, "the group loaded", |a| !shows(a, "Still opening"));
    click(&mut alex, "Reach out");
    assert!(shows(&alex, "Delivered to 1 of 1 member"));
    click(&mut alex, "Members");
    assert!(shows(&alex, "Last synced"));
    assert!(!shows(&alex, "Connected now: Sam"));
}
