"""Parse the driver's MountRequest into a typed, immutable value.

The driver packs everything into JSON strings (see driver-contract.md). This
module is the only place that reads them, so the rest of the provider works on
plain attributes: the pod, its tokens per audience, the default file mode and
the SecretProviderClass parameters. Both driver lines are accepted: v1.6.0
(``secrets`` is ``null``, volume attributes present) and v1.5.x (``secrets`` is
``{}``, ``current_object_version`` filled in).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from provider.errors import InvalidRequest, MissingToken

# Attribute keys the driver adds beside the SecretProviderClass parameters.
POD_KEY_PREFIX = "csi.storage.k8s.io/"
POD_NAME = "csi.storage.k8s.io/pod.name"
POD_NAMESPACE = "csi.storage.k8s.io/pod.namespace"
POD_UID = "csi.storage.k8s.io/pod.uid"
SERVICE_ACCOUNT = "csi.storage.k8s.io/serviceAccount.name"
TOKENS = "csi.storage.k8s.io/serviceAccount.tokens"
EPHEMERAL = "csi.storage.k8s.io/ephemeral"

MAX_MODE = 0o777


@dataclass(frozen=True, kw_only=True)
class PodInfo:
    """Who the mount is for. Every backend call is made as this pod."""

    name: str
    namespace: str
    uid: str
    service_account: str

    @property
    def identity(self) -> tuple[str, str]:
        """The key that caches are scoped by: one Kubernetes service account.

        Credentials are obtained with tokens of this service account, so all
        pods running as it may share them; nothing is ever shared across it.
        """
        return (self.namespace, self.service_account)

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, kw_only=True)
class ServiceAccountToken:
    """One projected token from the CSIDriver's ``tokenRequests`` (keyed by its audience)."""

    token: str = field(repr=False)
    expires: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class MountRequest:
    """A parsed Mount call. Secrets and tokens are kept out of ``repr``."""

    attributes: Mapping[str, str]
    secrets: Mapping[str, str] = field(repr=False)
    tokens: Mapping[str, ServiceAccountToken] = field(repr=False)
    pod: PodInfo
    default_mode: int

    def token_for(self, audience: str, *, parameter: str = "audience") -> str:
        """The pod's token for ``audience``, or an error telling how to get one."""
        found = self.tokens.get(audience)
        if found is None or not found.token:
            have = ", ".join(repr(a) for a in sorted(self.tokens)) or "none"
            raise MissingToken(
                f"no service account token for audience {audience!r} (needed by "
                f"{parameter!r}); add `- audience: {audience}` to spec.tokenRequests of the "
                f"CSIDriver secrets-store.csi.k8s.io (audiences received: {have})"
            )
        return found.token

    def secret_values(self) -> list[str]:
        """Every sensitive string in the request, for redaction."""
        values = [t.token for t in self.tokens.values() if t.token]
        values.extend(v for v in self.secrets.values() if v)
        return values


def _load_json_object(text: str, what: str) -> dict[str, Any]:
    if text.strip() in ("", "null"):
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        # Never echo the text: it may hold a secret.
        raise InvalidRequest(f"{what} is not valid JSON (at position {exc.pos})") from None
    except (ValueError, RecursionError):
        # Python refuses integers of more than 4300 digits (ValueError) and
        # recurses once per nesting level: the driver never sends either.
        raise InvalidRequest(
            f"{what} is not acceptable JSON (nested too deeply or a number too long)"
        ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _string_map(raw: dict[str, Any], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise InvalidRequest(f"{what}: value of key {_name(key)} must be a string")
        if not (_is_unicode(key) and _is_unicode(value)):
            # JSON may escape a lone surrogate ("\\ud800"), which no UTF-8
            # reader (libyaml, gRPC, the SDKs) can take; the driver never sends one.
            raise InvalidRequest(
                f"{what}: key {_name(key)} or its value is not valid Unicode (a lone surrogate)"
            )
        out[key] = value
    return out


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _name(key: str) -> str:
    """A key for a message: quoted, bounded, and encodable whatever it holds."""
    return ascii(key[:60])


def _parse_tokens(text: str | None) -> dict[str, ServiceAccountToken]:
    if not text:
        return {}
    raw = _load_json_object(text, f"attribute {TOKENS!r}")
    tokens: dict[str, ServiceAccountToken] = {}
    for audience, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise InvalidRequest(
                f"attribute {TOKENS!r}: entry for audience {_name(audience)} has no string 'token'"
            )
        if not (_is_unicode(audience) and _is_unicode(entry["token"])):
            raise InvalidRequest(
                f"attribute {TOKENS!r}: entry for audience {_name(audience)} is not valid Unicode"
            )
        expires: datetime | None = None
        stamp = entry.get("expirationTimestamp")
        if isinstance(stamp, str) and stamp:
            try:
                expires = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                expires = None
        tokens[audience] = ServiceAccountToken(token=entry["token"], expires=expires)
    return tokens


def parse_permission(text: str) -> int:
    """The default mode: a JSON number (decimal), ``"420"`` in practice."""
    if not text.strip():
        return 0o644
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidRequest(f"permission {text[:16]!a} is not a JSON number") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MODE:
        raise InvalidRequest(f"permission {text[:16]!a} must be an integer from 0 to 511")
    return value


def parse_mount_request(
    *,
    attributes: str,
    secrets: str,
    permission: str,
) -> MountRequest:
    """Build a :class:`MountRequest` from the wire fields."""
    attrs = _string_map(_load_json_object(attributes, "attributes"), "attributes")
    secret_map = _string_map(_load_json_object(secrets, "secrets"), "secrets")
    # Kubernetes >= 1.35 may also put the tokens into `secrets`; the driver copies
    # them into attributes too. Either place is accepted; it is never a credential.
    token_text = attrs.get(TOKENS) or secret_map.get(TOKENS)
    # The tokens live on only in `tokens` (kept out of repr): left in the
    # attributes, any repr or dump of the request would print them.
    attrs.pop(TOKENS, None)
    secret_map.pop(TOKENS, None)
    tokens = _parse_tokens(token_text)
    pod = PodInfo(
        name=attrs.get(POD_NAME, ""),
        namespace=attrs.get(POD_NAMESPACE, ""),
        uid=attrs.get(POD_UID, ""),
        service_account=attrs.get(SERVICE_ACCOUNT, ""),
    )
    return MountRequest(
        attributes=MappingProxyType(attrs),
        secrets=MappingProxyType(secret_map),
        tokens=MappingProxyType(tokens),
        pod=pod,
        default_mode=parse_permission(permission),
    )
