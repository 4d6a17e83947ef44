"""Which backend serves a SecretProviderClass (parameters.md, "Choosing the backend").

In order: our ``backend`` parameter; the socket name we were reached by when it
is a backend name (drop-in for an existing provider); the one backend whose
dialect the parameters are written in. Each backend package says what its
dialect looks like (``claims``), so nothing here knows a dialect. Anything
else is an error that lists the three ways to say it.
"""

from __future__ import annotations

from collections.abc import Mapping

from provider.backends import BackendPackage
from provider.errors import InvalidParameters, Problems

BACKEND_PARAMETER = "backend"


def choose_backend(
    attributes: Mapping[str, str], served_name: str, packages: Mapping[str, BackendPackage]
) -> str:
    names = ", ".join(packages)
    explicit = attributes.get(BACKEND_PARAMETER)
    if explicit is not None:
        value = explicit.strip().lower()
        if value not in packages:
            raise InvalidParameters(
                [f"parameter 'backend': {explicit[:40]!r} is not one of {names}"]
            )
        return value
    if served_name in packages:
        return served_name
    problems = Problems()
    claimed = [name for name, package in packages.items() if package.claims(attributes, problems)]
    if len(claimed) == 1:
        return claimed[0]
    if claimed:
        raise InvalidParameters(
            [
                f"the parameters use keys of the {' and '.join(claimed)} dialects: set "
                "parameter 'backend' to the one this SecretProviderClass is for"
            ]
        )
    keys = "; ".join(f"{package.DIALECT} for {name}" for name, package in packages.items())
    raise InvalidParameters(
        [
            *problems,  # an unreadable 'objects' is the likelier cause: named first
            "cannot tell which backend this SecretProviderClass is for: set parameter "
            f"'backend' to one of {names}; or serve this provider under that name "
            "(--also-serve) and set spec.provider to it; or use a dialect key "
            f"({keys})",
        ]
    )
