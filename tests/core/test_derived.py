"""keysAsFiles and templates: the rules, the limits, and what an error may say.

These act on a backend's answer (files), so they are tested here on answers;
tests/aws/test_derived_mounts.py runs them through the real socket and moto.
"""

from __future__ import annotations

import json

import pytest

from provider import derived
from provider.backends.base import FetchResult, ObjectVersion, OutputFile
from provider.errors import InvalidParameters, InvalidRequest

DB = {
    "host": "db.internal",
    "username": "app",
    "password": "s3cr3t-pw",
    "port": 5432,
    "tags": ["a", "b"],
}
SECRET = "s3cr3t-pw"


def answer(**files: bytes) -> FetchResult:
    return FetchResult(
        files=tuple(OutputFile(path=p, mode=0o640, contents=c, source=p) for p, c in files.items()),
        versions=tuple(ObjectVersion(id=p, version="1") for p in files),
    )


def run(
    params: dict[str, str], result: FetchResult, mode: int = 0o644
) -> dict[str, tuple[int, bytes]]:
    plan = derived.parse(params)
    out = derived.apply(plan, result, mode)
    assert out.versions == result.versions  # derived files never add object versions
    return {f.path: (f.mode, f.contents) for f in out.files}


def problems_of(params: dict[str, str], result: FetchResult | None = None) -> str:
    with pytest.raises(InvalidRequest) as caught:
        run(params, result or answer(db=json.dumps(DB).encode()))
    assert SECRET not in str(caught.value)
    return str(caught.value)


def test_without_the_parameters_nothing_is_parsed() -> None:
    assert not derived.wanted({"objects": "- x"})
    assert derived.wanted({"keysAsFiles": "- file: db"})
    assert not derived.parse({})


def test_every_key_as_a_file_under_a_directory() -> None:
    files = run(
        {"keysAsFiles": "- file: db\n  directory: db.d\n"}, answer(db=json.dumps(DB).encode())
    )
    assert files == {
        "db": (0o640, json.dumps(DB).encode()),
        "db.d/host": (0o640, b"db.internal"),
        "db.d/username": (0o640, b"app"),
        "db.d/password": (0o640, SECRET.encode()),
        "db.d/port": (0o640, b"5432"),
        "db.d/tags": (0o640, b'["a","b"]'),
    }


def test_prefix_key_filter_mode_and_dropping_the_json_file() -> None:
    params = {
        "keysAsFiles": "- file: db\n  prefix: DB_\n  keys: [username, password]\n"
        '  mode: "0400"\n  keepFile: false\n'
    }
    files = run(params, answer(db=json.dumps(DB).encode(), other=b"x"))
    assert files == {
        "other": (0o640, b"x"),
        "DB_username": (0o400, b"app"),
        "DB_password": (0o400, SECRET.encode()),
    }


@pytest.mark.parametrize(
    ("value", "key"),
    [
        pytest.param({"a/b": "x"}, "a/b", id="slash"),
        pytest.param({"..": "x"}, "..", id="dotdot"),
        pytest.param({"": "x"}, "", id="empty"),
        pytest.param({"k" * 300: "x"}, "k" * 57, id="too-long"),
    ],
)
def test_a_key_that_is_no_file_name_is_named_never_renamed(value: dict[str, str], key: str) -> None:
    message = problems_of({"keysAsFiles": "- file: db"}, answer(db=json.dumps(value).encode()))
    assert "is not a valid file name" in message
    assert repr(key)[:-1] in message


def test_missing_key_and_missing_file_are_named() -> None:
    assert "no key 'pass'" in problems_of({"keysAsFiles": "- file: db\n  keys: [pass]"})
    message = problems_of({"keysAsFiles": "- file: nope"})
    assert "mounts no such file" in message and "'db'" in message


@pytest.mark.parametrize(
    "contents",
    [
        b"not json " + SECRET.encode(),
        b'["' + SECRET.encode() + b'"]',
        b'"' + SECRET.encode() + b'"',
    ],
)
def test_a_value_that_is_no_json_object_fails_without_quoting_it(contents: bytes) -> None:
    message = problems_of({"keysAsFiles": "- file: db"}, answer(db=contents))
    assert "InvalidSecretFormat" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("file: db", "must be a YAML list", id="not-a-list"),
        pytest.param("- directory: x", "'file' is required", id="no-file"),
        pytest.param("- file: db\n  mode: '999'", "'mode'", id="bad-mode"),
        pytest.param("- file: db\n  prefix: a/b", "must not contain '/'", id="slash-prefix"),
        pytest.param("- file: db\n  directory: ../up", "'..'", id="escaping-directory"),
        pytest.param("- file: db\n  keyz: [a]", "unknown key 'keyz'", id="typo"),
        pytest.param("- [", "not valid YAML", id="yaml"),
    ],
)
def test_bad_keys_parameter_is_invalid_argument_before_any_fetch(text: str, expected: str) -> None:
    with pytest.raises(InvalidParameters) as caught:
        derived.parse({"keysAsFiles": text})
    assert "keysAsFiles" in str(caught.value) and expected in str(caught.value)


PGPASS = "{{ db.host }}:{{ db.port }}:*:{{ db.username }}:{{ db.password }}\n"


def test_template_from_several_files_and_json_keys() -> None:
    params = {
        "templates": "- file: .pgpass\n  mode: '0400'\n  template: |\n    "
        + PGPASS.strip()
        + "\n- file: app.env\n  template: \"API={{ files['api-key'] }}\"\n"
    }
    files = run(params, answer(db=json.dumps(DB).encode(), **{"api-key": b"k-123"}))
    assert files[".pgpass"] == (0o400, f"db.internal:5432:*:app:{SECRET}\n".encode())
    assert files["app.env"] == (0o644, b"API=k-123")  # the request's default mode
    assert files["db"][1] == json.dumps(DB).encode()  # the objects' own files stay


def test_templates_and_keys_together() -> None:
    params = {
        "keysAsFiles": "- file: db\n  directory: db.d\n  keys: [password]",
        "templates": "- file: url\n  template: 'postgres://{{ db.username }}@{{ db.host }}'",
    }
    files = run(params, answer(db=json.dumps(DB).encode()))
    assert files["url"][1] == b"postgres://app@db.internal"
    assert files["db.d/password"][1] == SECRET.encode()


def test_loops_and_filters_that_config_files_need() -> None:
    template = (
        "{% for k, v in db | dictsort %}{% if v is string %}{{ k | upper }}={{ v | tojson }}\n"
        "{% endif %}{% endfor %}{{ db.password | b64encode }}"
    )
    files = run(
        {"templates": json.dumps([{"file": "env", "template": template}])},
        answer(db=json.dumps(DB).encode()),
    )
    text = files["env"][1].decode()
    assert 'PASSWORD="s3cr3t-pw"' in text and 'HOST="db.internal"' in text
    assert text.endswith("czNjcjN0LXB3")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ nope }}", "'nope' is undefined", id="undefined-name"),
        pytest.param("{{ db.passwd }}", "has no attribute 'passwd'", id="undefined-key"),
        # The looked-up name is itself the secret: the message must not show it.
        pytest.param("{{ files[db.password] }}", "undefined", id="secret-as-name"),
    ],
)
def test_undefined_is_an_error_naming_template_and_name(template: str, expected: str) -> None:
    message = problems_of({"templates": json.dumps([{"file": "out", "template": template}])})
    assert "file 'out'" in message and expected in message


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "macros", id="macro"),
        pytest.param("{% include 'x' %}", "include", id="include"),
        pytest.param("{% extends 'x' %}", "extends", id="extends"),
        pytest.param("{{ 'a'.ljust(1000000000) }}", "only range()", id="method-call"),
        pytest.param("{{ db.__class__ }}", "unsafe", id="dunder"),
        pytest.param(
            "{% for a in range(9) %}{% for b in range(9) %}{% for c in range(9) %}x"
            "{% endfor %}{% endfor %}{% endfor %}",
            "nested",
            id="deep-loops",
        ),
        pytest.param("{{ range(100000000) | length }}", "range() is limited", id="huge-range"),
        pytest.param("{{ 'a' * 1000000000 }}", "too large", id="repeat"),
        pytest.param("{{ '%999999999s' % 'a' }}", "formatting", id="percent-format"),
        pytest.param("{{ 9 ** 999999 }}", "'**'", id="power"),
        pytest.param("{{ 'x' | center(1000000000) }}", "No filter named 'center'", id="filter"),
        pytest.param(
            "{% for i in range(1000) %}{% for j in range(1000) %}{{ db.password }}"
            "{% endfor %}{% endfor %}",
            "over 1048576 bytes",
            id="output-bound",
        ),
        pytest.param("{{ db.password | replace('', db.password * 100000) }}", "grow", id="replace"),
        pytest.param("{{ lipsum() }}", "only range()", id="no-globals"),
        pytest.param("{% if %}", "syntax error", id="syntax"),
    ],
)
def test_a_hostile_template_is_refused_quickly(template: str, expected: str) -> None:
    message = problems_of({"templates": json.dumps([{"file": "out", "template": template}])})
    assert expected in message


def test_int_of_a_secret_fails_by_type_only() -> None:
    # ValueError's own text would quote the value it could not convert.
    message = problems_of(
        {"templates": "- file: out\n  template: '{{ db.password | float(0) / 0 }}'"}
    )
    assert "ZeroDivisionError" in message


def test_templates_of_one_class_are_bounded_in_total() -> None:
    big = "x" * 60_000
    entries = [{"file": f"f{i}", "template": big} for i in range(5)]
    with pytest.raises(InvalidParameters) as caught:
        derived.parse({"templates": json.dumps(entries)})
    assert "over 262144 per class" in str(caught.value)
    plan = derived.parse({"templates": json.dumps(entries[:4])})
    assert plan.memory >= 10 * 4 * 60_000  # the plan cache counts what compiling keeps
