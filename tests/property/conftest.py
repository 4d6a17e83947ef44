"""Hypothesis settings for the property tests: bounded, deterministic, no example database.

CI runs the ``ci`` profile: a fixed number of examples per test, derandomized
(the same examples every run, so a failure reproduces and CI is never flaky),
and a per-example deadline that turns a hang (an alias bomb, a quadratic
parser) into a failure instead of a stuck job. ``HYPOTHESIS_PROFILE=explore``
draws fresh, many more examples for a deeper local search.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=300,
    deadline=timedelta(seconds=2),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    max_examples=3000,
    deadline=timedelta(seconds=2),
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: object) -> None:
    # Hypothesis's report hook looks at every loaded typing module; touching
    # mypy_extensions.TypedDict (loaded by the protobuf stubs' tooling) warns,
    # and the suite turns warnings into errors inside that hook.
    config.addinivalue_line(  # type: ignore[attr-defined]
        "filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
    )
