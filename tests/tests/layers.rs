//! Architecture invariants from docs/ARCHITECTURE.md, checked on the real dependency graph.

use std::process::Command;

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The names of the packages `package` depends on (normal edges), to `depth` if given.
fn dependencies(package: &str, depth: Option<u32>) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root())
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none", "-p", package]);
    if let Some(d) = depth {
        cmd.args(["--depth", &d.to_string()]);
    }
    let out = cmd.output().expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn core_depends_on_no_async_runtime_network_or_gui_crate() {
    let deps = dependencies("alongside-core", None);
    assert!(deps.iter().any(|d| d == "automerge"), "the check sees the real graph");
    for forbidden in ["tokio", "iroh", "egui", "eframe", "winit", "wgpu", "async-std", "mio"] {
        assert!(
            !deps
                .iter()
                .any(|d| d == forbidden || d.starts_with(&format!("{forbidden}-"))),
            "alongside-core depends on {forbidden}"
        );
    }
}

#[test]
fn the_app_does_not_depend_on_automerge_directly() {
    let direct = dependencies("alongside-app", Some(1));
    assert!(
        direct.iter().any(|d| d == "alongside-core"),
        "the check sees the real graph"
    );
    assert!(
        !direct.iter().any(|d| d == "automerge" || d == "autosurgeon"),
        "alongside-app uses automerge directly"
    );
}
