//! The meeting-room test, in network namespaces (needs root; `.ci/run` runs it):
//!
//! Alice and Bob join a group on this machine's loopback, then switch meeting mode on. Each
//! then runs `alongside serve` in its own network namespace — two "laptops" joined by one
//! virtual Ethernet link, no other route, no internet — where the addresses from the ticket
//! lead nowhere. They must find each other by mDNS and sync: a story Alice writes reaches
//! Bob's node. The namespaces and link are removed afterwards, whatever happens.
//!
//! Usage: `netns-lan [PATH_TO_ALONGSIDE]` (default: `target/debug/alongside`). Exits 0 when
//! the story arrived, 1 with the reason otherwise.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

const LIMIT: Duration = Duration::from_secs(60);

fn main() {
    match run() {
        Ok(()) => println!("netns-lan: members found each other by mDNS and synced"),
        Err(e) => {
            eprintln!("netns-lan: FAILED: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Two namespaces joined by a veth pair; removed on drop.
struct Room {
    a: String,
    b: String,
}

impl Room {
    fn new() -> Result<Room> {
        let id = std::process::id();
        let room = Room {
            a: format!("al-a-{id}"),
            b: format!("al-b-{id}"),
        };
        let (va, vb) = (format!("ala{id}"), format!("alb{id}"));
        ip(&["netns", "add", &room.a])?;
        ip(&["netns", "add", &room.b])?;
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", &room.a])?;
        ip(&["link", "set", &vb, "netns", &room.b])?;
        for (ns, dev, addr) in [(&room.a, &va, "10.99.0.1/24"), (&room.b, &vb, "10.99.0.2/24")] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev])?;
        }
        Ok(room)
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth pair, and with it the pair.
        let _ = ip(&["netns", "delete", &self.a]);
        let _ = ip(&["netns", "delete", &self.b]);
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("could not run `ip`")?;
    ensure!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// One member: a data directory and the binary.
struct Member<'a> {
    bin: &'a Path,
    dir: PathBuf,
}

impl Member<'_> {
    /// `alongside` with a clean environment, everything outside off, optionally inside a
    /// namespace with the LAN switch on.
    fn cmd(&self, netns: Option<&str>, args: &[&str]) -> Command {
        let mut c = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(self.bin);
                c
            }
            None => Command::new(self.bin),
        };
        for (k, _) in std::env::vars() {
            if k.starts_with("ALONGSIDE_") {
                c.env_remove(k);
            }
        }
        c.arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env("ALONGSIDE_PASSPHRASE", "pw")
            .env("ALONGSIDE_TEST_KDF", "1")
            .env("ALONGSIDE_RELAY", "disabled")
            .env("ALONGSIDE_LAN", if netns.is_some() { "on" } else { "off" })
            .env("ALONGSIDE_BIND", if netns.is_some() { "0.0.0.0" } else { "127.0.0.1" });
        c
    }

    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cmd(None, args).output()?;
        ensure!(
            out.status.success(),
            "`alongside {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// Starts `serve` (in `netns` if given) and waits until its control socket answers.
    fn serve(&self, netns: Option<&str>) -> Result<Served> {
        let child = self
            .cmd(netns, &["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let served = Served(child);
        let socket = self.dir.join("control.sock");
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            ensure!(start.elapsed() < LIMIT, "serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(served)
    }
}

/// A running `serve`, stopped (SIGTERM, then SIGKILL) on drop.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let start = Instant::now();
        while matches!(self.0.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.0.kill();
                let _ = self.0.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn run() -> Result<()> {
    let bin = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/debug/alongside"));
    ensure!(bin.exists(), "no alongside binary at {}", bin.display());
    let tmp = tempfile::tempdir()?;
    let alice = Member {
        bin: &bin,
        dir: tmp.path().join("alice"),
    };
    let bob = Member {
        bin: &bin,
        dir: tmp.path().join("bob"),
    };
    alice.ok(&["init", "--name", "alice"])?;
    bob.ok(&["init", "--name", "bob"])?;
    let g = alice.ok(&["group", "create", "Tuesday Circle", "--as", "Alice"])?;

    // Joining happens on this machine's loopback: the ticket holds only 127.0.0.1.
    {
        let _node = alice.serve(None)?;
        let ticket = alice.ok(&["invite", "--group", &g])?;
        let ticket = ticket.lines().next().context("no ticket")?.to_string();
        bob.ok(&["join", &ticket, "--as", "Bob"])?;
    }
    alice.ok(&["meeting-mode", "--group", &g, "on"])?;
    bob.ok(&["meeting-mode", "--group", &g, "on"])?;

    // The meeting room: two namespaces, one link, no route to anywhere else.
    let room = Room::new()?;
    let _alice_node = alice.serve(Some(&room.a))?;
    let _bob_node = bob.serve(Some(&room.b))?;
    alice.ok(&[
        "story",
        "add",
        "--group",
        &g,
        "--title",
        "Found you on the Wi-Fi",
        "--body",
        "No internet in this room, and we still meet.",
    ])?;
    let start = Instant::now();
    loop {
        if bob
            .ok(&["story", "list", "--group", &g])?
            .contains("Found you on the Wi-Fi")
        {
            break;
        }
        if start.elapsed() > LIMIT {
            bail!("Bob's node did not receive Alice's story within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
