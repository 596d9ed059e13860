#!/usr/bin/env python3
"""One run, the same files, every tool: sluice on both backends, ripgrep, detect-secrets, secretlint.

    python3 scripts/compare_scanners.py [--single-mb 95] [--tree-mb 105] [--sample-mb 4] [--json OUT]

Corpora (made once under target/bench-corpus, from this machine's own files):
  single  one file of Python source (the system's standard library, concatenated and repeated)
  tree    many small files: Rust sources from the cargo registry (or Python's, without one)
  sample  the first files of the tree up to --sample-mb, for the tools too slow for the rest

For each tool and corpus: wall time, CPU time (user + system, from the child's rusage), peak
memory (max RSS) and findings. ripgrep searches the usual secret keywords case-insensitively
(lines counted: what a keyword grep reports, not secrets). sluice's Hyperscan backend is run
when the binary given by --sluice-hs (default target/hs/release/sluice) exists:
    cargo build --release -p sluice-cli --features hyperscan --target-dir target/hs
detect-secrets (PyPI) and secretlint (npm, recommended preset, from bindings/node/node_modules)
run when installed:
    pip install detect-secrets; (cd bindings/node && npm install --no-save secretlint \\
        @secretlint/secretlint-rule-preset-recommend)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "target" / "bench-corpus"
KEYWORDS = ["password", "passwd", "secret", "token", "api_key", "apikey", "api-key", "access_key",
            "private key", "credential"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, int, bytes, int]:
    """Runs `cmd`: (wall seconds, CPU seconds, peak RSS in KiB, stdout, exit status). CPU is the
    child's rusage; peak memory is /usr/bin/time's `%M` (the rusage of a child forked from this
    interpreter would count the interpreter's own memory as the tool's)."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as t:
        t0 = time.perf_counter()
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", t.name, *cmd], stdout=out,
                             stderr=subprocess.DEVNULL, cwd=cwd)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return wall, ru.ru_utime + ru.ru_stime, int(t.read().split()[-1]), out.read(), p.returncode


def make_single(mb: int) -> Path:
    path = CORPUS / f"single-{mb}mb.py"
    if path.exists():
        return path
    sources = sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True))
    if not sources:
        sys.exit("no Python sources under /usr/lib/python3* to build the single-file corpus from")
    log(f"making {path} from {len(sources)} Python files")
    CORPUS.mkdir(parents=True, exist_ok=True)
    target = mb * 1_000_000
    written = 0
    with open(path, "wb") as f:
        while written < target:
            for s in sources:
                data = Path(s).read_bytes()
                f.write(data)
                written += len(data)
                if written >= target:
                    break
    return path


def tree_sources() -> list[str]:
    home = Path.home()
    crates = sorted(glob.glob(str(home / ".cargo/registry/src/*/*/src/**/*.rs"), recursive=True))
    if crates:
        return crates
    return sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True))


def make_tree(name: str, mb: float) -> Path:
    path = CORPUS / f"{name}-{mb:g}mb"
    if path.exists():
        return path
    sources = tree_sources()
    log(f"making {path} from up to {len(sources)} source files")
    tmp = path.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    total, n = 0, 0
    for s in sources:
        data = Path(s).read_bytes()
        if b"\0" in data[:8000]:
            continue
        d = tmp / f"d{n // 500}"
        d.mkdir(exist_ok=True)
        (d / f"f{n}{Path(s).suffix}").write_bytes(data)
        total += len(data)
        n += 1
        if total >= mb * 1_000_000:
            break
    tmp.rename(path)
    return path


def size_of(path: Path) -> tuple[int, int]:
    if path.is_file():
        return path.stat().st_size, 1
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def sluice(binary: Path, backend: str):
    def go(path: Path):
        wall, cpu, rss, out, code = run([str(binary), "scan", "--backend", backend, "--format", "json",
                                         "--max-file-size", str(1 << 34), str(path)])
        if code not in (0, 1):
            raise RuntimeError(f"sluice exited {code}")
        return wall, cpu, rss, len(json.loads(out)["findings"])
    return go


def ripgrep(path: Path):
    cmd = ["rg", "-i", "--count", "--no-filename", "--no-messages", "-uuu"]
    for k in KEYWORDS:
        cmd += ["-e", k]
    wall, cpu, rss, out, code = run(cmd + [str(path)])
    if code not in (0, 1):
        raise RuntimeError(f"rg exited {code}")
    return wall, cpu, rss, sum(int(x) for x in out.split())


def detect_secrets(path: Path):
    cmd = ["detect-secrets", "scan", "--all-files"]
    wall, cpu, rss, out, code = run(cmd + ([str(path)] if path.is_file() else ["."]),
                                    cwd=None if path.is_file() else path)
    if code != 0:
        raise RuntimeError(f"detect-secrets exited {code}")
    return wall, cpu, rss, sum(len(v) for v in json.loads(out)["results"].values())


def secretlint(path: Path):
    binary = ROOT / "bindings/node/node_modules/.bin/secretlint"
    with tempfile.TemporaryDirectory() as d:
        rc = Path(d) / ".secretlintrc.json"
        rc.write_text(json.dumps({"rules": [{"id": "@secretlint/secretlint-rule-preset-recommend"}]}))
        pattern = str(path) if path.is_file() else f"{path}/**/*"
        wall, cpu, rss, out, code = run([str(binary), pattern, "--format", "json", "--secretlintrc", str(rc),
                                         "--no-maskSecrets"], cwd=ROOT / "bindings/node")
    if code not in (0, 1):
        raise RuntimeError(f"secretlint exited {code}")
    text = out.decode().strip()
    found = sum(len(r.get("messages", [])) for r in json.loads(text)) if text else 0
    return wall, cpu, rss, found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--single-mb", type=int, default=95)
    ap.add_argument("--tree-mb", type=float, default=105)
    ap.add_argument("--sample-mb", type=float, default=4)
    ap.add_argument("--sluice", default=str(ROOT / "target/release/sluice"))
    ap.add_argument("--sluice-hs", default=str(ROOT / "target/hs/release/sluice"))
    ap.add_argument("--runs", type=int, default=3, help="runs of each fast tool (the best is kept)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    tools = []
    if Path(args.sluice).exists():
        tools.append(("sluice (pure Rust)", sluice(Path(args.sluice), "rust"), True))
    else:
        sys.exit(f"{args.sluice} not found: cargo build --release -p sluice-cli")
    if Path(args.sluice_hs).exists():
        tools.append(("sluice (Hyperscan)", sluice(Path(args.sluice_hs), "hyperscan"), True))
    else:
        log(f"{args.sluice_hs} not found: the Hyperscan backend is not measured")
    if shutil.which("rg"):
        tools.append(("ripgrep (keywords)", ripgrep, True))
    else:
        log("rg not found (apt-get install ripgrep): not measured")
    if shutil.which("detect-secrets"):
        tools.append(("detect-secrets", detect_secrets, False))
    else:
        log("detect-secrets not found (pip install detect-secrets): not measured")
    if (ROOT / "bindings/node/node_modules/.bin/secretlint").exists():
        tools.append(("secretlint", secretlint, False))
    else:
        log("secretlint not found in bindings/node/node_modules: not measured")

    corpora = [("single file", make_single(args.single_mb), True),
               ("tree", make_tree("tree", args.tree_mb), True),
               ("sample of the tree", make_tree("sample", args.sample_mb), False)]
    results = []
    for cname, path, big in corpora:
        size, files = size_of(path)
        for tname, tool, fast in tools:
            if big and not fast:
                continue
            best = None
            for _ in range(args.runs if fast else 1):
                r = tool(path)
                if best is None or r[0] < best[0]:
                    best = r
            wall, cpu, rss, found = best
            row = {"corpus": cname, "bytes": size, "files": files, "tool": tname, "wall_s": round(wall, 4),
                   "cpu_s": round(cpu, 4), "peak_rss_mib": round(rss / 1024, 1), "findings": found,
                   "mb_per_cpu_s": round(size / 1e6 / max(cpu, 1e-6), 1)}
            results.append(row)
            log(f"{cname:20} {tname:20} wall {wall:7.3f}s cpu {cpu:7.3f}s rss {rss / 1024:7.1f} MiB "
                f"findings {found}")

    print("| corpus | tool | wall | CPU | MB per CPU-second | peak memory | findings |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        rg = next((x for x in results if x["corpus"] == r["corpus"] and x["tool"].startswith("ripgrep")), None)
        ratio = f" ({r['cpu_s'] / rg['cpu_s']:.1f}× rg CPU, {r['wall_s'] / rg['wall_s']:.1f}× wall)" \
            if rg and r is not rg and rg["cpu_s"] > 0 else ""
        print(f"| {r['corpus']} ({r['bytes'] / 1e6:.0f} MB, {r['files']} files) | {r['tool']} | {r['wall_s']} s"
              f" | {r['cpu_s']} s{ratio} | {r['mb_per_cpu_s']} | {r['peak_rss_mib']} MiB | {r['findings']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
