//! Running the real `alongside` binary from tests.
// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

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
