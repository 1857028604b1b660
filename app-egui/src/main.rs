//! `alongside`: the Alongside desktop app and its command line.
//!
//! With no command it opens the desktop window (`alongside_app::gui`); with a command it
//! runs headless (see `alongside --help`). All content handling lives in `alongside-core`;
//! the command line parses arguments, asks for the passphrase, and prints views.

mod cli;
mod commands;
mod demo;
mod netcmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "Alongside", "alongside").map(|d| d.data_dir().to_path_buf())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ALONGSIDE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .without_time()
        .init();
    // Panics that core contains (hostile or damaged bytes in a dependency) become errors;
    // keep their noise out of the terminal. Any other panic is reported as usual.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if alongside_core::guard::is_catching() {
            tracing::debug!("contained a dependency panic: {info}");
        } else {
            default_hook(info);
        }
    }));
    let cli = cli::Cli::parse();
    let Some(dir) = cli.data_dir.or_else(default_data_dir) else {
        eprintln!("alongside: could not find a data directory; give one with --data-dir");
        return ExitCode::FAILURE;
    };
    let Some(command) = cli.command else {
        return open_window(dir, &cli.net);
    };
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let mut out = commands::Out {
        out: &mut stdout,
        err: &mut stderr,
    };
    match dispatch(&dir, &cli.net, command, &mut out) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("alongside: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the desktop app on the profile in `dir`.
fn open_window(dir: PathBuf, net: &cli::NetFlags) -> ExitCode {
    let net = match netcmd::net_config(net, None) {
        Ok(net) => net,
        Err(err) => {
            eprintln!("alongside: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let config = alongside_app::gui::GuiConfig {
        data_dir: dir,
        kdf: alongside_app::profile_setup::kdf_from_env(),
        net,
    };
    match alongside_app::gui::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("alongside: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command here, or in the node already serving this profile.
fn dispatch(
    dir: &std::path::Path,
    net: &cli::NetFlags,
    command: cli::Command,
    out: &mut commands::Out<'_>,
) -> anyhow::Result<ExitCode> {
    use cli::Command;
    match command {
        Command::Init { .. } | Command::Passwd => commands::run_local(dir, command, out)?,
        Command::Serve { bind } => netcmd::serve(dir, net, bind)?,
        Command::Demo => demo::run(out)?,
        command => {
            let argv: Vec<String> = std::env::args().skip(1).collect();
            if let Some(reply) = netcmd::forward(dir, &argv)? {
                print!("{}", reply.out);
                eprint!("{}", reply.err);
                return Ok(ExitCode::from(u8::try_from(reply.code).unwrap_or(1)));
            }
            match command {
                Command::Invite { .. } => anyhow::bail!(
                    "no node is running for this profile; start `alongside serve` first so the person you invite can reach you"
                ),
                Command::Join { .. } | Command::Sync { .. } => netcmd::run_once(dir, net, command, out)?,
                other => commands::run_local(dir, other, out)?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
