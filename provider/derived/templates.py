"""``templates``: files rendered from several fetched files with Jinja2's sandbox.

vault-csi-provider's most-asked feature (#91): a ``.pgpass``, a ``.env``, an
``application.yaml`` or a JDBC URL built from several secrets, without a Vault
Agent sidecar. Imported only when a class has templates.

    templates: |
      - file: .pgpass
        mode: "0400"
        template: "{{ db.host }}:5432:*:{{ db.username }}:{{ db.password }}"

A template sees every file the class mounts: ``files["name"]``, and, when the
name is an identifier, plainly as ``name``. A file holding a JSON object or
array is seen parsed (``db.password``); any other file as text.

Why so strict: whoever can write a SecretProviderClass writes the template, and
it runs inside the node's provider, beside every other pod's mounts. So, beyond
Jinja2's sandbox (no attribute tricks, no file system, no environment): no
macros, includes, imports or blocks; no calls but a small ``range``; only the
filters listed below, each unable to blow up its input; loops nested at most
twice; string repetition and formatting refused; output bounded. An undefined
name is an error naming the template and the name, never an empty string.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from provider.backends.base import OutputFile
from provider.codes import ErrorCode
from provider.dialect import as_text, entry_mode, yaml_entries
from provider.errors import InvalidParameters, InvalidRequest, Problems
from provider.paths import path_problem

TEMPLATES_PARAMETER = "templates"
_FIELDS = ("file", "template", "mode")
MAX_TEMPLATES = 64
MAX_SOURCE_BYTES = 64 * 1024
# All templates of a class together. Compiling holds ~9 bytes per source byte
# and peaks near 130 (measured): this keeps one class's compile under ~35 MB.
MAX_TOTAL_SOURCE_BYTES = 256 * 1024
# What a compiled template keeps, per byte of its source (measured ~9).
COMPILED_BYTES_PER_BYTE = 10
MAX_OUTPUT_BYTES = 1024 * 1024
MAX_RANGE = 1000
MAX_LOOP_NESTING = 2
# Names a file cannot take as a plain variable (they mean something else).
_RESERVED = frozenset({"files", "range", "loop", "true", "false", "none", "True", "False", "None"})
_FORBIDDEN_NODES: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Macro, "macros"),
    (nodes.CallBlock, "call blocks"),
    (nodes.Include, "include"),
    (nodes.Import, "import"),
    (nodes.FromImport, "import"),
    (nodes.Extends, "extends"),
    (nodes.Block, "blocks"),
)


def _capped_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE} items in templates")
    return numbers


def _bounded(text: str) -> str:
    if len(text) > MAX_OUTPUT_BYTES:
        raise SecurityError(f"a value in a template grew over {MAX_OUTPUT_BYTES} bytes")
    return text


def _replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = str(value), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if len(text) + hits * len(new) > MAX_OUTPUT_BYTES:
        raise SecurityError(f"replace() would grow a value over {MAX_OUTPUT_BYTES} bytes")
    return text.replace(old, new, -1 if count is None else count)


def _indent(text: Any, width: int = 4, first: bool = False, blank: bool = False) -> str:
    width = min(max(int(width), 0), 16)
    pad = " " * width
    lines = str(text).split("\n")
    out = [
        (pad + line) if (i > 0 or first) and (line or blank) else line
        for i, line in enumerate(lines)
    ]
    return "\n".join(out)


def _b64encode(text: Any) -> str:
    data = text if isinstance(text, bytes) else str(text).encode("utf-8", "surrogateescape")
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: Any) -> str:
    return base64.b64decode(str(text), validate=True).decode("utf-8", "surrogateescape")


def _tojson(value: Any) -> str:
    return _bounded(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _fromjson(text: Any) -> Any:
    return json.loads(str(text))


# Jinja2's own filters that cannot grow their input beyond a bound, plus ours.
_BUILTIN_FILTERS = (
    "default",
    "d",
    "lower",
    "upper",
    "trim",
    "capitalize",
    "title",
    "join",
    "first",
    "last",
    "length",
    "count",
    "int",
    "float",
    "string",
    "list",
    "sort",
    "dictsort",
    "items",
    "unique",
    "urlencode",
    "map",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "min",
    "max",
    "sum",
    "abs",
    "round",
    "reverse",
    "batch",
    "slice",
)
_OWN_FILTERS: dict[str, Callable[..., Any]] = {
    "replace": _replace,
    "indent": _indent,
    "b64encode": _b64encode,
    "b64decode": _b64decode,
    "tojson": _tojson,
    "fromjson": _fromjson,
}


class _Environment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed in templates")
        if operator == "**" and (
            not isinstance(right, int | float) or abs(right) > 64 or abs(left) > 2**64
        ):
            raise SecurityError("'**' is limited to small numbers in templates")
        if operator == "*":
            sized = left if isinstance(left, str | list | tuple) else right
            times = right if sized is left else left
            if (
                isinstance(sized, str | list | tuple)
                and isinstance(times, int)
                and len(sized) * max(times, 0) > MAX_OUTPUT_BYTES
            ):
                raise SecurityError("a repeated value in a template is too large")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # The only callable a template can name is our range(); methods of
        # strings, lists and dicts (ljust, center, format, ...) could allocate
        # without bound, so none is callable.
        if __obj is not _capped_range:
            raise SecurityError("templates may call only range()")
        # Jinja2 passes its scoping bookkeeping along; range() takes numbers only.
        kwargs.pop("_loop_vars", None)
        kwargs.pop("_block_vars", None)
        return __obj(*args, **kwargs)


def _environment() -> _Environment:
    env = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    builtin = env.filters
    env.filters = {name: builtin[name] for name in _BUILTIN_FILTERS}
    env.filters.update(_OWN_FILTERS)
    env.globals = {"range": _capped_range}
    return env


_ENV: _Environment | None = None


def environment() -> _Environment:
    global _ENV  # noqa: PLW0603 - one immutable environment per process, built on first use
    if _ENV is None:
        _ENV = _environment()
    return _ENV


@dataclass(frozen=True)
class TemplateRule:
    file: str
    mode: int | None
    compiled: Any = field(repr=False, compare=False)
    source_bytes: int = 0

    @property
    def where(self) -> str:
        return f"parameter {TEMPLATES_PARAMETER!r}, file {self.file!r}"


def _loop_depth(node: nodes.Node, depth: int = 0) -> int:
    here = depth + 1 if isinstance(node, nodes.For) else depth
    deepest = here
    for child in node.iter_child_nodes():
        deepest = max(deepest, _loop_depth(child, here))
    return deepest


def _structure_problems(tree: nodes.Template) -> list[str]:
    found: list[str] = []
    for kind, label in _FORBIDDEN_NODES:
        if any(True for _ in tree.find_all(kind)):
            found.append(f"{label} are not allowed")
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name == "range"):
            found.append("only range() may be called")
            break
    if _loop_depth(tree) > MAX_LOOP_NESTING:
        found.append(f"loops may be nested at most {MAX_LOOP_NESTING} deep")
    return found


def parse_templates(text: str, problems: Problems) -> list[TemplateRule]:
    entries = yaml_entries(text, TEMPLATES_PARAMETER, _FIELDS, "'file' and 'template'", problems)
    if len(entries) > MAX_TEMPLATES:
        problems.add(f"parameter {TEMPLATES_PARAMETER!r}: at most {MAX_TEMPLATES} templates")
        return []
    total = sum(len(str(fields.get("template", ""))) for _, fields in entries)
    if total > MAX_TOTAL_SOURCE_BYTES:
        problems.add(
            f"parameter {TEMPLATES_PARAMETER!r}: the templates total {total} bytes, over "
            f"{MAX_TOTAL_SOURCE_BYTES} per class"
        )
        return []
    env = environment()
    rules: list[TemplateRule] = []
    for entry, fields in entries:
        file = as_text(fields.get("file"))
        source = fields.get("template")
        if not file or not isinstance(source, str):
            problems.add(f"{entry}: 'file' and 'template' (a string) are required")
            continue
        why = path_problem(file)
        if why is not None:
            problems.add(f"{entry}: file path {file[:80]!r} {why}")
            continue
        where = f"parameter {TEMPLATES_PARAMETER!r}, file {file!r}"
        if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
            problems.add(f"{where}: the template is over {MAX_SOURCE_BYTES} bytes")
            continue
        mode = entry_mode(fields, where, problems)
        try:
            tree = env.parse(source)
            structure = _structure_problems(tree)
            if structure:
                problems.add(f"{where}: " + "; ".join(structure))
                continue
            # Compiling also checks that every filter and test named exists.
            compiled = env.from_string(tree)
        except TemplateSyntaxError as exc:
            problems.add(f"{where}: template syntax error at line {exc.lineno}: {exc.message}")
            continue
        rules.append(
            TemplateRule(file=file, mode=mode, compiled=compiled, source_bytes=len(source))
        )
    return rules


def _seen_as(contents: bytes) -> Any:
    text = contents.decode("utf-8", "surrogateescape")
    if text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            pass
    return text


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _scrub(message: str, values: Iterable[Any]) -> str:
    """Jinja2 names what it could not find; a looked-up name may be a secret value."""
    for value in values:
        for text in _strings(value):
            if len(text) >= 3 and text in message:
                message = message.replace(text, "***")
    return message


def render_all(
    rules: Sequence[object], files: Sequence[OutputFile], default_mode: int
) -> list[OutputFile]:
    seen = {f.path: _seen_as(f.contents) for f in files}
    context: dict[str, Any] = {"files": seen}
    for path, value in seen.items():
        if path.isidentifier() and path not in _RESERVED:
            context[path] = value
    out: list[OutputFile] = []
    for rule in rules:
        assert isinstance(rule, TemplateRule)
        out.append(
            OutputFile(
                path=rule.file,
                mode=rule.mode if rule.mode is not None else default_mode,
                contents=_render(rule, context, seen.values()),
                source=f"template {rule.file}",
            )
        )
    return out


def _render(rule: TemplateRule, context: dict[str, Any], values: Iterable[Any]) -> bytes:
    chunks: list[str] = []
    size = 0
    try:
        for chunk in rule.compiled.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_BYTES:
                raise SecurityError(f"the output is over {MAX_OUTPUT_BYTES} bytes")
            chunks.append(chunk)
    except UndefinedError as exc:
        raise InvalidParameters(
            [f"{rule.where}: undefined: {_scrub(str(exc.message), values)}"]
        ) from None
    except SecurityError as exc:
        raise InvalidParameters([f"{rule.where}: {exc.message}"]) from None
    except (RecursionError, MemoryError, OverflowError):
        raise InvalidParameters([f"{rule.where}: the template is too expensive"]) from None
    except Exception as exc:
        # Other errors' texts may quote the values they failed on: the type only.
        raise InvalidRequest(
            f"{rule.where}: rendering failed ({type(exc).__name__})", code=ErrorCode.TemplateFailed
        ) from None
    return "".join(chunks).encode("utf-8", "surrogateescape")
