#!/usr/bin/env bash
# Installs what the tests need and runs all of them. Used by `.ci/run` and by developers.
# The Rust workspace (unit, property, doc and CLI tests, with a real redis-server for the grant
# replay store; the security oracle over generated conversations), the rules' own examples, the policy schema and policy test cases, the Python
# package (wheel built from source with maturin, then pytest against the installed wheel), the
# end-to-end suites against real PostgreSQL, MariaDB and MCP servers, a scan of this repository
# (it must be clean), bounded fuzz runs of every session under the security oracle, and the
# detector evaluation when ../shared/eval exists.
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

step "services and tools the tests need"
need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
[ -x "$PG_BIN/initdb" ] || need_apt+=(postgresql-15)
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client-15)
command -v pgbench >/dev/null 2>&1 || need_apt+=(postgresql-contrib-15)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
command -v mysql >/dev/null 2>&1 || need_apt+=(mariadb-client)
# The e2e tests make a CA and server certificates for TLS to PostgreSQL.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The hook tests type-check fixtures with the agents' npm type packages (e2e/hooks).
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The approval service's web page is driven in a real headless browser (e2e/test_approvals.py).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# The optional Hyperscan backend is tested against the pure-Rust one (the system library).
[ -f /usr/include/hs/hs.h ] || need_apt+=(libhyperscan-dev)
# The instruction-count regression guard (scripts/instructions.sh).
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if [ "${#need_apt[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
bash scripts/build-deps.sh
redis-server --version
pip_install() {
    local out
    if out=$(python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "$@" 2>&1); then
        return 0
    fi
    # Debian's system Python refuses plain `pip install` (PEP 668) unless told otherwise.
    if grep -q externally-managed <<<"$out"; then
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
            --break-system-packages "$@"
    else
        echo "$out" >&2
        return 1
    fi
}
PY_MODULES='import jsonschema, yaml, pytest, psycopg, mcp, pymysql, mysql.connector, maturin, mypy, langchain_core, jwt, cryptography, pre_commit, abi3audit, selenium'
python3 -c "$PY_MODULES" 2>/dev/null ||
    pip_install jsonschema pyyaml pytest 'psycopg[binary]' mcp pymysql mysql-connector-python \
        'maturin>=1.9,<2' mypy langchain-core 'pyjwt[crypto]' pre-commit abi3audit selenium
python3 -c "$PY_MODULES"
export PG_BIN
# Tests that need a service fail (instead of skipping) when it is missing.
export SLUICE_REQUIRE_SERVICES=1

df -h . | tail -n 1

step "formatting"
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all -- --check
else
    echo "rustfmt not installed: formatting not checked"
fi

step "lints and API docs (clippy and rustdoc, warnings are errors)"
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --workspace --all-targets --locked -- -D warnings 2>&1 | tail -n 1
else
    echo "clippy not installed: lints not checked"
fi
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked 2>&1 | tail -n 1

step "build (release, with the example proxies)"
# The Python module is built by maturin below (as an extension module, with its own flags).
cargo build --release --workspace --exclude sluice-python --locked --bins --examples 2>&1 | tail -n 3

step "rust tests (unit, property, doctests, CLI)"
cargo test --workspace --exclude sluice-python --locked

step "hyperscan backend: the same findings as the pure-Rust one (differential test), lints"
# (pipefail: a failing test fails the step; only the summary lines are shown)
cargo test --release -p sluice-core --features hyperscan --locked --lib -- detect:: 2>&1 |
    grep -E "^test result|FAILED|panicked|^error"
cargo test --release -p sluice-core --features hyperscan --locked --test backends 2>&1 |
    grep -E "^test result|FAILED|panicked|^error"
cargo clippy -p sluice-core -p sluice-cli --features sluice-core/hyperscan --all-targets --locked -- -D warnings 2>&1 | tail -n 1
if [ "${SLUICE_PRUNE_DEBUG:-0}" = 1 ]; then
    # Set by .ci/run: nothing below uses the debug build, and a small disk needs the room.
    rm -rf target/debug
fi
df -h . | tail -n 1

step "python: build the abi3 wheel from source (maturin) and install it"
rm -rf target/wheels
python3 -m maturin build --release --locked --out target/wheels 2>&1 | tail -n 2
# The wheel claims the stable ABI from 3.9 (cp39-abi3): check that the module uses nothing else.
python3 -m abi3audit --strict --verbose target/wheels/sluice-*.whl 2>&1 | tail -n 2
pip_install --force-reinstall --no-deps target/wheels/sluice-*.whl
python3 -c 'import sluice; print("sluice", sluice.__version__, "from", sluice.__file__)'

step "python tests (pytest against the installed wheel: vectors, policy cases, API, CLI, MCP SDK, LangChain, stubs)"
python3 -m pytest -q bindings/python/tests

step "node: build the addon from source (napi-rs) and run its tests (node:test, tsc --strict)"
(
    cd bindings/node
    npm ci --no-audit --no-fund --loglevel=error
    npm run build 2>&1 | tail -n 1
    npm test 2>&1 | tail -n 9
)

step "built-in rules: every example found, no counter-example"
./target/release/sluice rules --check | tail -n 1

step "policy: schema, example policy tests"
python3 scripts/check_policy_schema.py
./target/release/sluice policy test testdata/policy/examples/team.yaml testdata/policy/examples/team-cases.yaml
./target/release/sluice policy test agent-safe testdata/policy/agent-safe.json | tail -n 1

step "end-to-end: real PostgreSQL and MariaDB, psql, mysql, psycopg, PyMySQL, mysql-connector and the official MCP SDK through the example proxies; agent hooks type-checked with tsc"
python3 -m pytest -q e2e

step "self-scan: the repository holds no secrets outside .sluiceignore'd fixtures"
./target/release/sluice scan .

step "fuzz: every session under the security oracle, bounded (longer runs: see the README)"
# cargo-fuzz from crates.io; libFuzzer needs the sanitizer flags of a nightly compiler, which
# RUSTC_BOOTSTRAP=1 enables on stable.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz 2>&1 | tail -n 1
fi
(
    cd fuzz
    export RUSTC_BOOTSTRAP=1
    cargo fuzz build 2>&1 | tail -n 1
    for t in session_postgres session_mysql session_mcp session_http session_ssh oracle sessions; do
        cargo fuzz run "$t" -- -max_total_time="${SLUICE_FUZZ_SECONDS:-20}" -max_len=4096 2>&1 |
            grep -E '^(Done|==|SUMMARY)|panicked' | tail -n 2
    done
)

step "benchmarks compile (run them with: cargo bench -p sluice-benches)"
cargo bench -p sluice-benches --no-run --locked 2>&1 | tail -n 1

step "instruction counts: no large regression against benches/instructions.json (valgrind)"
bash scripts/instructions.sh --check

EVAL="${SLUICE_EVAL_DIR:-../shared/eval}"
if [ -f "$EVAL/score.py" ]; then
    step "detector evaluation ($EVAL)"
    python3 "$EVAL/score.py" --bin target/release/sluice --corpus "$EVAL/dev-corpus" \
        --min-recall 0.97 --max-leak-rate 0 --max-decoy-flag-rate 0.02 | tail -n 25
else
    step "detector evaluation skipped: $EVAL not found (set SLUICE_EVAL_DIR)"
fi

step "all tests passed"
