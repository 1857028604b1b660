//! Nothing a member writes leaves the desktop app readable: after a session with content
//! on two devices (a story, a reach-out, meeting notes, a goal), no distinctive sentence
//! of it appears in eframe's storage, in the log (every level, every crate), in the
//! profiles' files, or in any temporary file written meanwhile.

mod support;

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use support::*;

const STORY: &str = "I told my sister about the third week without drinking.";
const REACH_OUT: &str = "The court letter arrived and I want to use tonight.";
const NOTES: &str = "Dana talked about her custody hearing on Friday.";
const GOAL: &str = "Call my sponsor before every payday.";
const SENTENCES: [&str; 4] = [STORY, REACH_OUT, NOTES, GOAL];

/// Every log line of every thread, kept in memory.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// eframe's storage, in memory.
#[derive(Default)]
struct Storage(std::collections::BTreeMap<String, String>);

impl eframe::Storage for Storage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

/// Files under `dir` changed since `since` whose bytes contain `needle` (skipping build
/// output and anything over 16 MiB).
fn files_with(dir: &Path, needle: &[u8], since: SystemTime, found: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let name = entry.file_name();
            if name != "target" && name != ".git" {
                files_with(&path, needle, since, found);
            }
        } else if meta.is_file()
            && meta.len() < 16 << 20
            && meta.modified().is_ok_and(|m| m >= since)
            && std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        {
            found.push(path);
        }
    }
}

#[test]
fn no_sentence_written_in_the_app_appears_in_its_storage_logs_profiles_or_temporary_files() {
    let started = SystemTime::now();
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let (dir_sam, dir_alex) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sam, mut alex) = sam_and_alex(dir_sam.path(), dir_alex.path());
    share_story(&mut alex, "Week three", STORY);
    click(&mut sam, "Stories");
    wait_until(&mut sam, "the story on Sam's device", |a| shows(a, STORY));

    click(&mut alex, "Reach out");
    fill(&mut alex, "What is going on, and what would help?", REACH_OUT);
    click(&mut alex, "Send reach-out");
    wait_until(&mut alex, "the reach-out delivered", |a| {
        shows(a, "Delivered to 1 of 1 member")
    });

    click(&mut sam, "Meetings");
    click(&mut sam, "Schedule a meeting");
    fill(&mut sam, "Meeting title", "Tuesday meeting");
    fill(
        &mut sam,
        "When (date and time, like 2026-12-01 19:00)",
        "2026-12-01 19:00",
    );
    click(&mut sam, "Save meeting");
    wait_until(&mut sam, "the meeting", |a| shows(a, "The meeting is scheduled"));
    click(&mut sam, "Open Tuesday meeting");
    fill(&mut sam, "Meeting notes", NOTES);
    click(&mut alex, "Meetings");
    wait_until(&mut alex, "the meeting on Alex's device", |a| {
        shows(a, "Open Tuesday meeting")
    });
    click(&mut alex, "Open Tuesday meeting");
    wait_until(&mut alex, "the notes on Alex's device", |a| notes(a) == NOTES);

    click(&mut sam, "Goals");
    click(&mut sam, "Add a goal");
    fill(&mut sam, "What is your goal?", GOAL);
    click(&mut sam, "Save goal");
    wait_until(&mut sam, "the goal", |a| shows(a, GOAL));

    let mut storages = Vec::new();
    for app in [&mut sam, &mut alex] {
        let mut storage = Storage::default();
        eframe::App::save(app.state_mut(), &mut storage);
        storages.push(storage);
    }
    drop((sam, alex));
    let _ = std::io::stdout().flush();

    let stored: String = storages
        .iter()
        .flat_map(|s| s.0.iter())
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    assert!(
        stored.contains("alongside-ui"),
        "the window's preferences were stored: {stored}"
    );
    let logged = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(logged.len() > 1000, "the log was captured ({} bytes)", logged.len());
    for sentence in SENTENCES {
        assert!(!stored.contains(sentence), "{sentence:?} is in eframe's storage");
        assert!(!logged.contains(sentence), "{sentence:?} is in the log");
        let mut found = Vec::new();
        for dir in [dir_sam.path(), dir_alex.path(), &std::env::temp_dir()] {
            files_with(dir, sentence.as_bytes(), started, &mut found);
        }
        assert!(found.is_empty(), "{sentence:?} is readable in {found:?}");
    }
}
