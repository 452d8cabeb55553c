#!/usr/bin/env python3
"""The address-space curve of one apply: under each RLIMIT_AS, does the C harness (dlopen, the
legacy adu_diff_apply* calls, as the agent makes them) rebuild the target exactly, in what time,
at what peak RSS and peak address space?

    scripts/bench-address-space.py SOURCE DELTA EXPECTED_TARGET [LIMIT_MIB ...]

LIMIT_MIB defaults to 96 112 128 192 256 384 512 768 and "none" (no limit). Builds the release
library and the harness first. Prints a markdown table; the peaks are the harness process's own
VmHWM (resident set) and VmPeak (address space) from /proc/self/status at its end
(`agent_harness --peaks`). The target is written in a temporary directory (TMPDIR).
"""

import hashlib
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "target/release/agent_harness")
DEFAULT_LIMITS = ["96", "112", "128", "192", "256", "384", "512", "768", "none"]


def build():
    subprocess.run(["cargo", "build", "--release", "--lib"], cwd=ROOT, check=True)
    subprocess.run(
        ["cc", "-std=c99", "-O2", "-o", HARNESS, "examples/agent_harness.c", "-ldl"],
        cwd=ROOT,
        check=True,
    )


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(limit, source, delta, out):
    """One apply under `limit` MiB of address space (None: unlimited): (result line, seconds,
    VmHWM KiB, VmPeak KiB, whole output)."""
    if os.path.exists(out):
        os.unlink(out)

    def set_limit():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit << 20, limit << 20))

    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(ROOT, "target/release"))
    start = time.monotonic()
    done = subprocess.run(
        [HARNESS, "--peaks", source, delta, out],
        env=env,
        preexec_fn=set_limit,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - start
    output = done.stdout + done.stderr
    result = next(
        (line[len("result: ") :] for line in output.splitlines() if line.startswith("result: ")),
        f"exit {done.returncode}",
    )
    peaks = next((line.split() for line in output.splitlines() if line.startswith("peaks: ")), None)
    if peaks is None:
        raise SystemExit(f"no peaks line from the harness:\n{output}")
    # "peaks: VmPeak <n> kB VmHWM <n> kB"
    return result, seconds, int(peaks[5]), int(peaks[2]), output


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    source, delta, expected = sys.argv[1:4]
    limits = sys.argv[4:] or DEFAULT_LIMITS
    build()
    want = sha256(expected)
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, load before: "
        f"{' '.join(open('/proc/loadavg').read().split()[:3])}, date: "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}"
    )
    print()
    print("| `RLIMIT_AS` | result | time (s) | peak RSS (MiB) | peak address space (MiB) | byte-exact |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:  # honours TMPDIR
        out = os.path.join(work, "out")
        for text in limits:
            limit = None if text == "none" else int(text)
            result, seconds, hwm, peak, output = run(limit, source, delta, out)
            exact = os.path.exists(out) and sha256(out) == want
            if result != "ok":
                err = next((line for line in output.splitlines() if "text=" in line), "")
                why = err.split("text=", 1)[-1].split(";")[0]
                result = f"{result}: {why[:90]}{'…' if len(why) > 90 else ''}" if err else result
            label = "none" if limit is None else f"{limit} MiB"
            print(
                f"| {label} | {result} | {seconds:.1f} | {hwm // 1024} | {peak // 1024} | "
                f"{'yes' if exact else 'no'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
