//! Narrated scenarios through the real `alongside` binary, one process per command, as a
//! person or a script would use it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Profile {
    _root: tempfile::TempDir,
    dir: PathBuf,
    tmp: PathBuf,
    pass: String,
}

impl Profile {
    fn new() -> Profile {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let tmp = root.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        Profile {
            dir,
            tmp,
            _root: root,
            pass: "correct horse battery staple".into(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = common::alongside(&self.dir, &self.pass, args);
        c.env("TMPDIR", &self.tmp);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        common::succeed(self.run(args), args)
    }

    /// Runs a command that must fail with one clear sentence; returns that sentence.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "`alongside {}` should have failed",
            args.join(" ")
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.contains("panicked"), "panic: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "no error message");
        lines[0].to_string()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

/// Every file under `dir` with a fingerprint of its bytes (length and a hash).
fn files_with_hashes(dir: &Path) -> BTreeMap<PathBuf, (usize, u64)> {
    use std::hash::{Hash, Hasher};
    let mut out = BTreeMap::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        out.insert(entry.clone(), (bytes.len(), h.finish()));
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_facilitator_keeps_a_group_from_the_command_line_and_everything_survives_a_reopen() {
    let p = Profile::new();
    // Sam makes a profile and a group.
    p.ok(&["init", "--name", "laptop"]);
    let g = p.ok(&["group", "create", "Tuesday Circle", "--as", "Sam"]);
    assert_eq!(g.len(), 64, "group create prints the id alone");
    let groups = p.json(&["group", "list", "--json"]);
    assert_eq!(groups[0]["name"], "Tuesday Circle");
    assert_eq!(groups[0]["me"], "Sam");

    // Every kind of content, added and listed.
    let body_file = p.tmp.join("story.txt");
    std::fs::write(&body_file, "Ninety days ago I could not imagine this morning.").unwrap();
    let story = p.ok(&[
        "story",
        "add",
        "--group",
        &g,
        "--title",
        "Ninety days",
        "--body-file",
        body_file.to_str().unwrap(),
        "--warn",
        "alcohol",
        "--warn",
        "grief",
    ]);
    let quiet = p.ok(&[
        "story",
        "add",
        "--group",
        "Tuesday Circle",
        "--title",
        "Quiet",
        "--body",
        "Just for me.",
        "--no-replies",
    ]);
    p.ok(&["story", "react", "--group", &g, "--story", &story[..6]]);
    p.ok(&[
        "story",
        "reply",
        "--group",
        &g,
        "--story",
        &story[..6],
        "--text",
        "So glad you shared this.",
    ]);
    let no_reply = p.fails(&["story", "reply", "--group", &g, "--story", &quiet[..6], "--text", "hi"]);
    assert!(no_reply.contains("no replies"), "{no_reply}");

    let goal = p.ok(&[
        "goal",
        "add",
        "--group",
        &g,
        "--title",
        "Walk every morning",
        "--target",
        "30 days",
    ]);
    p.ok(&[
        "goal",
        "check-in",
        "--group",
        &g,
        "--goal",
        &goal,
        "--progress",
        "--mood",
        "4",
        "--craving",
        "2",
        "--halt",
        "H,T",
        "--note",
        "Sunrise walk",
        "--date",
        "2026-11-26",
    ]);
    p.ok(&[
        "goal",
        "check-in",
        "--group",
        &g,
        "--goal",
        &goal,
        "--progress",
        "--date",
        "2026-11-27",
    ]);
    p.ok(&[
        "goal",
        "check-in",
        "--group",
        &g,
        "--goal",
        &goal,
        "--setback",
        "--mood",
        "2",
        "--date",
        "2026-11-28",
    ]);
    p.ok(&[
        "goal",
        "check-in",
        "--group",
        &g,
        "--goal",
        &goal,
        "--progress",
        "--date",
        "2026-11-29",
    ]);

    let meeting = p.ok(&[
        "meeting",
        "add",
        "--group",
        &g,
        "--title",
        "Weekly circle",
        "--at",
        "2026-12-01T19:00:00+01:00",
        "--where",
        "Library room 4",
        "--agenda",
        "Check-ins; readings",
    ]);
    p.ok(&[
        "meeting",
        "notes",
        "--group",
        &g,
        "--meeting",
        &meeting,
        "--append",
        "We opened with a moment of quiet.",
    ]);
    p.ok(&[
        "meeting",
        "notes",
        "--group",
        &g,
        "--meeting",
        &meeting,
        "--append",
        "Two members shared milestones.",
    ]);
    p.ok(&["meeting", "attend", "--group", &g, "--meeting", &meeting]);
    let action = p.ok(&[
        "meeting",
        "action",
        "--group",
        &g,
        "--meeting",
        &meeting,
        "--text",
        "Book the room for January",
        "--owner",
        "Sam",
    ]);
    p.ok(&[
        "meeting",
        "action-done",
        "--group",
        &g,
        "--meeting",
        &meeting,
        "--action",
        &action[..6],
    ]);

    let reach = p.ok(&[
        "reach-out",
        "--group",
        &g,
        "--message",
        "Hard evening, could use a call.",
    ]);
    p.ok(&[
        "reach-out",
        "respond",
        "--group",
        &g,
        "--reach-out",
        &reach[..6],
        "--text",
        "Calling you at eight.",
    ]);
    p.ok(&[
        "agreement",
        "set",
        "--group",
        &g,
        "--text",
        "What is shared here stays here.",
    ]);
    p.ok(&["agreement", "ack", "--group", &g]);

    let stories = p.json(&["story", "list", "--group", &g, "--json"]);
    let ninety = stories
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == story.as_str())
        .unwrap();
    assert_eq!(ninety["body"], "Ninety days ago I could not imagine this morning.");
    assert_eq!(ninety["warnings"], serde_json::json!(["alcohol", "grief"]));
    assert_eq!(ninety["author"]["name"], "Sam");
    assert_eq!(ninety["reactions"].as_array().unwrap().len(), 1);
    assert_eq!(ninety["replies"][0]["text"], "So glad you shared this.");

    let goals = p.json(&["goal", "list", "--group", &g, "--json"]);
    assert_eq!(goals[0]["id"], goal.as_str());
    assert_eq!(goals[0]["checkins"].as_array().unwrap().len(), 4);
    assert_eq!(goals[0]["checkins"][0]["halt"], serde_json::json!(["hungry", "tired"]));
    // A setback does not erase the days already built.
    assert_eq!(goals[0]["streak"]["total_days"], 3);
    assert_eq!(goals[0]["streak"]["longest_run"], 2);
    assert_eq!(goals[0]["streak"]["setbacks"], 1);

    let meetings = p.json(&["meeting", "list", "--group", &g, "--json"]);
    assert_eq!(
        meetings[0]["notes"],
        "We opened with a moment of quiet.\nTwo members shared milestones.\n"
    );
    assert_eq!(meetings[0]["where"], "Library room 4");
    assert_eq!(meetings[0]["attendance"][0]["present"], true);
    assert_eq!(meetings[0]["actions"][0]["done"], true);
    assert_eq!(meetings[0]["actions"][0]["owner"]["name"], "Sam");

    let reach_outs = p.json(&["reach-out", "list", "--group", &g, "--json"]);
    assert_eq!(reach_outs[0]["answered"], true);
    assert_eq!(reach_outs[0]["responses"][0]["text"], "Calling you at eight.");
    let agreement = p.json(&["agreement", "show", "--group", &g, "--json"]);
    assert_eq!(agreement[0]["acknowledged_by"][0]["name"], "Sam");
    let members = p.json(&["member", "list", "--group", &g, "--json"]);
    assert_eq!(members[0]["role"], "facilitator");
    assert_eq!(members[0]["epoch"].as_str().unwrap().len(), 64);

    // Export in all three formats.
    let out = p._root.path().join("exports");
    std::fs::create_dir(&out).unwrap();
    let json_path = out.join("circle.json");
    p.ok(&[
        "export",
        "--group",
        &g,
        "--format",
        "json",
        "--out",
        json_path.to_str().unwrap(),
    ]);
    let exported: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(exported["group"]["name"], "Tuesday Circle");
    assert_eq!(exported["stories"].as_array().unwrap().len(), 2);
    let md_path = out.join("circle.md");
    p.ok(&[
        "export",
        "--group",
        &g,
        "--format",
        "markdown",
        "--out",
        md_path.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.contains("# Tuesday Circle") && md.contains("Ninety days ago"));
    let am_path = out.join("circle-automerge");
    p.ok(&[
        "export",
        "--group",
        &g,
        "--format",
        "automerge",
        "--out",
        am_path.to_str().unwrap(),
    ]);
    let index: Value = serde_json::from_slice(&std::fs::read(am_path.join("index.json")).unwrap()).unwrap();
    let docs = index["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 3, "group, member and meeting documents");
    for d in docs {
        let bytes = std::fs::read(am_path.join(d["file"].as_str().unwrap())).unwrap();
        assert_eq!(&bytes[..4], &[0x85, 0x6f, 0x4a, 0x83], "standard Automerge magic bytes");
    }
    let again = p.fails(&[
        "export",
        "--group",
        &g,
        "--format",
        "json",
        "--out",
        json_path.to_str().unwrap(),
    ]);
    assert!(again.contains("already exists"), "{again}");

    // Reopen (every command is a new process): the same content comes back.
    assert_eq!(p.json(&["story", "list", "--group", &g, "--json"]), stories);
    assert_eq!(p.json(&["meeting", "list", "--group", &g, "--json"]), meetings);
}

#[test]
fn a_wrong_passphrase_is_refused_and_changes_nothing() {
    let mut p = Profile::new();
    p.ok(&["init", "--name", "laptop"]);
    let g = p.ok(&["group", "create", "Circle"]);
    p.ok(&["story", "add", "--group", &g, "--title", "t", "--body", "b"]);
    let before = files_with_hashes(&p.dir);
    p.pass = "not my passphrase".into();
    let err = p.fails(&["story", "list", "--group", &g]);
    assert!(err.contains("passphrase does not unlock"), "{err}");
    let err = p.fails(&["story", "add", "--group", &g, "--title", "x", "--body", "y"]);
    assert!(err.contains("passphrase"), "{err}");
    assert_eq!(files_with_hashes(&p.dir), before, "the store changed");
}

#[test]
fn passwd_changes_the_passphrase() {
    let mut p = Profile::new();
    p.ok(&["init", "--name", "laptop"]);
    let g = p.ok(&["group", "create", "Circle"]);
    let out = p
        .cmd(&["passwd"])
        .env("ALONGSIDE_NEW_PASSPHRASE", "a new passphrase")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    p.fails(&["group", "list"]);
    p.pass = "a new passphrase".into();
    let list = p.json(&["group", "list", "--json"]);
    assert_eq!(list[0]["id"], g.as_str());
    // A wrong current passphrase changes nothing.
    p.pass = "wrong".into();
    let out = p
        .cmd(&["passwd"])
        .env("ALONGSIDE_NEW_PASSPHRASE", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    p.pass = "a new passphrase".into();
    p.ok(&["group", "list"]);
}

#[test]
fn nothing_readable_reaches_the_disk_the_logs_or_the_temp_directory() {
    let p = Profile::new();
    p.ok(&["init", "--name", "secret-profile-label-xq"]);
    let secrets = [
        "Cedar Lantern Fellowship",
        "I hid the bottle behind the boiler in March",
        "Marmalade confession at dawn",
        "Called my sponsor from the parking garage",
        "Nobody repeats names outside this circle",
        "Mossy Otter",
    ];
    let g = p.ok(&["group", "create", secrets[0], "--as", secrets[5]]);
    p.ok(&[
        "story", "add", "--group", &g, "--title", secrets[2], "--body", secrets[1],
    ]);
    let goal = p.ok(&["goal", "add", "--group", &g, "--title", "Sleep before midnight"]);
    p.ok(&[
        "goal",
        "check-in",
        "--group",
        &g,
        "--goal",
        &goal,
        "--progress",
        "--note",
        secrets[3],
    ]);
    let m = p.ok(&[
        "meeting",
        "add",
        "--group",
        &g,
        "--title",
        "Weekly",
        "--at",
        "2026-12-01T19:00:00Z",
    ]);
    p.ok(&[
        "meeting",
        "notes",
        "--group",
        &g,
        "--meeting",
        &m,
        "--append",
        secrets[3],
    ]);
    p.ok(&["agreement", "set", "--group", &g, "--text", secrets[4]]);
    let log = p
        .cmd(&["story", "list", "--group", &g])
        .env("ALONGSIDE_LOG", "trace")
        .output()
        .unwrap();
    assert!(log.status.success());
    let log_text = String::from_utf8_lossy(&log.stderr).to_string();

    let mut haystacks: Vec<(PathBuf, Vec<u8>)> = walk(&p.dir)
        .into_iter()
        .chain(walk(&p.tmp))
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f, bytes)
        })
        .collect();
    haystacks.push((PathBuf::from("<log output>"), log_text.into_bytes()));
    assert!(walk(&p.dir).len() >= 2, "profile and store exist");
    for needle in secrets.iter().chain(["secret-profile-label-xq"].iter()) {
        for (path, bytes) in &haystacks {
            for form in [
                needle.as_bytes().to_vec(),
                needle.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(),
            ] {
                assert!(
                    !bytes.windows(form.len()).any(|w| w == form.as_slice()),
                    "'{needle}' found in {}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn bad_input_gets_one_clear_sentence_and_a_failing_exit() {
    let p = Profile::new();
    let missing = p.fails(&["group", "list"]);
    assert!(missing.contains("no Alongside profile"), "{missing}");
    p.ok(&["init", "--name", "laptop"]);
    assert!(p.fails(&["init", "--name", "again"]).contains("already exists"));
    let g = p.ok(&["group", "create", "Circle"]);
    let goal = p.ok(&["goal", "add", "--group", &g, "--title", "Walk"]);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["story", "list", "--group", "nope"], "no group matches"),
        (
            vec!["story", "add", "--group", &g, "--title", "", "--body", "b"],
            "cannot be empty",
        ),
        (
            vec![
                "story",
                "add",
                "--group",
                &g,
                "--title",
                "t",
                "--body-file",
                "/nonexistent/x",
            ],
            "could not read",
        ),
        (
            vec![
                "goal",
                "check-in",
                "--group",
                &g,
                "--goal",
                &goal,
                "--progress",
                "--mood",
                "9",
            ],
            "Mood",
        ),
        (
            vec![
                "goal",
                "check-in",
                "--group",
                &g,
                "--goal",
                &goal,
                "--progress",
                "--craving",
                "11",
            ],
            "Craving",
        ),
        (
            vec![
                "goal",
                "check-in",
                "--group",
                &g,
                "--goal",
                &goal,
                "--progress",
                "--halt",
                "X",
            ],
            "HALT",
        ),
        (
            vec![
                "goal",
                "check-in",
                "--group",
                &g,
                "--goal",
                &goal,
                "--progress",
                "--date",
                "yesterday",
            ],
            "not a date",
        ),
        (
            vec!["goal", "check-in", "--group", &g, "--goal", "ffff", "--progress"],
            "nothing matches",
        ),
        (
            vec!["meeting", "add", "--group", &g, "--title", "M", "--at", "tomorrow"],
            "not a time",
        ),
        (
            vec!["meeting", "notes", "--group", &g, "--meeting", "00", "--append", "x"],
            "nothing matches",
        ),
        (vec!["agreement", "ack", "--group", &g], "no agreements"),
        (
            vec!["goal", "add", "--group", &g, "--title", "x", "--share-with", "nobody"],
            "could not find member",
        ),
        (vec!["reach-out", "--group", &g], "needs --group and --message"),
        (vec!["meeting-mode", "--group", &g, "maybe"], "invalid value"),
        (vec!["meeting-mode", "--group", "nope", "on"], "no group matches"),
        (
            vec!["meeting-mode", "--group", &g, "on", "--for", "13h"],
            "up to 12 hours at a time",
        ),
        (vec!["--relay", "sometimes", "sync", "--group", &g], "not a relay mode"),
        (
            vec!["member", "remove", "--group", &g, "laptop"],
            "cannot remove yourself",
        ),
        (vec!["member", "remove", "--group", &g, "nobody"], "nothing matches"),
        (
            vec!["member", "role", "--group", &g, "laptop", "member"],
            "needs a facilitator",
        ),
        (vec!["member", "role", "--group", &g, "laptop", "boss"], "invalid value"),
        (
            vec!["group", "settings", "--group", &g, "--history", "sometimes"],
            "invalid value",
        ),
    ];
    let before = files_with_hashes(&p.dir);
    for (args, expected) in cases {
        let err = p.fails(&args);
        assert!(err.contains(expected), "`{}` said: {err}", args.join(" "));
    }
    assert_eq!(files_with_hashes(&p.dir), before, "a failed command wrote something");
    assert_eq!(
        p.ok(&["meeting-mode", "--group", &g]),
        "Meeting mode is off for Circle."
    );
    let on = p.run(&["meeting-mode", "--group", &g, "on", "--for", "90m"]);
    assert!(on.stdout.is_empty(), "the confirmation goes to stderr");
    let said = String::from_utf8_lossy(&on.stderr);
    assert!(
        said.contains("(in 1 hour 30 minutes)") && said.contains("switches itself off"),
        "it says until when and that it ends by itself: {said}"
    );
    let status = p.ok(&["meeting-mode", "--group", &g]);
    assert!(status.starts_with("Meeting mode is on for Circle until"), "{status}");
    let off = p.run(&["meeting-mode", "--group", &g, "off"]);
    assert!(off.status.success());
    assert!(String::from_utf8_lossy(&off.stderr).contains("Meeting mode is off for Circle"));

    // Leaving says what it means, and afterwards this device writes nothing to the group.
    let left = p.run(&["leave", "--group", &g]);
    assert!(left.status.success());
    assert!(String::from_utf8_lossy(&left.stderr).contains("You have left Circle"));
    let after = p.fails(&["story", "add", "--group", &g, "--title", "t", "--body", "b"]);
    assert!(after.contains("no longer a member"), "{after}");
    assert!(p.fails(&["leave", "--group", &g]).contains("no longer a member"));
}

#[test]
fn a_damaged_or_foreign_profile_is_reported_and_left_untouched() {
    let p = Profile::new();
    p.ok(&["init", "--name", "laptop"]);
    let store = p.dir.join("store.redb");
    let mut bytes = std::fs::read(&store).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 2..] {
        *b = 0x5a;
    }
    std::fs::write(&store, &bytes).unwrap();
    let err = p.fails(&["group", "list"]);
    assert!(err.contains("damaged"), "{err}");
    assert!(
        std::fs::read(&store).unwrap() == bytes,
        "the damaged store was rewritten"
    );

    std::fs::write(p.dir.join("profile"), b"#!/bin/sh\necho not a profile\n").unwrap();
    let err = p.fails(&["group", "list"]);
    assert!(err.contains("not an Alongside profile"), "{err}");
    assert_eq!(
        std::fs::read(p.dir.join("profile")).unwrap(),
        b"#!/bin/sh\necho not a profile\n"
    );
}

#[test]
fn a_damaged_group_is_listed_as_such_the_others_work_and_repair_mends_it() {
    let p = Profile::new();
    p.ok(&["init", "--name", "laptop"]);
    let hurt = p.ok(&["group", "create", "Tuesday Circle", "--as", "Sam"]);
    p.ok(&["group", "create", "Friday Circle", "--as", "Sam"]);
    p.ok(&[
        "story",
        "add",
        "--group",
        &hurt,
        "--title",
        "Day one",
        "--body",
        "In my own words.",
    ]);
    // The disk damages Sam's own document in Tuesday Circle.
    {
        use alongside_core::ids::{DocId, GroupId};
        let mut v = alongside_core::vault::Vault::unlock(&p.dir, p.pass.as_bytes()).unwrap();
        let g = GroupId::from_hex(&hurt).unwrap();
        let me = v.session(&g).unwrap().me();
        v.spoil_snapshot_for_tests(&g, &DocId::member_doc(&me)).unwrap();
    }
    // The list says which group is damaged and how to mend it; the other group works.
    let list = p.ok(&["group", "list"]);
    assert!(list.contains("is damaged") && list.contains("group repair"), "{list}");
    assert!(list.contains("Friday Circle"), "{list}");
    p.ok(&[
        "story",
        "add",
        "--group",
        "Friday Circle",
        "--title",
        "Still here",
        "--body",
        "Yes.",
    ]);
    let groups = p.json(&["group", "list", "--json"]);
    let damaged: Vec<&Value> = groups
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["damaged"] == true)
        .collect();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0]["id"], hurt.as_str());
    // The damaged group itself refuses plainly, then repair brings back the story from
    // this device's own copy.
    let err = p.fails(&["story", "list", "--group", &hurt]);
    assert!(err.contains("damaged"), "{err}");
    let said = p.run(&["group", "repair", "--group", &hurt[..8]]);
    assert!(said.status.success());
    let said = String::from_utf8(said.stderr).unwrap();
    assert!(said.contains("Repaired \"Tuesday Circle\""), "{said}");
    let stories = p.ok(&["story", "list", "--group", &hurt]);
    assert!(stories.contains("Day one"), "{stories}");
}
