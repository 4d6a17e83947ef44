"""The lean botocore session resolves our services exactly as botocore's default does.

provider.backends.aws.endpoints keeps only Secrets Manager, SSM and STS in
botocore's endpoint data: for every region of every partition, and with FIPS
and dual-stack endpoints, their clients must get the same endpoint URL and
sign for the same region and service name as with the full data.
"""

from __future__ import annotations

import datetime
import itertools
import json
from pathlib import Path
from typing import Any

import botocore
import botocore.config
import botocore.session
import botocore.utils
import pytest

from provider.backends.aws.endpoints import SERVICES, lean_session, read_endpoints, utc_timestamp


def _regions(session: Any) -> list[str]:
    resolver = session._get_internal_component("endpoint_resolver")
    return sorted(
        {r for p in resolver._endpoint_data["partitions"] for r in p["regions"]}
    )


def _resolved(client: Any) -> tuple[str, str, str]:
    signer = client._request_signer
    return client.meta.endpoint_url, signer.region_name, signer.signing_name


@pytest.mark.parametrize("variant", ["plain", "fips", "dualstack"])
def test_same_endpoints_as_botocore_default(variant: str) -> None:
    lean, full = lean_session(), botocore.session.get_session()
    config = botocore.config.Config(
        use_fips_endpoint=variant == "fips", use_dualstack_endpoint=variant == "dualstack"
    )
    regions = _regions(full)
    assert len(regions) > 30  # every partition's regions, not a stub
    compared = 0
    for service, region in itertools.product(sorted(SERVICES), regions):
        results = []
        for session in (lean, full):
            try:
                client = session.create_client(
                    service, region_name=region, config=config,
                    aws_access_key_id="x", aws_secret_access_key="x",
                )
                results.append(_resolved(client))
            except Exception as exc:  # e.g. no FIPS endpoint there: the same failure
                results.append((type(exc).__name__, "", ""))
        assert results[0] == results[1], (service, region)
        compared += 1
    assert compared == len(SERVICES) * len(regions)


def test_only_our_services_are_kept() -> None:
    resolver = lean_session()._get_internal_component("endpoint_resolver")
    kept = {s for p in resolver._endpoint_data["partitions"] for s in p["services"]}
    assert kept == SERVICES


def test_read_endpoints_is_json_with_only_our_services() -> None:
    path = Path(botocore.__file__).parent / "data" / "endpoints.json"
    text = path.read_text(encoding="utf-8")
    full = json.loads(text)
    for partition in full["partitions"]:
        partition["services"] = {
            k: v for k, v in partition["services"].items() if k in SERVICES
        }
    assert read_endpoints(text) == full
    assert read_endpoints(' {"partitions" : [ ] , "version":3 }\n') == {
        "partitions": [], "version": 3
    }
    small = '{"partitions":[{"services":{"ec2":{"a":[1]},"sts":{}},"x":1},{"services":{}}]}'
    assert read_endpoints(small) == {"partitions": [{"services": {"sts": {}}, "x": 1},
                                                    {"services": {}}]}
    for broken in ('{"partitions":[', '{"partitions":[]} x', '{"a" 1}', "[]"):
        with pytest.raises((ValueError, IndexError)):
            read_endpoints(broken)


@pytest.mark.parametrize("value", [1700000000, 1700000000.123, 0, "2026-12-05T14:00:00Z",
                                   "Sat, 05 Dec 2026 14:00:00 GMT"])
def test_timestamps_are_the_same_instants_as_botocore_s(value: str | float) -> None:
    ours = utc_timestamp(value)
    theirs = botocore.utils.parse_timestamp(value)
    assert ours == theirs and ours.timestamp() == theirs.timestamp()
    if not isinstance(value, str):
        assert ours.tzinfo is datetime.UTC


def test_an_epoch_out_of_range_fails_as_in_botocore() -> None:
    with pytest.raises(RuntimeError, match="timezone offset"):
        botocore.utils.parse_timestamp(1e20)
    with pytest.raises(RuntimeError, match="timezone offset"):
        utc_timestamp(1e20)


def test_clients_parse_epochs_as_utc() -> None:
    client = lean_session().create_client(
        "secretsmanager", region_name="us-east-1", aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    parser = client._endpoint._response_parser_factory.create_parser("json")
    assert parser._timestamp_parser is utc_timestamp
