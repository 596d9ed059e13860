#!/usr/bin/env bash
# Instruction counts of the core hot paths, by valgrind (cachegrind): deterministic where
# wall-clock figures on a shared machine are not. One agent-safe decision (the policy bench's
# shell and SQL requests), and scanning and redacting one MiB of generated code-like text (the
# same bytes on every machine).
#
#   scripts/instructions.sh            print the counts
#   scripts/instructions.sh --check    also compare them with benches/instructions.json and fail
#                                      (exit 1) when one grew by more than its tolerance
#   scripts/instructions.sh --update   write the counts to benches/instructions.json
#
# Each count is the difference of two runs (N loops and none), so start-up and compilation
# cancel out. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
baseline=benches/instructions.json
cargo build --release -q --locked -p sluice-benches --bin sluice-decide-loop
bin=target/release/sluice-decide-loop
refs() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        awk '/I *refs/ { gsub(",", "", $NF); print $NF }'
}
declare -A per
for spec in shell:20000 sql:20000 scan:3 redact:3; do
    what="${spec%%:*}"
    n="${spec##*:}"
    base=$(refs "$what" 0)
    loop=$(refs "$what" "$n")
    per[$what]=$(((loop - base) / n))
done
echo "shell decision: ${per[shell]} instructions"
echo "sql decision:   ${per[sql]} instructions"
echo "scan 1 MiB:     ${per[scan]} instructions ($((per[scan] / 1048576)) per byte)"
echo "redact 1 MiB:   ${per[redact]} instructions"
counts=$(printf '{"shell": %d, "sql": %d, "scan": %d, "redact": %d}' "${per[shell]}" "${per[sql]}" "${per[scan]}" "${per[redact]}")
case "$mode" in
--update)
    python3 - "$baseline" "$counts" <<'PY'
import json, sys
path, counts = sys.argv[1], json.loads(sys.argv[2])
doc = json.load(open(path)) if __import__("os").path.exists(path) else {}
doc.setdefault("tolerance", 0.15)
doc["counts"] = counts
json.dump(doc, open(path, "w"), indent=2)
open(path, "a").write("\n")
print(f"wrote {path}")
PY
    ;;
--check)
    python3 - "$baseline" "$counts" <<'PY'
import json, sys
path, counts = sys.argv[1], json.loads(sys.argv[2])
doc = json.load(open(path))
tol, base = doc["tolerance"], doc["counts"]
bad = []
for k, v in counts.items():
    change = (v - base[k]) / base[k]
    print(f"{k}: {base[k]} -> {v} ({change:+.1%}, tolerance +{tol:.0%})")
    if change > tol:
        bad.append(k)
if bad:
    sys.exit(f"instruction counts regressed beyond the tolerance: {', '.join(bad)} "
             f"(if intended, run scripts/instructions.sh --update and commit {path})")
PY
    ;;
"") ;;
*)
    echo "usage: scripts/instructions.sh [--check|--update]" >&2
    exit 2
    ;;
esac
