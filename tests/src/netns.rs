//! Network namespaces and `alongside` processes for the tests that need root
//! (`netns-lan`, `netns-hostile`; `.ci/run` runs them).
//!
//! A [`Netns`] is an empty network stack of its own: after [`Netns::create`] it has only a
//! loopback interface, so a process started in it reaches nothing but what a test wires
//! into it (a veth link, or sockets of the impairment proxy, see [`crate::impair`]). Each
//! namespace is deleted when its value drops, whatever happened.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// How long a node gets to start serving.
const START_LIMIT: Duration = Duration::from_secs(60);

/// Runs `ip` with `args`; an error says which command failed and why.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("could not run `ip`")?;
    ensure!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A named network namespace with its loopback up; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` (unique per test process: add the pid).
    pub fn create(name: &str) -> Result<Netns> {
        ip(&["netns", "add", name])?;
        let ns = Netns { name: name.to_string() };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A UDP socket bound to `addr` inside this namespace (see [`udp_socket_in`]).
    pub fn udp_socket(&self, addr: SocketAddr) -> Result<UdpSocket> {
        udp_socket_in(&self.name, addr)
    }
}

/// A non-blocking UDP socket bound to `addr` inside namespace `name`. The socket stays in
/// the namespace it was made in, whichever thread uses it later; it is made on a thread
/// of its own that enters the namespace and then ends.
pub fn udp_socket_in(name: &str, addr: SocketAddr) -> Result<UdpSocket> {
    let path = PathBuf::from("/var/run/netns").join(name);
    std::thread::scope(|s| {
        s.spawn(|| -> Result<UdpSocket> {
            let ns = std::fs::File::open(&path).with_context(|| format!("no namespace at {}", path.display()))?;
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .context("could not enter the namespace")?;
            let socket = UdpSocket::bind(addr).with_context(|| format!("could not bind {addr} in {name}"))?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the socket thread panicked"))?
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace removes its interfaces, and with them any veth pair.
        let _ = ip(&["netns", "delete", &self.name]);
    }
}

/// One member's profile: a data directory and the binary that runs it.
#[derive(Debug)]
pub struct Member<'a> {
    /// The `alongside` binary.
    pub bin: &'a Path,
    /// The profile's data directory.
    pub dir: PathBuf,
    /// Whether meeting mode (mDNS) may run when the member is inside a namespace.
    pub lan: bool,
}

impl Member<'_> {
    /// `alongside` with a clean environment and every outside service off; inside
    /// `netns` (listening on all its addresses, local-network discovery as `self.lan`
    /// says) or on this machine's loopback.
    pub fn cmd(&self, netns: Option<&str>, args: &[&str]) -> Command {
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
        let lan = netns.is_some() && self.lan;
        c.arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env("ALONGSIDE_PASSPHRASE", "pw")
            .env("ALONGSIDE_TEST_KDF", "1")
            .env("ALONGSIDE_RELAY", "disabled")
            .env("ALONGSIDE_LAN", if lan { "on" } else { "off" })
            .env("ALONGSIDE_BIND", if netns.is_some() { "0.0.0.0" } else { "127.0.0.1" });
        c
    }

    /// Runs a command (reaching the member's running node, if any) and returns its
    /// output; a non-zero exit is an error carrying what it printed.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cmd(None, args).output()?;
        ensure!(
            out.status.success(),
            "`alongside {}` failed: {}",
            args.iter()
                .map(|a| if a.len() > 60 { "…" } else { a })
                .collect::<Vec<_>>()
                .join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// Starts `serve` (in `netns` if given) logging the network layer at info level to
    /// `log` (appended), and waits until its control socket answers.
    pub fn serve_logged(&self, netns: Option<&str>, log: &Path) -> Result<Served> {
        let mut cmd = self.cmd(netns, &["serve"]);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        cmd.stdout(Stdio::null())
            .stderr(file)
            .env("ALONGSIDE_LOG", "alongside_net=info");
        self.started(cmd)
    }

    /// Starts `serve` (in `netns` if given) and waits until its control socket answers.
    /// With `NETNS_LOGS=DIR` in the environment, the node logs at debug level to
    /// `DIR/<profile>.log`.
    pub fn serve(&self, netns: Option<&str>) -> Result<Served> {
        let mut cmd = self.cmd(netns, &["serve"]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(dir) = std::env::var_os("NETNS_LOGS") {
            let name = self.dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(&dir).join(format!("{name}.log")))?;
            cmd.stderr(log).env("ALONGSIDE_LOG", "alongside_net=debug");
        }
        self.started(cmd)
    }

    fn started(&self, mut cmd: Command) -> Result<Served> {
        let child = cmd.spawn()?;
        let served = Served(child);
        let socket = self.dir.join("control.sock");
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            ensure!(start.elapsed() < START_LIMIT, "serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(served)
    }
}

/// A running `serve`, stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Served(Child);

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

/// Waits until `check` returns `Some`, polling every 100 ms; fails with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("{what} did not happen within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
