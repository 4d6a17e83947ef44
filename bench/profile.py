"""Where a cold mount's CPU goes: sample the provider process with py-spy.

Runs the provider in its own process against one backend (as bench/cost.py
does), samples every thread of it with ``py-spy record --format raw`` while it
serves cold mounts, and prints the functions with the most samples, by own
time and by inclusive time, so SDK overhead (request preparation, pipeline
policies, logging) shows next to the network wait. py-spy is a sampling
profiler that attaches from outside (pip install py-spy; needs ptrace, which
root has here), so the provider runs unmodified and on all its threads.

    python bench/profile.py vault --objects 50 --mounts 20 [--top 25] [--raw out.txt]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cost import backend_env, cold_mount, provider_process  # noqa: E402

# Frames that only mean "this thread is waiting" (--gil already drops most): not CPU.
IDLE = ("_worker (concurrent/futures/thread.py", "wait (threading.py", "select (selectors.py")


def summarize(raw: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if any(frames[-1].startswith(idle) for idle in IDLE):
            continue
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"{total} busy samples")
    for title, counter in (("own time", own), ("inclusive time", inclusive)):
        print(f"\ntop {top} by {title}")
        for frame, count in counter.most_common(top):
            print(f"{100 * count / max(total, 1):6.1f}%  {frame[:150]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=["aws", "vault", "azure"])
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--mounts", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", help="keep py-spy's collapsed stacks in this file")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed: pip install py-spy")
        return 2
    from tests.support.running import settings_for

    work = Path(tempfile.mkdtemp(prefix="polysecret-profile-"))
    raw = Path(args.raw) if args.raw else work / "stacks.txt"
    with backend_env(args.backend, args.objects) as env:
        settings = settings_for(work, {args.backend: env.settings})
        params = {**env.parameters, "refreshInterval": "0"}
        with provider_process(settings, env.environ) as proc:

            def mount(i: int) -> None:
                cold_mount(env, params, work, i)

            mount(-1)  # imports, first login, TLS: not what we profile
            record = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "500",
                    "--threads",
                    "--gil",
                    "--nonblocking",
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                import time

                time.sleep(1.0)  # py-spy attaches
                for i in range(args.mounts):
                    mount(i)
            finally:
                record.send_signal(2)
                record.wait(30)
    summarize(raw, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
