//! The fuzz targets' entry points (`alongside_core::fuzz`, run by `fuzz/run.sh`), held to
//! what they promise without a fuzzer: every seed the fuzzer starts from is accepted;
//! every cut-short seed is refused with a clean error; and every input a fuzzer once
//! found crashing (kept under `fuzz/regressions/<target>/`) now gets a clean error.

use std::path::Path;

use alongside_core::fuzz::{Entry, TARGETS, frames, seeds};

fn entry(target: &str) -> Entry {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"))
        .1
}

/// Also writes the seeds, one file each in a folder per target, under the directory
/// `FUZZ_SEEDS_OUT` names if it is set: `fuzz/run.sh` starts the fuzzers from them.
#[test]
fn every_seed_is_accepted_and_every_target_has_one() {
    let seeds = seeds();
    for (target, input) in &seeds {
        let got = entry(target)(input);
        assert!(got.is_ok(), "{target} refused its seed: {got:?}");
    }
    for (name, _) in TARGETS {
        assert!(seeds.iter().any(|(t, _)| *t == name), "no seed for {name}");
    }
    if let Some(out) = std::env::var_os("FUZZ_SEEDS_OUT") {
        for (i, (target, input)) in seeds.iter().enumerate() {
            let folder = Path::new(&out).join(target);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(format!("seed-{i:03}")), input).unwrap();
        }
    }
}

#[test]
fn a_seed_cut_short_anywhere_is_refused_with_a_clean_error() {
    for (target, input) in seeds() {
        // Up to 48 cuts per seed, spread over its length.
        let step = (input.len() / 48).max(1);
        for len in (1..input.len()).step_by(step) {
            let cut = &input[..len];
            if target == "frames" {
                // A stream cut short yields fewer whole frames, or fails on a short one.
                let whole = frames(&input).unwrap();
                assert!(
                    frames(cut).is_ok_and(|n| n < whole) || frames(cut).is_err(),
                    "{target} at {len}"
                );
                continue;
            }
            let got = entry(target)(cut);
            assert!(
                got.as_ref().is_err_and(|e| !e.is_empty()),
                "{target} cut at {len}: {got:?}"
            );
        }
    }
}

#[test]
fn every_input_a_fuzzer_found_crashing_now_gets_a_clean_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut checked = 0;
    for (target, run) in TARGETS {
        let Ok(found) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for file in found {
            let path = file.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let got = run(&input);
            assert!(
                got.as_ref().is_err_and(|e| !e.is_empty()),
                "{}: {got:?}",
                path.display()
            );
            checked += 1;
        }
    }
    // The folder exists and is read (a renamed folder would silently check nothing).
    assert!(root.is_dir(), "{} is missing", root.display());
    let listed = std::fs::read_dir(&root).unwrap().count();
    assert!(
        checked > 0 || listed <= 1,
        "inputs under {} were not checked",
        root.display()
    );
}
