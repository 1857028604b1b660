//! Running the real `alongside` binary from tests.
// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `alongside --data-dir DIR ARGS...` with a clean environment: no inherited `ALONGSIDE_*`
/// variables, the given passphrase, weak test KDF, loopback only, everything outside off.
pub(crate) fn alongside(dir: &Path, pass: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alongside"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ALONGSIDE_") {
            c.env_remove(k);
        }
    }
    c.env("ALONGSIDE_PASSPHRASE", pass)
        .env("ALONGSIDE_TEST_KDF", "1")
        .env("ALONGSIDE_BIND", "127.0.0.1")
        .env("ALONGSIDE_RELAY", "disabled")
        .env("ALONGSIDE_LAN", "off")
        .arg("--data-dir")
        .arg(dir)
        .args(args);
    c
}

/// Stdout of a command that must succeed, trimmed.
pub(crate) fn succeed(out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "`alongside {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// One member's profile, driven through the real binary.
pub(crate) struct Member {
    /// The profile's data directory.
    pub(crate) dir: PathBuf,
}

impl Member {
    pub(crate) fn new(root: &Path, name: &str) -> Member {
        let m = Member { dir: root.join(name) };
        m.ok(&["init", "--name", name]);
        m
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        alongside(&self.dir, "pw", args)
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        succeed(self.run(args), args)
    }

    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "`alongside {}` should fail", args.join(" "));
        String::from_utf8(out.stderr).unwrap()
    }

    /// Shares a story in group `g`.
    pub(crate) fn story(&self, g: &str, title: &str, body: &str) {
        self.ok(&["story", "add", "--group", g, "--title", title, "--body", body]);
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Starts `serve` and waits (with a timeout) until its control socket answers.
    pub(crate) fn serve(&self) -> Child {
        let child = self
            .cmd(&["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let socket = self.dir.join("control.sock");
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "serve did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// The display names of the group's current members, longest-standing first.
    pub(crate) fn member_names(&self, g: &str) -> Vec<String> {
        let members = self.json(&["member", "list", "--group", g, "--json"]);
        members
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Everything this member sees of the group, in a form that must match across members.
    pub(crate) fn content(&self, g: &str) -> Value {
        let mut members = self.json(&["member", "list", "--group", g, "--json"]);
        for m in members.as_array_mut().unwrap() {
            m.as_object_mut().unwrap().remove("me");
        }
        serde_json::json!({
            "stories": self.json(&["story", "list", "--group", g, "--json"]),
            "goals": self.json(&["goal", "list", "--group", g, "--json"]),
            "meetings": self.json(&["meeting", "list", "--group", g, "--json"]),
            "reach_outs": self.json(&["reach-out", "list", "--group", g, "--json"]),
            "members": members,
        })
    }
}

/// Stops a `serve` politely (SIGTERM), or kills it after 20 s.
pub(crate) fn stop(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
