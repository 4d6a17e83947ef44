"""The two container images the e2e cluster runs, packed locally.

No registry is reachable here, so the sandbox's pause program (built by
scripts/install-e2e.sh from the Kubernetes module) and Debian's static busybox
are each packed as a one-layer docker-archive tarball, which
``ctr images import`` loads into containerd's k8s.io namespace.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

PAUSE_IMAGE = "polysecret.e2e/pause:e2e"
BUSYBOX_IMAGE = "polysecret.e2e/busybox:e2e"
BUSYBOX = Path("/bin/busybox")
# Applets the test pods call by name.
APPLETS = ("sh", "cat", "stat", "base64", "find", "grep", "tr", "sleep", "echo", "env", "sort")


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


def _archive(path: Path, tag: str, layer: bytes, config: dict[str, object]) -> Path:
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    image_config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}])
    with tarfile.open(path, "w") as tar:
        _add(tar, "layer.tar", layer, 0o644)
        _add(tar, "config.json", image_config, 0o644)
        _add(tar, "manifest.json", manifest.encode(), 0o644)
    return path


def pause_image(pause_binary: Path, out: Path) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as layer:
        _add(layer, "pause", pause_binary.read_bytes(), 0o755)
    return _archive(out, PAUSE_IMAGE, buf.getvalue(), {"Entrypoint": ["/pause"]})


def busybox_image(out: Path) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as layer:
        for d in ("bin", "tmp", "mnt"):
            _dir(layer, d)
        _add(layer, "bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            layer.addfile(link)
    return _archive(out, BUSYBOX_IMAGE, buf.getvalue(), {"Env": ["PATH=/bin"], "Cmd": ["sh"]})
