"""Files made from the fetched objects: every key of a JSON value, and templates.

The same two class parameters work in all three dialects, because they act on
the backend's *answer* (the files a class mounts), not on its objects:

``keysAsFiles``
    one file per top-level key of a file that holds a JSON object (a Secrets
    Manager JSON secret, a Vault secret's data, a Key Vault secret holding JSON);
``templates``
    one file rendered from several files and their JSON keys (a ``.pgpass``, an
    ``application.yaml``, a JDBC URL) with Jinja2's sandbox.

Both are parsed and checked before any backend call (``parse``), and applied
after the fetch, before the path rules (``apply``): a failure fails the whole
mount, nothing partial. A class without them costs one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from provider.backends.base import FetchResult, OutputFile
from provider.derived.keys import KEYS_PARAMETER, KeysRule, apply_keys, parse_keys
from provider.errors import Problems

TEMPLATES_PARAMETER = "templates"
PARAMETERS = (KEYS_PARAMETER, TEMPLATES_PARAMETER)


@dataclass(frozen=True)
class DerivedPlan:
    keys: tuple[KeysRule, ...]
    templates: tuple[object, ...]  # provider.derived.templates.TemplateRule (lazy import)

    def __bool__(self) -> bool:
        return bool(self.keys or self.templates)

    @property
    def memory(self) -> int:
        """About what the plan holds, for the plan cache's byte bound."""
        from provider.derived.templates import COMPILED_BYTES_PER_BYTE, TemplateRule

        compiled = sum(t.source_bytes for t in self.templates if isinstance(t, TemplateRule))
        return 1024 * len(self.keys) + COMPILED_BYTES_PER_BYTE * compiled


def wanted(params: Mapping[str, str]) -> bool:
    """Whether the class asks for derived files at all (no parsing, no imports)."""
    return any(params.get(name, "").strip() for name in PARAMETERS)


def parse(params: Mapping[str, str]) -> DerivedPlan:
    """Validate both parameters; raise InvalidParameters listing every problem."""
    problems = Problems()
    keys = parse_keys(params.get(KEYS_PARAMETER, ""), problems)
    templates: tuple[object, ...] = ()
    text = params.get(TEMPLATES_PARAMETER, "")
    if text.strip():
        # Jinja2 is imported only by classes that use templates.
        from provider.derived.templates import parse_templates

        templates = tuple(parse_templates(text, problems))
    problems.raise_if_any()
    return DerivedPlan(keys=tuple(keys), templates=templates)


def apply(plan: DerivedPlan, result: FetchResult, default_mode: int) -> FetchResult:
    """The fetched files plus the derived ones (CPU work: run it off the event loop)."""
    files: list[OutputFile] = list(result.files)
    if plan.templates:
        from provider.derived.templates import render_all

        # Templates see the objects' own files, not other derived files: the
        # order of the two parameters never changes what a template renders.
        rendered = render_all(plan.templates, result.files, default_mode)
    else:
        rendered = []
    if plan.keys:
        files = apply_keys(plan.keys, files)
    files.extend(rendered)
    return FetchResult(files=tuple(files), versions=result.versions)
