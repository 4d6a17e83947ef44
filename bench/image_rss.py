"""Idle RSS of the provider in its image, per event loop: what every node pays.

Starts the image (``make image``: POLYSECRET_IMAGE, localhost/polysecret:dev)
under podman, as tests/image does, with ``--event-loop`` auto (uvloop) and
asyncio in turn, waits until it serves, and reads VmRSS of the container's
server process from the host's /proc. A checkout's interpreter loads more at
start-up than the image's (an editable install's finder, site .pth files), so
this, not bench/cost.py's first line, is the figure to hold against the
40 MiB goal of issue 16.

    python bench/image_rss.py [--starts 3]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.image.chart_pod import run  # noqa: E402


def idle_rss_mib(image: str, loop: str) -> float:
    with tempfile.TemporaryDirectory() as sockets:
        # uid 0, as the chart runs it: the socket directory is root's.
        name = run(["run", "-d", "--rm", "--network", "none", "--user", "0:0",
                    "-v", f"{sockets}:/sock:z",
                    image, "--socket-dir", "/sock", "--event-loop", loop,
                    "--log-level", "warning"]).strip()  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not Path(sockets, "polysecret.sock").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the container did not serve: {run(['logs', name])}")
                time.sleep(0.05)
            time.sleep(2.0)  # the start-up log line and health state follow the socket
            pid = run(["inspect", "--format", "{{.State.Pid}}", name]).strip()
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
            raise RuntimeError("no VmRSS")
        finally:
            run(["kill", name], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--image", default=os.environ.get("POLYSECRET_IMAGE",
                                                          "localhost/polysecret:dev"))
    args = parser.parse_args(argv)
    for loop in ("auto", "asyncio"):
        found = [idle_rss_mib(args.image, loop) for _ in range(args.starts)]
        print(f"{args.image} --event-loop {loop}: idle RSS "
              + ", ".join(f"{mib:.1f}" for mib in found) + " MiB (goal <= 40)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
