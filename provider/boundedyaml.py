"""The bounded YAML loader behind :func:`provider.dialect.parse_yaml`.

A module of its own so PyYAML (and libyaml) are imported by the first mount
that reads a class, not by an idle provider. It bounds nesting and alias
expansion: a class author must not be able to crash or stall the provider
every pod of the node depends on.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

# libyaml's event parser: ~10x faster than the pure-Python one, same safe
# subset. Its own composer is not used (see _BoundedComposer).
_Parser: type[Any] = getattr(getattr(yaml, "_yaml", None), "CParser", yaml.parser.Parser)

# A YAML document in a parameter may nest this deep, aliases included. Real
# classes nest 3-5 levels (list, object, jmesPath list, entry); libyaml's own
# composer recurses in C and crashes the process at ~20,000 levels.
MAX_DEPTH = 100
# Aliases may add this many nodes to a document, or as many as the document
# itself holds if that is more. Anchors for shared defaults stay usable (the Go
# peers accept them: yaml.v3 allows ~99% alias expansion up to 400,000 nodes),
# but a "billion laughs" document (~400 bytes, 43 million nodes) is refused
# before anything walks it.
ALIAS_NODES = 10_000


class YamlLimit(yaml.YAMLError):
    """A document over one of this module's bounds (depth, alias expansion)."""


class _BoundedComposer(Composer):
    """PyYAML's composer, measuring the document it builds.

    Composing is linear in the text even for an alias bomb (an alias is the
    same node again); what explodes is whatever walks the result afterwards.
    So each node's expanded size and height are counted here, as it is
    composed, and a document over the bounds is refused before it is
    constructed. Iterating libyaml's events keeps most of its speed.
    """

    def __init__(self) -> None:
        super().__init__()
        # [expanded size, height of the tallest child] of each open node.
        self._frames: list[list[int]] = []
        self._sizes: dict[int, tuple[int, int]] = {}  # id(anchored node) -> size, height
        self._literal = 0
        self._aliased = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[attr-defined]  # from the parser
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                known = self._sizes.get(id(target))
                if known is None:
                    raise YamlLimit(f"alias *{event.anchor} refers to a node that contains it")
                self._aliased += known[0]
                self._close(*known)
            return super().compose_node(parent, index)
        if len(self._frames) >= MAX_DEPTH:
            raise YamlLimit(f"nests deeper than {MAX_DEPTH} levels")
        self._frames.append([1, 0])
        node = super().compose_node(parent, index)
        size, child_height = self._frames.pop()
        self._literal += 1
        if event.anchor is not None:
            self._sizes[id(node)] = (size, child_height + 1)
        self._close(size, child_height + 1)
        return node

    def _close(self, size: int, height: int) -> None:
        if len(self._frames) + height > MAX_DEPTH:
            raise YamlLimit(f"nests deeper than {MAX_DEPTH} levels (aliases expanded)")
        if self._frames:
            frame = self._frames[-1]
            frame[0] += size
            frame[1] = max(frame[1], height)

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if self._aliased > max(ALIAS_NODES, self._literal):
            raise YamlLimit(
                f"aliases expand it by {_count(self._aliased)} nodes (at most "
                f"{max(ALIAS_NODES, self._literal)} allowed)"
            )
        return node


def _count(n: int) -> str:
    return str(n) if n < 10**12 else "more than 10^12"


class _Loader(_BoundedComposer, _Parser, SafeConstructor, Resolver):  # type: ignore[misc]
    """Safe YAML with bounded depth and alias expansion."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        _BoundedComposer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


class _TextLoader(_Loader):
    """Every plain scalar stays text, as in a Go struct of strings (Azure's dialect).

    A version id like ``0000`` or ``1e10...`` must not become a number.
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - PyYAML's class attribute


def load(text: str, text_scalars: bool) -> tuple[Any, str]:
    """The document's value and ``""``, or None and what is wrong with it."""
    try:
        loader = (_TextLoader if text_scalars else _Loader)(text)
    except UnicodeError:
        # A lone surrogate (JSON "\\ud800") cannot be encoded for libyaml.
        return None, "is not valid Unicode text (it holds a lone surrogate)"
    try:
        return loader.get_single_data(), ""
    except YamlLimit as exc:
        return None, f"is refused: its YAML {exc}"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, f"is not valid YAML{where}"
    finally:
        loader.dispose()
