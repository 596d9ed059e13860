#!/usr/bin/env bash
# Instructions one agent-safe decision takes (the policy bench's shell and SQL requests), counted
# by valgrind: deterministic where wall-clock figures on a shared machine are not.
#   usage: scripts/decision_instructions.sh [N]   (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20000}"
cargo build --release -q -p sluice-benches --bin sluice-decide-loop
bin=target/release/sluice-decide-loop
refs() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        awk '/I *refs/ { gsub(",", "", $NF); print $NF }'
}
for what in shell sql; do
    base=$(refs "$what" 0)
    loop=$(refs "$what" "$n")
    echo "$what: $(((loop - base) / n)) instructions per decision"
done
