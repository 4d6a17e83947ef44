"""keysAsFiles with the Azure dialect: a Key Vault secret holding JSON (the stand-in)."""

from __future__ import annotations

import pytest

from tests.azure.conftest import wi_attrs
from tests.support.running import RunningProvider, files_of

pytestmark = pytest.mark.azure


def test_a_json_secret_split_into_files(provider: RunningProvider) -> None:
    response = provider.mount(
        wi_attrs(
            "objectName: json\nobjectType: secret\n",
            keysAsFiles="- file: json\n  prefix: DB_\n",
            templates="- file: user-at\n  template: '{{ json.user }}@{{ files.json.user }}'\n",
        )
    )
    files = files_of(response)
    assert files["DB_user"][1] == b"app"
    assert files["DB_password"][1] == b"pa55"
    assert files["user-at"][1] == b"app@app"
