"""Hypothesis strategies for hostile requests and SecretProviderClasses of the three dialects.

Why generated and not listed: the dialect tests hold the mistakes someone
thought of; issue 10 showed the ones nobody did. These build mostly-valid
classes (every known key of each dialect) with values drawn from a pool that
leans on what breaks parsers and path rules: wrong types, empty and huge
strings, traversal and absolute paths, odd numbers, nested structures. A
planted token and secret ride along in every request, so a test can check
that no message ever quotes them.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import strategies as st

from provider.backends.aws.objects import JMES_KEYS
from provider.backends.aws.objects import OBJECT_KEYS as AWS_KEYS
from provider.backends.azure.objects import OBJECT_KEYS as AZURE_KEYS
from provider.backends.vault.config import OBJECT_KEYS as VAULT_KEYS
from provider.request import TOKENS

PLANTED_TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJwcm9wZXJ0eSJ9.UExBTlRFRC10b2tlbi0zOWQx"
PLANTED_SECRET = "PLANTED-secret-value-5b7e0c"

PATHLIKE = st.sampled_from(
    [
        "a", "a/b", "../x", "/abs", "a//b", "..data", "..2024", ".", "./a", "a/", "a/../b",
        "x" * 256, "a\x00b", "\\..\\x", "..", "~", "a/./b",
        "arn:aws:secretsmanager:us-east-1:1:secret:x", "arn:aws:ssm:us-east-1:1:parameter/x",
        "arn:aws:", "secret/data/x", "secret/data/x?version=1",
    ]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    PATHLIKE,
    st.sampled_from(["0644", "0o777", "777", "0x1ff", "420", "-1", "1e3", "GET", "POST", "pem",
                     "pfx", "secret", "key", "cert", "secretsmanager", "ssmparameter", "base64",
                     "hex", "utf-8", "AWSCURRENT", "true", "no"]),
)
VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _objects(keys: tuple[str, ...], extra: dict[str, st.SearchStrategy[Any]]) -> Any:
    """Lists of objects whose keys are mostly known ones (sometimes misspelt or unknown)."""
    key = st.one_of(st.sampled_from(keys), st.sampled_from([k.upper() for k in keys]),
                    st.text(max_size=10))
    values = {k: extra.get(k, VALUES) for k in keys}
    obj = st.one_of(
        st.fixed_dictionaries({}, optional={k: v for k, v in values.items()}),
        st.dictionaries(key, VALUES, max_size=4),
        VALUES,
    )
    return st.lists(obj, max_size=4)


JMES = st.lists(
    st.one_of(
        st.fixed_dictionaries({}, optional={k: VALUES for k in JMES_KEYS}),
        st.fixed_dictionaries(
            {"path": st.sampled_from(["user", "a.b", "[0]", "length(@)", "x[", "`1`"]),
             "objectAlias": PATHLIKE}
        ),
    ),
    max_size=3,
)
def _valid(required: dict[str, Any], optional: dict[str, Any]) -> Any:
    """Lists of objects that pass validation unless an optional value breaks them."""
    return st.lists(st.fixed_dictionaries(required, optional=optional), min_size=1, max_size=3)


# Escapes from the volume, drawn often: the property that matters most.
TRAVERSAL = st.sampled_from(["../x", "a/../b", "..", "../../etc/passwd", "a/..", "/abs", "//x"])
ALIAS = st.one_of(TRAVERSAL, PATHLIKE, st.text(max_size=12))
AWS_VALID = _valid(
    {"objectName": st.sampled_from(["app/db", "x", "/lead/slash", "a/b/c"]),
     "objectType": st.just("secretsmanager")},
    {"objectAlias": ALIAS, "jmesPath": JMES, "filePermission": st.sampled_from(["0600", "777"])},
)
VAULT_VALID = _valid(
    {"objectName": st.one_of(st.sampled_from(["db", "a/b", "x.txt"]), ALIAS),
     "secretPath": st.just("secret/data/app")},
    {"secretKey": st.text(max_size=5), "method": st.sampled_from(["GET", "POST"])},
)
AZURE_VALID = _valid(
    {"objectName": st.sampled_from(["s", "cert-1"]), "objectType": st.just("secret")},
    {"objectAlias": ALIAS, "objectVersionHistory": st.sampled_from([0, 2, "3"])},
)
AWS_OBJECTS = _objects(AWS_KEYS, {"objectName": PATHLIKE, "objectAlias": PATHLIKE,
                                  "objectType": st.sampled_from(["secretsmanager",
                                                                 "ssmparameter", "x", ""]),
                                  "jmesPath": JMES})
VAULT_OBJECTS = _objects(VAULT_KEYS, {"objectName": PATHLIKE, "secretPath": PATHLIKE})
AZURE_OBJECTS = _objects(AZURE_KEYS, {"objectName": PATHLIKE, "objectAlias": PATHLIKE,
                                      "objectType": st.sampled_from(["secret", "key", "cert",
                                                                     "x"])})


@st.composite
def document(draw: st.DrawFn, objects: st.SearchStrategy[Any], azure: bool = False) -> str:
    """The `objects` parameter text: YAML or JSON, sometimes cut short or garbled."""
    items = draw(objects)
    if azure and draw(st.booleans()):
        # The Azure dialect's usual form: `array:` of YAML strings.
        items = {"array": [yaml.safe_dump(i) if draw(st.booleans()) else i for i in items]}
    text = json.dumps(items, default=str) if draw(st.booleans()) else yaml.safe_dump(items)
    mangle = draw(st.sampled_from(["keep"] * 6 + ["cut", "garble", "random"]))
    if mangle == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif mangle == "garble":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["{", "]", ":", "&a", "*a", "!!python/name:x",
                                                 "\t", "- ", "'", '"'])) + text[at:]
    elif mangle == "random":
        text = draw(st.text(max_size=60))
    return text


TOP_VALUE = st.one_of(st.text(max_size=30), PATHLIKE, st.sampled_from(
    ["true", "false", "yes", "1", "us-east-1", "us-west-2", "ipv6", "https://127.0.0.1:9",
     "http://[::1", "https://h:99999", "AzureChinaCloud", "kv-1", "vault", "arn:aws:iam::1:role/r"]
))


def params(
    keys: list[str], objects: st.SearchStrategy[str], base: dict[str, str]
) -> st.SearchStrategy[dict[str, str]]:
    """Top-level parameters: a working base, then random known keys, then `objects`."""
    return st.builds(
        lambda keep, top, objs: {
            **(base if keep else {}), **top, **({"objects": objs} if objs is not None else {})
        },
        st.sampled_from([True, True, True, False]),
        st.one_of(st.just({}), st.fixed_dictionaries({}, optional={k: TOP_VALUE for k in keys})),
        st.one_of(st.none(), objects),
    )


AWS_TOP = ["region", "failoverRegion", "pathTranslation", "usePodIdentity",
           "preferredAddressType", "roleArn"]
VAULT_TOP = ["roleName", "vaultAddress", "vaultNamespace", "vaultAuthMountPath",
             "vaultKubernetesMountPath", "audience", "vaultSkipTLSVerify", "vaultCACertPath",
             "vaultCADirectory", "vaultTLSServerName", "vaultTLSClientCertPath",
             "vaultTLSClientKeyPath"]
AZURE_TOP = ["keyvaultName", "tenantID", "tenantId", "cloudName", "clientID",
             "useVMManagedIdentity", "userAssignedIdentityID", "usePodIdentity"]

# pathTranslation off: with the default "_", a "/" never reaches a file name.
AWS_PARAMS = params(
    AWS_TOP, document(st.one_of(AWS_VALID, AWS_VALID, AWS_OBJECTS)), {"pathTranslation": "False"}
)
VAULT_PARAMS = params(
    VAULT_TOP, document(st.one_of(VAULT_VALID, VAULT_VALID, VAULT_OBJECTS)), {"roleName": "app"}
)
AZURE_PARAMS = params(
    AZURE_TOP,
    document(st.one_of(AZURE_VALID, AZURE_VALID, AZURE_OBJECTS), azure=True),
    {"keyvaultName": "kv-1", "tenantID": "tenant", "clientID": "client"},
)
MODES = st.one_of(st.just(0o644), st.integers(0, 0o777))


def tokens_attribute() -> st.SearchStrategy[str]:
    """The driver's tokens JSON, holding the planted token, sometimes malformed around it."""
    good = {"vault": {"token": PLANTED_TOKEN, "expirationTimestamp": "2099-01-01T00:00:00Z"}}
    return st.one_of(
        st.just(json.dumps(good)),
        st.builds(
            lambda s: json.dumps({"vault": {"token": PLANTED_TOKEN, "expirationTimestamp": s}}),
            st.one_of(st.text(max_size=20), st.integers().map(str)),
        ),
        st.builds(lambda n: json.dumps(good)[:n], st.integers(0, 60)),
        st.builds(lambda v: json.dumps({"vault": v, "x": PLANTED_TOKEN}), VALUES),
        st.builds(lambda v: json.dumps([PLANTED_TOKEN, v]), VALUES),
    )


@st.composite
def wire_request(draw: st.DrawFn) -> dict[str, str]:
    """The four string fields of a MountRequest, as a driver (or something worse) sends them."""
    attrs: dict[str, Any] = draw(st.dictionaries(st.text(max_size=12), TOP_VALUE, max_size=4))
    attrs[TOKENS] = draw(tokens_attribute())
    if draw(st.booleans()):
        attrs["csi.storage.k8s.io/pod.name"] = draw(VALUES)  # maybe not a string
    attributes = json.dumps(attrs, default=str)
    if draw(st.integers(0, 4)) == 0:
        attributes = attributes[: draw(st.integers(0, len(attributes)))]
    secrets = draw(st.one_of(
        st.sampled_from(["null", "{}", "", "[]", "1", '"x"']),
        st.builds(lambda v: json.dumps({"clientsecret": PLANTED_SECRET, "k": v}, default=str),
                  VALUES),
        st.builds(lambda n: json.dumps({"clientsecret": PLANTED_SECRET})[:n], st.integers(0, 30)),
    ))
    permission = draw(st.one_of(
        st.sampled_from(["420", "", "0644", "511", "512", "-1", "4.2", "true", "null", "1e3",
                         '"420"', "0x1a4", "9" * 50]),
        st.text(max_size=10),
    ))
    return {"attributes": attributes, "secrets": secrets, "permission": permission}
