"""A botocore session that keeps botocore's data for our services only.

botocore resolves a client's endpoint with its bundled ``endpoints.json``,
which lists every AWS service in every partition: parsed, it holds ~7 MiB of
the provider's memory (a third of the AWS backend's after-load growth) for
the three services the provider calls. Here that file is read one service
entry at a time, and each partition keeps only Secrets Manager, SSM and STS
(the partition's regions, DNS suffixes and defaults stay whole), so those three
resolve exactly as before: same URLs, same signing regions. When the user
supplies their own endpoints data (``AWS_DATA_PATH``, ``~/.aws/models``),
botocore's default applies unchanged.

The endpoint resolver is a private botocore component: when its registration
point is missing (another botocore), the session is left as botocore makes it.

The service models are trimmed to the operations we call (models.py). The
session is botocore's own, not boto3's: boto3 adds resources and S3 helpers
(2.3 MiB of imports) that clients do not use. Clients are made with the same
arguments boto3's ``Session.client`` passes on, and send boto3's User-Agent
(IAM policies and CloudTrail queries may match on ``Boto3/``).

Answers' epoch timestamps (Secrets Manager's and SSM's JSON: one per secret
or parameter) become UTC datetimes in ~1 us: botocore's default makes
local-time ones through dateutil's tzlocal in ~17 us, ~1 % of a cold mount's
CPU. The instants are the same (only ``timestamp()`` is read). Other forms
(STS's ISO dates) are botocore's.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
from typing import Any

import botocore
import botocore.context
import botocore.loaders
import botocore.regions
import botocore.session
import botocore.utils

from provider.backends.aws import jsonwalk, models

# Every service a client is made for (provider.backends.aws.backend).
SERVICES = frozenset({"secretsmanager", "ssm", "sts"})


def _service(key: str, text: str, at: int) -> tuple[object, int]:
    """A service's entry: kept for SERVICES only (one entry alive at a time)."""
    entry, end = jsonwalk.DECODER.raw_decode(text, at)
    return (entry if key in SERVICES else jsonwalk.SKIP), end


def _partition(key: str, text: str, at: int) -> tuple[object, int]:
    if key == "services":
        return jsonwalk.walk_object(text, at, _service)
    return jsonwalk.value(key, text, at)


def _partitions(key: str, text: str, at: int) -> tuple[object, int]:
    if key == "partitions":
        return jsonwalk.walk_list(text, at, lambda _k, t, i: jsonwalk.walk_object(t, i, _partition))
    return jsonwalk.value(key, text, at)


def read_endpoints(text: str) -> dict[str, object]:
    """endpoints.json with each partition's ``services`` holding SERVICES only.

    The other services are read one at a time and dropped at once (jsonwalk):
    parsing the whole file first (or with an object hook, which sees a
    ``services`` map only once all its entries are built) peaks at ~5 MiB for
    0.1 MiB kept. Raises ValueError or IndexError where the text is not JSON.
    """
    return jsonwalk.walk(text, _partitions)


def _builtin_endpoints(loader: botocore.loaders.Loader) -> str | None:
    """botocore's bundled endpoints.json, or None when the user's data overrides it."""
    builtin = os.path.join(os.path.dirname(botocore.__file__), "data")
    for path in loader.search_paths:
        if os.path.realpath(path) == os.path.realpath(builtin):
            candidate = os.path.join(path, "endpoints.json")
            return candidate if os.path.isfile(candidate) else None
        if any(os.path.exists(os.path.join(path, f"endpoints.json{ext}")) for ext in ("", ".gz")):
            return None  # the user's endpoints data: botocore's way
    return None


def _as_boto3(core: botocore.session.Session) -> None:
    """The User-Agent boto3's Session sets: ``Boto3/<version> ... Botocore/<version>``."""
    try:
        version = importlib.metadata.version("boto3")
    except importlib.metadata.PackageNotFoundError:
        return  # botocore alone: its own User-Agent
    botocore_info = f"Botocore/{core.user_agent_version}"
    extra = core.user_agent_extra
    core.user_agent_extra = f"{extra} {botocore_info}" if extra else botocore_info
    core.user_agent_name = "Boto3"
    core.user_agent_version = version


def utc_timestamp(value: str | float) -> datetime.datetime:
    """An answer's timestamp: an epoch as a UTC datetime, anything else as botocore parses it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.datetime.fromtimestamp(value, datetime.UTC)
        except (OverflowError, OSError, ValueError):
            pass  # out of the platform's range: botocore's fallbacks
    # botocore parses epochs too (its docstring); its stubs name str only.
    parsed: datetime.datetime = botocore.utils.parse_timestamp(value)  # type: ignore[arg-type]
    return parsed


def lean_session() -> botocore.session.Session:
    core = botocore.session.get_session()
    _as_boto3(core)
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=utc_timestamp
    )
    core.register_component("data_loader", models.loader(core.get_config_variable("data_path")))
    components = getattr(core, "_internal_components", None)
    register = getattr(components, "lazy_register_component", None)
    if register is not None:
        loader = core.get_component("data_loader")
        path = _builtin_endpoints(loader)
        if path is not None:

            def resolver() -> botocore.regions.EndpointResolver:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
                try:
                    data = read_endpoints(text)
                except (ValueError, IndexError):
                    data = json.loads(text)  # not as expected: botocore's reading, all kept
                return botocore.regions.EndpointResolver(data, uses_builtin_data=True)

            register("endpoint_resolver", resolver)
    return core


class _KeptUserAgent:
    """A client's User-Agent builder that builds each distinct string once.

    botocore assembles the whole User-Agent on every request: ~15 components,
    each sanitised character by character, ~9 % of a Secrets Manager read's CPU
    (bench/profile.py aws). All of it is fixed for a client except the feature
    marks (``m/...``), which the client and the request's context add; so the
    string is kept per set of marks, and a request sends what botocore would
    have built for it.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._built: dict[tuple[frozenset[str], frozenset[str]], str] = {}

    def to_string(self) -> str:
        context = botocore.context.get_context()
        key = (
            frozenset(self._inner._client_features or ()),
            frozenset(context.features) if context is not None else frozenset(),
        )
        found = self._built.get(key)
        if found is None:
            if len(self._built) >= MAX_USER_AGENTS:
                self._built.clear()
            found = self._built[key] = str(self._inner.to_string())
        return found

    def rebuild_and_replace_user_agent_handler(
        self, operation_name: str, request: Any, **kwargs: Any
    ) -> None:
        """botocore's 'request-created' handler (the header again, with the marks
        the request added), from the strings kept."""
        if request.headers.get("User-Agent"):
            request.headers.replace_header("User-Agent", self.to_string())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# Distinct feature-mark sets kept per client (a handful occur: retries, credentials).
MAX_USER_AGENTS = 32


def keep_user_agent(client: Any) -> None:
    """Build ``client``'s User-Agent strings once each (see _KeptUserAgent).

    It relies on botocore's private ``_user_agent_creator`` and
    ``_client_features``: when another botocore lacks them, the client is left
    as botocore made it.
    """
    inner = getattr(client, "_user_agent_creator", None)
    if inner is None or not hasattr(inner, "_client_features") or not hasattr(inner, "to_string"):
        return
    kept = _KeptUserAgent(inner)
    client._user_agent_creator = kept
    # botocore builds the header a second time for every request, in a handler
    # of its own registered last on 'request-created': that one is swapped too.
    event = f"request-created.{client.meta.service_model.service_id.hyphenize()}"
    events = client.meta.events
    # (Were the original not found, both would run: ours last, so the header
    # is still the kept string, only built twice.)
    events.unregister(event, inner.rebuild_and_replace_user_agent_handler)
    events.register_last(event, kept.rebuild_and_replace_user_agent_handler)
