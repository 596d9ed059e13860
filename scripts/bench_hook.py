#!/usr/bin/env python3
"""Wall time of `sluice hook` per event, process start and policy load included.

Runs each payload through the real binary many times (hyperfine-style: warm-up, then repeated
runs, median and p95) next to a bare process start of the same binary (`sluice --version`) and
of `/bin/true`, in the same run, so a busy machine shows in the reference too.

    python3 scripts/bench_hook.py [--runs 200] [--bin target/release/sluice]
"""
import argparse
import json
import secrets
import statistics
import string
import subprocess
import time


def stripe_key() -> str:
    # Synthetic, generated per run: never a real credential.
    return "sk_live_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def cases():
    big = "\n".join(f"line {i}: ordinary build output, nothing secret here" for i in range(2000))
    return [
        ("claude-code", "PreToolUse", "shell: cargo test", {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "cargo test --workspace 2>&1 | tail -20"}}),
        ("claude-code", "PreToolUse", "shell: credentials (deny)", {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "cat ~/.aws/credentials"}}),
        ("claude-code", "PreToolUse", "read file", {"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {"file_path": "/home/dev/proj/src/main.rs"}}),
        ("claude-code", "PreToolUse", "write file (scanned)", {"hook_event_name": "PreToolUse", "tool_name": "Write", "tool_input": {"file_path": "/home/dev/proj/src/lib.rs", "content": "fn main() {}\n" * 50}}),
        ("claude-code", "UserPromptSubmit", "prompt (scanned)", {"hook_event_name": "UserPromptSubmit", "prompt": "please refactor the parser and run the tests"}),
        ("claude-code", "UserPromptSubmit", "prompt with a secret (deny)", {"hook_event_name": "UserPromptSubmit", "prompt": f"use {stripe_key()} for the test"}),
        ("claude-code", "PostToolUse", "output, 100 KB (masked)", {"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {"command": "make"}, "tool_response": {"stdout": big + f"\nKEY={stripe_key()}\n", "stderr": ""}}),
        ("gemini", "BeforeTool", "gemini shell", {"hook_event_name": "BeforeTool", "tool_name": "run_shell_command", "tool_input": {"command": "ls -la"}}),
        ("cursor", "beforeShellExecution", "cursor shell", {"hook_event_name": "beforeShellExecution", "command": "npm test", "cwd": "."}),
        ("codex", "PreToolUse", "codex apply_patch", {"hook_event_name": "PreToolUse", "tool_name": "apply_patch", "tool_input": {"command": "*** Begin Patch\n*** Add File: src/a.rs\n+fn a() {}\n*** End Patch\n"}}),
    ]


def timed(cmd, data: bytes, runs: int):
    for _ in range(max(3, runs // 20)):
        subprocess.run(cmd, input=data, capture_output=True)
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        subprocess.run(cmd, input=data, capture_output=True)
        t.append((time.perf_counter() - s) * 1000)
    t.sort()
    return statistics.median(t), t[int(len(t) * 0.95) - 1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--bin", default="target/release/sluice")
    a = ap.parse_args()
    ref_true = timed(["/bin/true"], b"", a.runs)
    ref_start = timed([a.bin, "--version"], b"", a.runs)
    print(f"{'event':44} {'median ms':>10} {'p95 ms':>8}")
    print(f"{'reference: /bin/true':44} {ref_true[0]:10.2f} {ref_true[1]:8.2f}")
    print(f"{'reference: sluice --version (process start)':44} {ref_start[0]:10.2f} {ref_start[1]:8.2f}")
    worst = 0.0
    for agent, event, name, payload in cases():
        med, p95 = timed([a.bin, "hook", agent, event], json.dumps(payload).encode(), a.runs)
        worst = max(worst, med)
        print(f"{agent + ' ' + name:44} {med:10.2f} {p95:8.2f}")
    print(f"slowest median {worst:.2f} ms (target < 10 ms); process start alone {ref_start[0]:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
