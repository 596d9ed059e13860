#!/usr/bin/env bash
# Installs what the tests need and runs all of them. Used by `.ci/run` and by developers.
# Today: the Rust workspace (unit, property, doc and CLI tests), the rules' own examples, a scan
# of this repository (it must be clean), and the detector evaluation when ../shared/eval exists.
# Python, Node and end-to-end suites join here as their issues land.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 2
fi
cargo --version
python3 --version || true

step "formatting"
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all -- --check
else
    echo "rustfmt not installed: formatting not checked"
fi

step "build (release)"
cargo build --release --workspace --locked 2>&1 | tail -n 3

step "rust tests (unit, property, doctests, CLI)"
cargo test --workspace --locked

step "built-in rules: every example found, no counter-example"
./target/release/sluice rules --check | tail -n 1

step "self-scan: the repository holds no secrets outside .sluiceignore'd fixtures"
./target/release/sluice scan .

step "benchmarks compile (run them with: cargo bench -p sluice-benches)"
cargo bench -p sluice-benches --no-run --locked 2>&1 | tail -n 1

EVAL="${SLUICE_EVAL_DIR:-../shared/eval}"
if [ -f "$EVAL/score.py" ]; then
    step "detector evaluation ($EVAL)"
    python3 "$EVAL/score.py" --bin target/release/sluice --corpus "$EVAL/dev-corpus" \
        --min-recall 0.97 --max-leak-rate 0 --max-decoy-flag-rate 0.02 | tail -n 25
else
    step "detector evaluation skipped: $EVAL not found (set SLUICE_EVAL_DIR)"
fi

step "all tests passed"
