#!/usr/bin/env python3
"""Compare Sluice's embedded agent-safe policy with safe-chains on the same commands.

safe-chains (crates.io) is an allowlist checker for coding agents: a command it recognises as
safe is auto-allowed, anything else goes to the human. Sluice decides allow / require_approval /
deny. Both are run on every line of a labelled command list (`ordinary` development work an agent
does unasked, `dangerous` commands that should be asked or denied); a command is "let through"
when Sluice says allow or safe-chains exits 0. The report counts, per label, what each tool lets
through and lists every command where they disagree.

    cargo install safe-chains            # once
    cargo build --release -p sluice-cli
    python3 scripts/compare_safe_chains.py [--markdown report.md]

Exit status: 0 when the comparison ran (disagreements are findings, not failures); 2 when a tool
is missing or a command list line is malformed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            label, sep, command = line.partition("\t")
            if not sep or label not in ("ordinary", "dangerous") or not command:
                sys.exit(f"{path}:{n}: expected `ordinary|dangerous<TAB>command`, got {line!r}")
            rows.append((label, command.replace("\\n", "\n")))
    return rows


def sluice(binary, command):
    p = subprocess.run(
        [binary, "check", "--protocol", "shell", "-"],
        input=command, capture_output=True, text=True, timeout=30,
    )
    try:
        return json.loads(p.stdout)["decision"]
    except (ValueError, KeyError):
        sys.exit(f"sluice gave no decision for {command!r}: {p.stdout!r} {p.stderr!r}")


def safe_chains(binary, level, command):
    args = [binary]
    if level:
        args += ["--level", level]
    p = subprocess.run(args + [command], capture_output=True, text=True, timeout=30)
    if p.returncode not in (0, 1):
        sys.exit(f"safe-chains failed on {command!r} (exit {p.returncode}): {p.stderr.strip()}")
    return p.returncode == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", default=os.path.join(ROOT, "testdata/compare/shell-commands.tsv"))
    ap.add_argument("--sluice", default=os.path.join(ROOT, "target/release/sluice"))
    ap.add_argument("--safe-chains", default=shutil.which("safe-chains")
                    or os.path.expanduser("~/.cargo/bin/safe-chains"))
    ap.add_argument("--level", default="", help="safe-chains --level (default: its own default)")
    ap.add_argument("--markdown", help="also write the report as Markdown to this file")
    a = ap.parse_args()
    for name, path in (("sluice", a.sluice), ("safe-chains", a.safe_chains)):
        if not path or not os.access(path, os.X_OK):
            hint = "cargo build --release -p sluice-cli" if name == "sluice" else "cargo install safe-chains"
            print(f"{name} not found at {path!r}: {hint}", file=sys.stderr)
            return 2
    rows = load(a.commands)
    results = []
    for i, (label, command) in enumerate(rows, 1):
        s = sluice(a.sluice, command)
        c = safe_chains(a.safe_chains, a.level, command)
        results.append((label, command, s, c))
        if i % 50 == 0:
            print(f"  {i}/{len(rows)} commands", file=sys.stderr)

    out = []
    out.append(f"{len(rows)} commands ({sum(r[0] == 'ordinary' for r in rows)} ordinary, "
               f"{sum(r[0] == 'dangerous' for r in rows)} dangerous)\n")
    out.append("| | ordinary let through | dangerous let through |")
    out.append("|---|---|---|")
    for name, through in (("sluice agent-safe (allow)", lambda r: r[2] == "allow"),
                          ("safe-chains (auto-allowed)", lambda r: r[3])):
        cells = []
        for label in ("ordinary", "dangerous"):
            group = [r for r in results if r[0] == label]
            n = sum(1 for r in group if through(r))
            cells.append(f"{n}/{len(group)} ({100 * n / max(len(group), 1):.0f}%)")
        out.append(f"| {name} | {cells[0]} | {cells[1]} |")
    sluice_decisions = {}
    for label, _, s, _ in results:
        sluice_decisions.setdefault(label, {}).setdefault(s, 0)
        sluice_decisions[label][s] += 1
    out.append("")
    for label in ("ordinary", "dangerous"):
        d = sluice_decisions.get(label, {})
        out.append(f"sluice on {label}: " + ", ".join(f"{k} {v}" for k, v in sorted(d.items())))
    disagree = [r for r in results if (r[2] == "allow") != r[3]]
    out.append(f"\n{len(disagree)} disagreements:\n")
    out.append("| label | command | sluice | safe-chains |")
    out.append("|---|---|---|---|")
    for label, command, s, c in disagree:
        shown = command.replace("|", "\\|").replace("\n", "⏎")
        out.append(f"| {label} | `{shown}` | {s} | {'allow' if c else 'ask'} |")
    text = "\n".join(out)
    print(text)
    if a.markdown:
        with open(a.markdown, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
