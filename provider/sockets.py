"""Owning the Unix socket the driver connects to.

The driver finds us by file name (``<dir>/<name>.sock``) and only filesystem
permissions protect the socket, so: remove a stale socket left by a previous
run (gRPC would reconnect to the new one), refuse to touch any other kind of
file at that path, create it owner-only, and remove it on the way out.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{0,30}$")


class SocketError(Exception):
    """The socket path cannot be used; start-up must stop with this message."""


def socket_path(directory: str | os.PathLike[str], name: str) -> Path:
    if not name or not NAME_PATTERN.match(name):
        raise SocketError(
            f"provider name {name!r} must match ^[a-zA-Z0-9_-]{{1,30}}$ "
            "(it is the SecretProviderClass spec.provider)"
        )
    return Path(directory) / f"{name}.sock"


def prepare(path: Path) -> None:
    """Make ``path`` free for binding: remove a stale socket, refuse anything else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(st.st_mode):
        path.unlink()
        return
    raise SocketError(
        f"{path} exists and is not a socket; refusing to replace it (remove it by hand)"
    )


def restrict(path: Path) -> None:
    """Owner-only access. Binding already happens under umask 077; this makes sure."""
    os.chmod(path, 0o600)


def remove(path: Path) -> None:
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass
