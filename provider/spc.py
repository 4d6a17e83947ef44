"""Build the driver's ``attributes`` for a SecretProviderClass, as the driver does.

``polysecret mount`` (and the tests) must send exactly what the Secrets Store
CSI Driver would: the class's ``spec.parameters``, then the pod's volume
attributes over them, then the pod's identity and its projected tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provider import request as keys


@dataclass(frozen=True)
class SecretProviderClass:
    name: str
    provider: str
    parameters: dict[str, str]
    # metadata.namespace, "" when the file does not say (pods must be in the class's namespace).
    namespace: str = ""


def spc_from_document(doc: Mapping[str, Any]) -> SecretProviderClass:
    """A SecretProviderClass from its parsed YAML document."""
    spec: dict[str, Any] = doc.get("spec") or {}
    params = spec.get("parameters") or {}
    metadata: dict[str, Any] = doc.get("metadata") or {}
    return SecretProviderClass(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace") or ""),
        provider=str(spec.get("provider", "")),
        # Kubernetes stores parameters as map[string]string.
        parameters={str(k): v if isinstance(v, str) else json.dumps(v) for k, v in params.items()},
    )


def load_spc(text: str) -> SecretProviderClass:
    """The first SecretProviderClass document in a YAML file."""
    import yaml  # not at import: ``serve`` imports this module for its CLI only

    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "SecretProviderClass":
            return spc_from_document(doc)
    raise ValueError("no SecretProviderClass document found")


@dataclass(frozen=True, kw_only=True)
class PodContext:
    name: str = "demo"
    namespace: str = "default"
    uid: str = "00000000-0000-0000-0000-000000000000"
    service_account: str = "default"
    # audience -> token
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    token_expiry: str = "2099-01-01T00:00:00Z"  # noqa: S105 - a timestamp


def build_attributes(
    spc: SecretProviderClass,
    pod: PodContext,
    *,
    volume_attributes: Mapping[str, str] | None = None,
    rotation_reconciler: bool = False,
) -> dict[str, str]:
    """The attributes JSON object of a Mount, as the driver builds it.

    NodePublishVolume (both driver lines): the class parameters, then the
    pod's volume attributes and kubelet's pod info over them. The v1.5.x
    rotation reconciler (``rotation_reconciler``) rebuilds them from the class
    and the Pod object instead: no volume attributes, no ``ephemeral``.
    """
    attrs = dict(spc.parameters)
    volume = dict(volume_attributes or {})
    volume.setdefault("secretProviderClass", spc.name)
    if not rotation_reconciler:
        attrs.update(volume)
        attrs[keys.EPHEMERAL] = "true"
    attrs[keys.POD_NAME] = pod.name
    attrs[keys.POD_NAMESPACE] = pod.namespace
    attrs[keys.POD_UID] = pod.uid
    attrs[keys.SERVICE_ACCOUNT] = pod.service_account
    if pod.tokens:
        attrs[keys.TOKENS] = json.dumps(
            {
                aud: {"token": tok, "expirationTimestamp": pod.token_expiry}
                for aud, tok in pod.tokens.items()
            }
        )
    return attrs
