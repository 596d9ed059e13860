"""Benchmarks of the Python package against the Rust engine it wraps, and against detect-secrets.

    python3 bindings/python/bench.py            # needs the wheel installed and a release build
    python3 bindings/python/bench.py --json     # machine-readable

1. ``engine.scan`` of a 10 MB buffer of real source code vs the same scan in Rust
   (``target/release/sluice-throughput``): target within 10%.
2. Per-call overhead of ``engine.check`` over the Rust decision: target ≤ 2 µs.
3. ``sluice scan`` vs ``detect-secrets scan`` (PyPI) on the same files: wall time and each
   tool's findings, on clean source code and on files with planted synthetic secrets.

The corpus is the Rust and Python sources of the local cargo registry (or SLUICE_BENCH_CORPUS).
Secrets planted here are generated and synthetic.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import shutil
import string
import subprocess
import sys
import tempfile
import time

import sluice

ROOT = pathlib.Path(__file__).resolve().parents[2]
THROUGHPUT = ROOT / "target" / "release" / "sluice-throughput"
SIZE = 10 * 1024 * 1024


def corpus_files() -> list[pathlib.Path]:
    base = os.environ.get("SLUICE_BENCH_CORPUS")
    roots = [pathlib.Path(base)] if base else [pathlib.Path.home() / ".cargo" / "registry" / "src", ROOT]
    files: list[pathlib.Path] = []
    total = 0
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.suffix in {".rs", ".py", ".js", ".ts", ".go", ".c", ".h"} and p.is_file():
                files.append(p)
                total += p.stat().st_size
                if total >= SIZE:
                    return files
    return files


def buffer(files: list[pathlib.Path]) -> bytes:
    data = bytearray()
    for p in files:
        data += p.read_bytes()
        if len(data) >= SIZE:
            break
    while len(data) < SIZE:
        data += data[: SIZE - len(data)]
    return bytes(data[:SIZE])


def best_of(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def scan_comparison(data: bytes) -> dict:
    engine = sluice.Engine()
    with tempfile.NamedTemporaryFile(suffix=".src") as f:
        f.write(data)
        f.flush()
        rust = json.loads(subprocess.run([str(THROUGHPUT), "scan", f.name, "5"], check=True,
                                         capture_output=True, text=True).stdout)
    findings = len(engine.scan(data))
    py = best_of(lambda: engine.scan(data), 5)
    text = data.decode("utf-8", "replace")
    py_str = best_of(lambda: engine.scan(text), 5)
    py_mb_s = len(data) / py / 1e6
    return {
        "bytes": len(data),
        "rust_mb_s": rust["mb_s"],
        "python_bytes_mb_s": round(py_mb_s, 1),
        "python_str_mb_s": round(len(data) / py_str / 1e6, 1),
        "python_vs_rust": round(py_mb_s / rust["mb_s"], 3),
        "findings": {"rust": rust["findings"], "python": findings},
    }


def check_overhead() -> dict:
    engine = sluice.Engine()
    out = {}
    for protocol, command in [("shell", "git status --short"), ("sql", "SELECT id, name FROM users WHERE id = 7")]:
        rust = json.loads(subprocess.run([str(THROUGHPUT), "check", protocol, command, "200000"], check=True,
                                         capture_output=True, text=True).stdout)
        n = 200_000

        def loop() -> None:
            check = engine.check
            for _ in range(n):
                check(protocol, command)

        py_ns = best_of(loop, 5) / n * 1e9
        assert engine.check(protocol, command).decision == rust["decision"]
        out[protocol] = {
            "rust_ns": rust["ns_per_call"],
            "python_ns": round(py_ns, 1),
            "overhead_ns": round(py_ns - rust["ns_per_call"], 1),
        }
    return out


def planted_secrets(rng: random.Random) -> list[tuple[str, str]]:
    """(kind, line) pairs of synthetic secrets in the forms both tools claim to know."""
    alnum = string.ascii_letters + string.digits

    def r(n: int, alphabet: str = alnum) -> str:
        return "".join(rng.choice(alphabet) for _ in range(n))

    upper = string.ascii_uppercase + "234567"
    return [
        ("aws-access-key", f"aws_access_key_id = AKIA{r(16, upper)}"),
        ("stripe", f'stripe.api_key = "sk_live_{r(24)}"'),
        ("slack", f"SLACK_TOKEN=xoxb-{r(11, string.digits)}-{r(12, string.digits)}-{r(24)}"),
        ("private-key", "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(r(64, alnum + "+/") for _ in range(8))
         + "\n-----END RSA PRIVATE KEY-----"),
        ("password", f'db_password = "{r(6)}-{r(8)}!{r(4)}"'),
        ("basic-auth-url", f"url = 'https://deploy:{r(18)}@git.example.com/repo.git'"),
        ("twilio", f"TWILIO_API_KEY=SK{r(32, '0123456789abcdef')}"),
        ("sendgrid", f"SENDGRID_API_KEY=SG.{r(22)}.{r(43)}"),
    ]


def tool_comparison(files: list[pathlib.Path], workdir: pathlib.Path) -> dict:
    clean = workdir / "clean"
    planted = workdir / "planted"
    clean.mkdir()
    planted.mkdir()
    total = 0
    for i, p in enumerate(files):
        data = p.read_bytes()
        (clean / f"{i:05d}{p.suffix}").write_bytes(data)
        total += len(data)
    rng = random.Random(7)
    secrets = planted_secrets(rng)
    for i, (kind, line) in enumerate(secrets * 5):
        (planted / f"config_{i:03d}_{kind}.env").write_text(f"# generated test config\n{line}\nDEBUG=false\n")

    def sluice_scan(path: pathlib.Path, threads: int | None = None) -> tuple[float, int, int]:
        cmd = [sys.executable, "-m", "sluice", "scan", "--format", "json", str(path)]
        if threads:
            cmd[4:4] = ["-j", str(threads)]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        took = time.perf_counter() - t
        found = json.loads(r.stdout)["findings"]
        return took, len(found), len({f["path"] for f in found})

    def detect_secrets(path: pathlib.Path) -> tuple[float, int, int] | None:
        exe = shutil.which("detect-secrets")
        if not exe:
            return None
        t = time.perf_counter()
        r = subprocess.run([exe, "scan", "--all-files", str(path)], capture_output=True, text=True, cwd=path)
        took = time.perf_counter() - t
        results = json.loads(r.stdout)["results"]
        return took, sum(len(v) for v in results.values()), sum(1 for v in results.values() if v)

    out: dict = {"clean_bytes": total, "clean_files": len(files), "planted_files": len(secrets) * 5}
    for name, path in [("clean", clean), ("planted", planted)]:
        s_all = sluice_scan(path)
        s_one = sluice_scan(path, 1)
        d = detect_secrets(path)
        out[name] = {
            "sluice_s": round(s_all[0], 3),
            "sluice_1_thread_s": round(s_one[0], 3),
            "sluice_findings": s_all[1],
            "sluice_files_flagged": s_all[2],
            "detect_secrets_s": round(d[0], 3) if d else None,
            "detect_secrets_findings": d[1] if d else None,
            "detect_secrets_files_flagged": d[2] if d else None,
        }
    if out["clean"]["detect_secrets_s"]:
        out["speedup_clean"] = round(out["clean"]["detect_secrets_s"] / out["clean"]["sluice_s"], 1)
        out["speedup_clean_1_thread"] = round(out["clean"]["detect_secrets_s"] / out["clean"]["sluice_1_thread_s"], 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if not THROUGHPUT.exists():
        print(f"{THROUGHPUT} missing: cargo build --release -p sluice-benches", file=sys.stderr)
        return 2
    files = corpus_files()
    data = buffer(files)
    report = {"scan": scan_comparison(data), "check": check_overhead()}
    with tempfile.TemporaryDirectory() as d:
        report["tools"] = tool_comparison(files, pathlib.Path(d))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    s, c, t = report["scan"], report["check"], report["tools"]
    print(f"scan {s['bytes'] / 1e6:.1f} MB: Rust {s['rust_mb_s']} MB/s, Python bytes {s['python_bytes_mb_s']} MB/s "
          f"({s['python_vs_rust']:.0%} of Rust), str {s['python_str_mb_s']} MB/s; findings {s['findings']}")
    for proto, v in c.items():
        print(f"check {proto}: Rust {v['rust_ns']} ns, Python {v['python_ns']} ns, overhead {v['overhead_ns']} ns")
    for name in ("clean", "planted"):
        v = t[name]
        files = t["clean_files"] if name == "clean" else t["planted_files"]
        print(f"{name} ({files} files): sluice {v['sluice_s']} s, {v['sluice_findings']} findings in "
              f"{v['sluice_files_flagged']} files (1 thread {v['sluice_1_thread_s']} s); detect-secrets "
              f"{v['detect_secrets_s']} s, {v['detect_secrets_findings']} findings in {v['detect_secrets_files_flagged']} files")
    if "speedup_clean" in t:
        print(f"sluice is {t['speedup_clean']}x faster on clean code ({t['speedup_clean_1_thread']}x on one thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
