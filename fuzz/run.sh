#!/usr/bin/env bash
# Runs every fuzz target for a while, starting from seeds made fresh (`alongside_core::fuzz::seeds`).
#   bash fuzz/run.sh            # 30 s per target (what .ci/run does)
#   bash fuzz/run.sh 600 frames # ten minutes on one target
# Needs the nightly toolchain; installs cargo-fuzz from crates.io if it is missing.
# A crash stops the run with a non-zero exit and leaves the input in
# fuzz/artifacts/<target>/: fix it, then keep it under fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

each="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frames sealed_unit payload ticket membership_op store_record payload_budget)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# The seeds are written by the test that checks them (built like the README's test
# command, so after it nothing is compiled again).
seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
FUZZ_SEEDS_OUT="$seeds" cargo test --workspace --locked --test fuzz_regressions -q -- every_seed

cd fuzz
# No sanitizer: the code is safe Rust (unsafe is forbidden in the workspace); what the
# fuzzer looks for is a panic, a hang or a runaway allocation.
cargo +nightly fuzz build --sanitizer none
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== fuzzing $t for ${each}s"
    cargo +nightly fuzz run --sanitizer none "$t" "corpus/$t" "$seeds/$t" -- \
        -seed=1 -max_total_time="$each" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
