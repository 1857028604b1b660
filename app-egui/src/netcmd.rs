//! Commands that use the network: `serve`, `invite`, `join`, `sync`, and the local control
//! socket through which every other command reaches a running node.
//!
//! One data directory, one node: while `serve` runs it holds the store, so other
//! `alongside` commands on the same directory send their arguments over a Unix socket in
//! the data directory (owner-only, like the directory itself) and the node runs them
//! against its own vault, with the same code as a local run. Nothing else listens on it.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use alongside_core::invite::Ticket;
use alongside_net::{NetConfig, NetError, Node, RelayChoice};
use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::cli::{Cli, Command, NetFlags, OnOff};
use crate::commands::{self, Out, now_ms, unlock};

/// The control socket's file name in the data directory.
pub(crate) const SOCKET: &str = "control.sock";

#[derive(Serialize, Deserialize)]
struct Request {
    argv: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Reply {
    pub(crate) code: i32,
    pub(crate) out: String,
    pub(crate) err: String,
}

/// Parses durations like `30s`, `15m`, `24h`, `7d`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (num, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("'{text}' is not a duration like 30s, 15m, 24h or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("'{text}' is not a duration like 30s, 15m, 24h or 7d"),
    };
    if secs == 0 || secs > 90 * 86_400 {
        bail!("a duration must be between 1 second and 90 days");
    }
    Ok(Duration::from_secs(secs))
}

/// The node's settings from the command line (and its environment variables).
pub(crate) fn net_config(flags: &NetFlags, bind: Option<IpAddr>) -> Result<NetConfig> {
    let env = std::env::var("ALONGSIDE_BIND").ok().and_then(|b| b.parse().ok());
    Ok(NetConfig {
        bind_ip: bind.or(env).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        relay: flags.relay.parse::<RelayChoice>()?,
        lan: flags.lan == OnOff::On,
        ..NetConfig::loopback()
    })
}

/// Makes path arguments absolute, so the node resolves them as the caller meant.
fn absolutize(argv: &[String]) -> Vec<String> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut out = Vec::with_capacity(argv.len());
    let mut next_is_path = false;
    for a in argv {
        if next_is_path {
            out.push(cwd.join(a).to_string_lossy().into_owned());
            next_is_path = false;
            continue;
        }
        if let Some(v) = a.strip_prefix("--body-file=").or_else(|| a.strip_prefix("--out=")) {
            let key = &a[..a.len() - v.len()];
            out.push(format!("{key}{}", cwd.join(v).to_string_lossy()));
            continue;
        }
        next_is_path = a == "--body-file" || a == "--out";
        out.push(a.clone());
    }
    out
}

/// If a node is serving `dir`, runs `argv` in it and returns its reply.
pub(crate) fn forward(dir: &Path, argv: &[String]) -> Result<Option<Reply>> {
    let path = dir.join(SOCKET);
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(&path) else {
        return Ok(None); // no node (or a stale socket from one that crashed)
    };
    let request = serde_json::to_vec(&Request { argv: absolutize(argv) })?;
    stream.write_all(&request)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .context("the running node did not answer")?;
    Ok(Some(
        serde_json::from_slice(&raw).context("the running node gave an unreadable answer")?,
    ))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the network runtime")
}

/// Runs a network command without a running node: a temporary one for its duration.
pub(crate) fn run_once(dir: &Path, flags: &NetFlags, command: Command, o: &mut Out<'_>) -> Result<()> {
    let config = net_config(flags, None)?;
    let vault = unlock(dir)?;
    let rt = runtime()?;
    rt.block_on(async {
        let node = Node::start(vault, config).await?;
        let result = in_node(&node, command, o).await;
        node.shutdown().await;
        result
    })
}

/// Runs a network command (or any content command) inside a running node.
async fn in_node(node: &Node, command: Command, o: &mut Out<'_>) -> Result<()> {
    match command {
        Command::Invite { group, expires } => {
            let ttl = parse_duration(&expires)?;
            let g = node.with_vault(move |v| v.resolve_group(&group)).await?;
            let ticket = node.invite(g, now_ms() + ttl.as_millis() as i64).await?;
            // (The text holds the invite key: wiped once printed.)
            let _ = writeln!(o.out, "{}", ticket.to_text().as_str());
            if let Ok(code) = qrcode::QrCode::new(ticket.to_qr_text().as_bytes()) {
                let _ = writeln!(o.out, "{}", code.render::<qrcode::render::unicode::Dense1x2>().build());
            }
            let _ = writeln!(
                o.err,
                "This ticket works once, until {} from now. Treat it like a key to the group's history: give it only to the person you invite.",
                expires
            );
        }
        Command::Join { ticket, display_name } => {
            let ticket = Ticket::from_text(&ticket)?;
            let name = match display_name {
                Some(n) => n,
                None => node.with_vault(|v| v.label()).await?,
            };
            let g = node.join(&ticket, &name).await?;
            let group_name = node.with_vault(move |v| Ok(v.session(&g)?.name())).await?;
            let _ = writeln!(o.out, "{g}");
            let _ = writeln!(o.err, "You joined {group_name}. Welcome.");
        }
        Command::Sync { group, timeout } => {
            let limit = parse_duration(&timeout)?;
            let (g, name) = node
                .with_vault(move |v| {
                    let g = v.resolve_group(&group)?;
                    Ok((g, v.session(&g)?.name()))
                })
                .await?;
            match tokio::time::timeout(limit, node.sync_all(g)).await {
                Ok(Ok(n)) => {
                    let _ = writeln!(o.err, "Up to date with {n} member(s) of {name}.");
                }
                Ok(Err(NetError::NotAMember)) => bail!(
                    "the members of {name} you reached no longer accept this device: you are not a member of this group any more"
                ),
                _ => bail!(
                    "could not reach anyone in {name} right now; your changes are saved and will be shared when someone is reachable"
                ),
            }
        }
        Command::Init { .. } | Command::Passwd | Command::Serve { .. } | Command::Demo => {
            bail!("stop `alongside serve` for this profile first")
        }
        other => {
            // Through the node, so whatever the command makes durable is pushed at once.
            let (code_out, code_err, result) = node
                .with_vault(move |v| {
                    let (mut out, mut err) = (Vec::new(), Vec::new());
                    let result = commands::execute(
                        v,
                        other,
                        &mut Out {
                            out: &mut out,
                            err: &mut err,
                        },
                    );
                    Ok((out, err, result))
                })
                .await?;
            o.out.write_all(&code_out)?;
            o.err.write_all(&code_err)?;
            result?;
        }
    }
    Ok(())
}

/// `alongside serve`: runs the node and the control socket until Ctrl-C or SIGTERM.
pub(crate) fn serve(dir: &Path, flags: &NetFlags, bind: Option<IpAddr>) -> Result<()> {
    let config = net_config(flags, bind)?;
    let socket = dir.join(SOCKET);
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        bail!("a node is already running for this profile");
    }
    let vault = unlock(dir)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let node = Node::start(vault, config).await?;
        node.go_live();
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).context("could not open the control socket")?;
        restrict(&socket)?;
        let groups = node.with_vault(|v| v.group_ids()).await?;
        for g in &groups {
            if let Some((id, addrs)) = node.address(g) {
                tracing::info!(group = %alongside_core::ids::short_hex(&g.0), endpoint = %alongside_core::ids::short_hex(&id), ?addrs, "serving");
            }
        }
        eprintln!("Serving {} group(s). Other alongside commands on this profile go through this node. Press Ctrl-C to stop.", groups.len());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                biased;
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    handle_control(&node, stream).await;
                }
            }
        }
        let _ = std::fs::remove_file(&socket);
        node.shutdown().await;
        eprintln!("Stopped. Everything is saved.");
        Ok(())
    })
}

async fn handle_control(node: &Node, mut stream: tokio::net::UnixStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = Vec::new();
    if stream.read_to_end(&mut raw).await.is_err() {
        return;
    }
    let reply = match serde_json::from_slice::<Request>(&raw) {
        Err(_) => Reply {
            code: 2,
            out: String::new(),
            err: "alongside: the request could not be read\n".into(),
        },
        Ok(req) => match Cli::try_parse_from(std::iter::once("alongside".to_string()).chain(req.argv)) {
            Err(e) => Reply {
                code: 2,
                out: String::new(),
                err: e.to_string(),
            },
            Ok(Cli { command: None, .. }) => Reply {
                code: 2,
                out: String::new(),
                err: "alongside: no command given\n".into(),
            },
            Ok(Cli { command: Some(cmd), .. }) => {
                let (mut out, mut err) = (Vec::new(), Vec::new());
                let result = in_node(
                    node,
                    cmd,
                    &mut Out {
                        out: &mut out,
                        err: &mut err,
                    },
                )
                .await;
                let code = match result {
                    Ok(()) => 0,
                    Err(e) => {
                        let _ = writeln!(err, "alongside: {e:#}");
                        1
                    }
                };
                Reply {
                    code,
                    out: String::from_utf8_lossy(&out).into_owned(),
                    err: String::from_utf8_lossy(&err).into_owned(),
                }
            }
        },
    };
    let bytes = serde_json::to_vec(&reply).unwrap_or_default();
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

fn restrict(path: &PathBuf) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .context("could not protect the control socket")
}
