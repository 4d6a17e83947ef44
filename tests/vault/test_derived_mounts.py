"""keysAsFiles and templates with the Vault dialect against OpenBao."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.running import RunningProvider, files_of
from tests.vault.conftest import KNOWN_SECRET

pytestmark = pytest.mark.vault


def test_every_key_of_a_kv2_secret_as_files_and_a_template(
    provider: RunningProvider, attrs: Callable[..., dict[str, str]]
) -> None:
    # Without secretKey the file is the whole response (as vault-csi-provider
    # writes it); KV v2 keeps the secret's own keys under data.data.
    params = {
        "roleName": "app",
        "objects": "- objectName: app\n  secretPath: secret/data/app\n",
        "keysAsFiles": "- file: app\n  path: data.data\n  directory: app.d\n"
        "  keys: [username, password, config]\n  mode: '0400'\n",
        "templates": "- file: creds\n  template: '{{ app.data.data.username }}:"
        "{{ app.data.data.password }}'\n",
    }
    files = files_of(provider.mount(attrs(params)))
    assert files["app.d/username"] == (0o400, b"admin")
    assert files["app.d/password"] == (0o400, KNOWN_SECRET.encode())
    assert files["app.d/config"] == (0o400, b'{"a":1,"b":[true,"x<y&z"]}')
    assert files["creds"] == (0o644, f"admin:{KNOWN_SECRET}".encode())
    assert "app" in files  # keepFile defaults to true
