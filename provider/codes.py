"""The stable error codes users see in pod events, as data.

Every Mount failure's message starts with one of these codes (the driver shows
it as the pod's ``FailedMount`` event), and logs and metric labels carry it. A
code is part of the provider's interface: users grep for it and alert on it, so
the set is closed here, each with its gRPC status and a one-line help.
``provider.status`` maps errors to gRPC statuses through this table, and
docs/errors.md is generated from it (``scripts/gen-error-table.py``), so the
code, the status and the documentation cannot drift apart.

``ErrorCode`` is a ``StrEnum``: ``exc.code == "AuthFailed"`` keeps working in
logs, metrics and tests, while a misspelt code no longer type-checks.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import StrEnum

import grpc

_ARG = grpc.StatusCode.INVALID_ARGUMENT
_DENIED = grpc.StatusCode.PERMISSION_DENIED
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


class ErrorCode(StrEnum):
    """A stable code; the member name is the text users see."""

    InvalidParameters = "InvalidParameters"
    InvalidPath = "InvalidPath"
    InvalidRequest = "InvalidRequest"
    MissingToken = "MissingToken"
    InvalidSecretFormat = "InvalidSecretFormat"
    InvalidCertificate = "InvalidCertificate"
    InvalidKey = "InvalidKey"
    UnsupportedKeyType = "UnsupportedKeyType"
    TemplateFailed = "TemplateFailed"
    ResponseTooLarge = "ResponseTooLarge"
    TooManyObjects = "TooManyObjects"
    SelectionTooLarge = "SelectionTooLarge"
    BackendRejected = "BackendRejected"
    TLSFailed = "TLSFailed"
    ProviderMisconfigured = "ProviderMisconfigured"
    BackendNotInstalled = "BackendNotInstalled"
    AccessDenied = "AccessDenied"
    AuthFailed = "AuthFailed"
    TokenMismatch = "TokenMismatch"
    KubernetesAccessDenied = "KubernetesAccessDenied"
    ObjectNotFound = "ObjectNotFound"
    BackendUnavailable = "BackendUnavailable"
    Throttled = "Throttled"
    Overloaded = "Overloaded"
    IdentityUnavailable = "IdentityUnavailable"
    KubernetesUnavailable = "KubernetesUnavailable"
    DeadlineExceeded = "DeadlineExceeded"
    Internal = "Internal"

    @property
    def status(self) -> grpc.StatusCode:
        """The gRPC status a Mount failing with this code answers."""
        return SPECS[self].status

    @property
    def help(self) -> str:
        """What it means and what to do, in one line (Markdown)."""
        return SPECS[self].help


@dataclass(frozen=True, slots=True)
class CodeSpec:
    status: grpc.StatusCode
    help: str


# Order: the table's order in docs/errors.md (by status, the common ones first).
SPECS: dict[ErrorCode, CodeSpec] = {
    ErrorCode.InvalidParameters: CodeSpec(
        _ARG,
        "a SecretProviderClass parameter is wrong; the message lists every problem at once, "
        "each naming the object and parameter: fix what it lists",
    ),
    ErrorCode.InvalidPath: CodeSpec(
        _ARG,
        "a file name breaks the driver's path rules (`..`, absolute, not clean, too long, "
        "a file used as a directory): change `objectAlias` / `objectName`",
    ),
    ErrorCode.InvalidRequest: CodeSpec(
        _ARG,
        "the driver's request itself is malformed (attributes, secrets or permission JSON, "
        "numbers or nesting beyond what Python reads, lone surrogates)",
    ),
    ErrorCode.MissingToken: CodeSpec(
        _ARG,
        "the driver sent no service-account token for an audience the backend needs: add the "
        "audience named in the message to the CSIDriver's `tokenRequests`, then delete the pod",
    ),
    ErrorCode.InvalidSecretFormat: CodeSpec(
        _ARG,
        "the value cannot be rendered as asked (`jmesPath` on a non-JSON secret or no match, "
        "a value that does not decode with its `encoding`, a PFX that cannot be read, "
        "an unknown certificate content type, a `keysAsFiles` file that is not a JSON object)",
    ),
    ErrorCode.InvalidCertificate: CodeSpec(
        _ARG,
        "Azure: Key Vault returned no certificate, or one that is not valid DER, for a "
        "`cert` object: check the certificate in the vault",
    ),
    ErrorCode.InvalidKey: CodeSpec(
        _ARG,
        "Azure: Key Vault returned an incomplete RSA or EC key for a `key` object: check the "
        "key in the vault",
    ),
    ErrorCode.UnsupportedKeyType: CodeSpec(
        _ARG,
        "Azure: a `key` object has no public key to write (a symmetric `oct` key) or an EC "
        "curve that cannot be encoded: remove the object from the class",
    ),
    ErrorCode.TemplateFailed: CodeSpec(
        _ARG,
        "a `templates` entry failed while rendering (the message names the template and the "
        "error's type, never a value): fix the template",
    ),
    ErrorCode.ResponseTooLarge: CodeSpec(
        _ARG,
        "the files exceed the driver's 4 MiB message limit; the message names the largest "
        "objects: split the SecretProviderClass",
    ),
    ErrorCode.TooManyObjects: CodeSpec(
        _ARG,
        "the class lists more objects than `--max-objects` (default 1000): split it",
    ),
    ErrorCode.SelectionTooLarge: CodeSpec(
        _ARG,
        "an object's `select` matched more entries than its `max` (default 100, at most "
        "`--max-objects`); nothing was mounted: narrow the path or tags, or raise `max`",
    ),
    ErrorCode.BackendRejected: CodeSpec(
        _ARG,
        "the backend rejected the request as malformed (Vault 400/405: bad `secretArgs` or "
        "`method`; Key Vault 400/409; an AWS validation error): fix the object",
    ),
    ErrorCode.TLSFailed: CodeSpec(
        _ARG,
        "Vault's certificate is not trusted or does not match its name, the CA or client "
        "files cannot be read, or the client certificate was refused: mount the CA "
        "(`extraVolumes`) and set `vault.caCert` or `vaultCACertPath`",
    ),
    ErrorCode.BackendNotInstalled: CodeSpec(
        _ARG,
        "the backend's SDK is not installed in the provider: install `polysecret[<backend>]` "
        "(the image has all three)",
    ),
    ErrorCode.ProviderMisconfigured: CodeSpec(
        _ARG,
        "the provider's own SDK setup cannot make the request (AWS: a bad `AWS_*` variable or "
        "config file in the provider's environment): fix the provider's deployment",
    ),
    ErrorCode.AccessDenied: CodeSpec(
        _DENIED,
        "the backend refused the pod's identity the read: grant the policy / role binding named "
        "in the message to the pod's identity (never to the node)",
    ),
    ErrorCode.AuthFailed: CodeSpec(
        _DENIED,
        "the pod could not authenticate (IRSA role annotation or Pod Identity association "
        "missing, Vault role or Azure federated credential not bound to this service account, "
        "the agent or Azure AD refused the token): fix the binding named in the message",
    ),
    ErrorCode.TokenMismatch: CodeSpec(
        _DENIED,
        "the pod's token does not name the request's service account or audience, or has "
        "expired; nothing was asked of a backend or a cache",
    ),
    ErrorCode.KubernetesAccessDenied: CodeSpec(
        _DENIED,
        "the provider's own RBAC does not allow a read it needs (`rbac.serviceAccounts` / "
        "`rbac.nodes` off while used): enable it, or set `roleArn` / `aws.region`",
    ),
    ErrorCode.ObjectNotFound: CodeSpec(
        grpc.StatusCode.NOT_FOUND,
        "the object, version, label or key does not exist (or no enabled version for an "
        "Azure history); the message names the object",
    ),
    ErrorCode.BackendUnavailable: CodeSpec(
        _UNAVAILABLE,
        "network or server fault, or an answer that is not what the backend's API promises "
        "(cut short, not JSON, no value or version), after retries; the driver retries. "
        "Never an empty file",
    ),
    ErrorCode.Throttled: CodeSpec(
        _UNAVAILABLE,
        "the backend throttled us after retries (its Retry-After, seconds or HTTP-date, is "
        "waited for when it fits in the mount deadline): lengthen `rotationPollInterval` or "
        "`refreshInterval`, check the backend's quota",
    ),
    ErrorCode.Overloaded: CodeSpec(
        _UNAVAILABLE,
        "the provider was at its limit of concurrent mounts for this backend (`--max-mounts`) "
        "and this mount could not have finished in time; the driver retries",
    ),
    ErrorCode.IdentityUnavailable: CodeSpec(
        _UNAVAILABLE,
        "Azure: no managed identity endpoint (IMDS) answered for `useVMManagedIdentity`; "
        "retried",
    ),
    ErrorCode.KubernetesUnavailable: CodeSpec(
        _UNAVAILABLE,
        "the Kubernetes API could not be read from the provider pod: check network policies; "
        "the mount is retried",
    ),
    ErrorCode.DeadlineExceeded: CodeSpec(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "the mount did not finish within its deadline (`--mount-timeout`, default 90 s): "
        "check connectivity to the backend (proxies: the chart's `env`)",
    ),
    ErrorCode.Internal: CodeSpec(
        grpc.StatusCode.INTERNAL,
        "a bug; details are in the provider's logs at `error`: please report it",
    ),
}


def markdown_table() -> str:
    """docs/errors.md's table, one row per code in ``SPECS`` order."""
    rows = ["| code | gRPC status | meaning / what to do |", "|---|---|---|"]
    for code, spec in SPECS.items():
        help_text = spec.help.replace("|", "\\|")
        rows.append(f"| `{code}` | {spec.status.name} | {help_text} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m provider.codes --markdown`` prints the table."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["--markdown"]:
        print("usage: python -m provider.codes --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
