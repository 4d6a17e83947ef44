"""AWS Secrets Manager and SSM Parameter Store, fetched as the pod.

Secrets Manager objects are read one GetSecretValue each, in parallel (its
quota is 10,000/s; BatchGetSecretValue's is only 100/s). SSM parameters are
read with GetParameters, ten names a call (SSM's default quota is 40/s).
A failover region is tried only when the primary fails with a transient or
server-side fault; the AWS provider calls both regions on every mount.
The two hot reads (GetSecretValue, GetParameters) are sent on the event loop
through ``ctx.call_async`` (``jsonrpc``: botocore's client gives the endpoint
and signs, http1 carries them); every other SDK call goes through ``ctx.call``
with the SDK method itself. Either way exceptions are translated once there
(``errors.translate``).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, TypeVar, cast

import botocore
import botocore.config

from provider import listing
from provider.backends.aws import AwsSettings, errors, pages
from provider.backends.aws.config import AwsPlan, parse_plan
from provider.backends.aws.credentials import AwsClient, AwsIdentity, Credentials, Logins
from provider.backends.aws.endpoints import keep_user_agent, lean_session
from provider.backends.aws.objects import AwsObject, ObjectType, Selector, check_arn_region
from provider.backends.aws.render import (
    Fetched,
    Matches,
    match_path,
    parameters_answer,
    render,
    secret_answer,
    ssm_name,
)
from provider.backends.base import Backend, BackendServices, FetchContext, FetchResult
from provider.errors import (
    DeadlineExceeded,
    InvalidParameters,
    Unavailable,
)
from provider.listing import Select
from provider.request import MountRequest

if TYPE_CHECKING:
    from provider.backends.aws.jsonrpc import JsonRpc

REGION_LABEL = "topology.kubernetes.io/region"
SSM_BATCH = 10
# A listing that keeps answering a next page past this is not ending.
MAX_PAGES = 1000
T = TypeVar("T")
# A listing's entry: a secret's name, or a parameter's name and value.
E = TypeVar("E", str, tuple[str, Fetched])


@dataclass(frozen=True)
class _Mount:
    """What one mount's reads share: its plan, context, region and identity."""

    plan: AwsPlan
    ctx: FetchContext
    region: str
    # Everything that decides what AWS lets this caller read (the object cache's key).
    identity: tuple[str, ...]
    entry: AwsIdentity


class AwsBackend(Backend[AwsPlan]):
    name = "aws"
    cache_plans = True
    translate = staticmethod(errors.translate)

    def __init__(self, settings: AwsSettings, services: BackendServices) -> None:
        self._settings = settings
        self._services = services
        # One Session for the process: a new Session costs ~60 ms of CPU, a
        # client made from a shared one ~2 ms. create_client is not thread-safe.
        # With botocore's endpoint data for our three services only (see endpoints).
        self._session = lean_session()
        # Every client of the session: a 429/5xx that botocore cannot read keeps
        # its status and Retry-After (see UnreadableErrorAnswer).
        self._session.register("before-parse", errors.keep_unreadable_error_status)
        self._session_lock = threading.Lock()
        # Our retry loop (provider.retry) honours the mount deadline; botocore's
        # would not, so it makes one attempt. `total_max_attempts` counts the
        # first request; botocore's `max_attempts` counts retries only (1 = one
        # hidden retry with up to 20 s of backoff outside our deadline).
        self._config = botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=settings.max_connections,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )
        self._sts_config = self._config.merge(
            botocore.config.Config(signature_version=botocore.UNSIGNED)
        )
        self.logins = Logins(settings, services, self._new_client)
        # GetSecretValue and GetParameters, on the loop: made at the first read
        # (http1, botocore's signer and validator stay out of an idle provider).
        self._jsonrpc: JsonRpc | None = None
        # The two bounded caches of logins (credentials per identity, STS clients per region).
        self.identities = self.logins.identities
        self.sts_clients = self.logins.sts_clients

    # -- plan ---------------------------------------------------------------

    def plan(self, request: MountRequest) -> AwsPlan:
        return parse_plan(
            request.attributes,
            default_mode=request.default_mode,
            settings=self._settings,
            max_objects=self._services.max_objects,
        )

    # -- clients ------------------------------------------------------------

    def _new_client(self, service: str, region: str, creds: Credentials | None) -> AwsClient:
        # botocore builds its clients at run time: AwsClient names what we call on them.
        client = cast(Callable[..., AwsClient], self._session.create_client)
        with self._session_lock:
            if creds is None:
                made = client(
                    service,
                    region_name=region,
                    endpoint_url=self._settings.endpoint_url or None,
                    config=self._sts_config,
                )
            else:
                made = client(
                    service,
                    region_name=region,
                    endpoint_url=self._settings.endpoint_url or None,
                    aws_access_key_id=creds.access_key,
                    aws_secret_access_key=creds.secret_key,
                    aws_session_token=creds.session_token,
                    config=self._config,
                )
        keep_user_agent(made)
        return made

    def _rpc(self) -> JsonRpc:
        if self._jsonrpc is None:
            from provider.backends.aws.jsonrpc import JsonRpc, ca_bundle

            ca_file = ca_bundle(self._session.get_config_variable("ca_bundle"))
            self._jsonrpc = JsonRpc(self._settings, ca_file=ca_file)
        return self._jsonrpc

    async def _sdk(self, m: _Mount, service: str, region: str) -> AwsClient:
        """The identity's client for ``service`` in ``region``, built off the event loop."""
        found = m.entry.cached(service, region)
        if found is not None:
            return found
        # Building a client reads botocore's data (~50 ms the first time, ~3 ms
        # after): never on the loop that serves every other pod.
        make = functools.partial(self._new_client, service, region)
        return await asyncio.get_running_loop().run_in_executor(
            None, m.entry.client, service, region, make
        )

    # -- identity -----------------------------------------------------------

    async def _region(self, plan: AwsPlan, ctx: FetchContext) -> str:
        if plan.region:
            return plan.region
        kube = self._services.kube
        node = self._services.node_name
        if kube is None or not node:
            raise InvalidParameters(
                [
                    "parameter 'region' is required: the provider has no AWS_REGION and cannot "
                    "read its node's topology.kubernetes.io/region label"
                ]
            )
        labels = await kube.node_labels(ctx, node)
        region = str(labels.get(REGION_LABEL, ""))
        if not region:
            raise InvalidParameters(
                [f"parameter 'region' is required: node {node!r} has no {REGION_LABEL} label"]
            )
        return region

    # -- fetch --------------------------------------------------------------

    async def fetch(self, plan: AwsPlan, ctx: FetchContext) -> FetchResult:
        region = await self._region(plan, ctx)
        if not plan.region:
            problems = [
                p for o in plan.objects for p in check_arn_region(o, region, plan.failover_region)
            ]
            if problems:
                raise InvalidParameters(problems)
        key, entry = await self.logins.identity(plan, ctx, region)
        identity = (*key, region, plan.failover_region, self._settings.endpoint_url)
        m = _Mount(plan, ctx, region, identity, entry)
        sm = [o for o in plan.objects if o.object_type is ObjectType.SECRETS_MANAGER]
        ssm = [o for o in plan.objects if o.object_type is ObjectType.SSM_PARAMETER]
        # An object may name its own region: one class, several regions, one
        # set of credentials (IAM is global); SSM batches never mix regions.
        jobs: list[Awaitable[dict[int, Fetched | Matches]]] = [
            self._selection(m, o) for o in plan.objects if o.select
        ]
        jobs.extend(self._secret(m, o) for o in sm if not o.select)
        by_region: dict[str, list[AwsObject]] = {}
        for o in ssm:
            if o.select:
                continue
            by_region.setdefault(o.region or region, []).append(o)
        jobs.extend(
            self._parameters(m, batch, where)
            for where, objects in by_region.items()
            for batch in batches(objects)
        )
        fetched = {k: v for part in await ctx.gather(jobs) for k, v in part.items()}
        return FetchResult.of(render(obj, fetched[id(obj)]) for obj in plan.objects)

    @staticmethod
    async def _with_failover(
        m: _Mount,
        primary: Callable[[], Awaitable[T]],
        failover: Callable[[], Awaitable[T]] | None,
    ) -> T:
        try:
            return await primary()
        except (Unavailable, DeadlineExceeded):
            if failover is None or not m.plan.failover_region or m.ctx.deadline.remaining() < 1:
                raise
        return await failover()

    async def _secret(self, m: _Mount, obj: AwsObject) -> dict[int, Fetched | Matches]:
        region = obj.region or m.region
        value = await self._secret_value(m, obj.object_name, obj.primary, obj.failover, region)
        return {id(obj): value}

    async def _secret_value(
        self, m: _Mount, name: str, primary: Selector, failover: Selector | None, region: str
    ) -> Fetched:
        """One secret through the rotation cache (a selection's matches share its entries)."""
        first = functools.partial(self._get_secret, m, name, primary, region, "GetSecretValue")
        then = failover and functools.partial(
            self._get_secret,
            m,
            name,
            failover,
            m.plan.failover_region,
            "GetSecretValue(failover)",
        )
        return await m.ctx.cached_object(
            m.identity,
            ("GetSecretValue", region, primary, failover),
            functools.partial(self._with_failover, m, first, then or None),
            refresh=m.plan.refresh_interval,
            size=lambda f: len(f.value),
        )

    async def _get_secret(
        self, m: _Mount, name: str, sel: Selector, where: str, operation: str
    ) -> Fetched:
        client = await self._sdk(m, "secretsmanager", where)
        subject = f"object {name!r} (secret {sel.name!r} in {where})"
        return await m.ctx.call_async(
            read_secret, self._rpc(), client, m.entry.credentials, sel, subject,
            operation=operation, subject=subject,
        )

    # -- select ---------------------------------------------------------------

    async def _selection(self, m: _Mount, obj: AwsObject) -> dict[int, Fetched | Matches]:
        """Every entry under the object's path or prefix, bounded before any value is read."""
        region = obj.region or m.region
        assert obj.select is not None
        if obj.object_type is ObjectType.SSM_PARAMETER:
            matches: Matches = await m.ctx.cached_object(
                m.identity,
                ("GetParametersByPath", region, obj.select),
                functools.partial(self._list, m, obj, region, pages.parameters_page),
                refresh=m.plan.refresh_interval,
                size=lambda ms: sum(len(n) + len(f.value) for n, f in ms),
            )
            return {id(obj): matches}
        names: tuple[str, ...] = await m.ctx.cached_object(
            m.identity,
            ("ListSecrets", region, obj.select),
            functools.partial(self._list, m, obj, region, pages.secrets_page),
            refresh=m.plan.refresh_interval,
            size=lambda ns: sum(len(n) for n in ns),
        )
        values = await m.ctx.gather(
            self._secret_value(m, obj.object_name, Selector(n), None, region) for n in names
        )
        return {id(obj): tuple(zip(names, values, strict=True))}

    async def _list(
        self,
        m: _Mount,
        obj: AwsObject,
        region: str,
        read_page: Callable[[AwsClient, Select, str, str], tuple[list[E], str]],
    ) -> tuple[E, ...]:
        """Page through a listing until it ends or passes the bound; then check names and bound."""
        assert obj.select is not None
        ssm = obj.object_type is ObjectType.SSM_PARAMETER
        operation = "GetParametersByPath" if ssm else "ListSecrets"
        client = await self._sdk(m, "ssm" if ssm else "secretsmanager", region)
        subject = f"object {obj.object_name!r} ({operation} in {region})"
        found: list[E] = []
        token = ""
        for _ in range(MAX_PAGES):
            page, token = await m.ctx.call(
                read_page, client, obj.select, token, subject, operation=operation, subject=subject
            )
            found.extend(page)
            if not token or len(found) > obj.select.max:
                break
        else:
            raise Unavailable(f"{subject}: the listing did not end after {MAX_PAGES} pages")
        listing.check_bound(obj.select, len(found), f"object {obj.object_name!r}")
        ordered = sorted(found, key=_entry_name)
        for entry in ordered:
            match_path(obj, _entry_name(entry))  # a bad name fails before any value is read
        return tuple(ordered)

    async def _parameters(
        self, m: _Mount, batch: Sequence[AwsObject], region: str
    ) -> dict[int, Fetched | Matches]:
        primary = functools.partial(
            self._get_parameters, m, [(o, o.primary) for o in batch], region, "GetParameters"
        )
        failover = None
        if all(o.failover for o in batch):
            failover = functools.partial(
                self._get_parameters,
                m,
                [(o, o.failover) for o in batch if o.failover],
                m.plan.failover_region,
                "GetParameters(failover)",
            )

        async def load() -> tuple[Fetched, ...]:
            # Cached by names, not by the plan's objects: another class may ask the same.
            got = await self._with_failover(m, primary, failover)
            return tuple(got[id(o)] for o in batch)

        request = (
            "GetParameters",
            region,
            tuple(o.primary for o in batch),
            tuple(o.failover for o in batch) if failover is not None else (),
        )
        values = await m.ctx.cached_object(
            m.identity,
            request,
            load,
            refresh=m.plan.refresh_interval,
            size=lambda fs: sum(len(f.value) for f in fs),
        )
        return {id(o): f for o, f in zip(batch, values, strict=True)}

    async def _get_parameters(
        self,
        m: _Mount,
        selectors: list[tuple[AwsObject, Selector]],
        where: str,
        operation: str,
    ) -> dict[int, Fetched]:
        client = await self._sdk(m, "ssm", where)
        listed = ", ".join(repr(o.object_name) for o, _ in selectors)
        return await m.ctx.call_async(
            read_parameters,
            self._rpc(),
            client,
            m.entry.credentials,
            selectors,
            where,
            operation=operation,
            subject=f"objects {listed} (SSM in {where})",
        )

    def close(self) -> None:
        self.logins.close()
        if self._jsonrpc is not None:
            self._jsonrpc.close()


def _entry_name(entry: str | tuple[str, Fetched]) -> str:
    return entry if isinstance(entry, str) else entry[0]


# The request and the check of its answer run as one ``ctx.call_async``: an
# answer that is not usable (cut, empty) is retried like a 503.


async def read_secret(
    rpc: JsonRpc, client: AwsClient, creds: Credentials, sel: Selector, subject: str
) -> Fetched:
    """One GetSecretValue and its checked answer."""
    answer = await rpc.call(client, creds, "GetSecretValue", dict(secret_id(sel)))
    return secret_answer(answer, subject)


async def read_parameters(
    rpc: JsonRpc,
    client: AwsClient,
    creds: Credentials,
    selectors: list[tuple[AwsObject, Selector]],
    where: str,
) -> dict[int, Fetched]:
    """One GetParameters (ten names at most) and each object's checked value."""
    names = list(dict.fromkeys(ssm_name(sel) for _, sel in selectors))
    params = {"Names": names, "WithDecryption": True}
    answer = await rpc.call(client, creds, "GetParameters", params)
    return parameters_answer(answer, selectors, where)


class SecretId(TypedDict, total=False):
    SecretId: str
    VersionId: str
    VersionStage: str


def secret_id(sel: Selector) -> SecretId:
    """GetSecretValue's arguments for ``sel``."""
    kwargs = SecretId(SecretId=sel.name)
    if sel.version:
        kwargs["VersionId"] = sel.version
    if sel.label:
        kwargs["VersionStage"] = sel.label
    return kwargs


def batches(objects: Sequence[AwsObject]) -> list[list[AwsObject]]:
    """Groups of at most ten, never the same parameter name twice in one group.

    GetParameters answers ``name:1`` and ``name:2`` with two entries of the same
    Name (Selector tells them apart, and some servers omit it), so one name per
    batch keeps matching answers to objects unambiguous.
    """
    groups: list[list[AwsObject]] = []
    for obj in objects:
        for group in groups:
            if len(group) < SSM_BATCH and all(o.primary.name != obj.primary.name for o in group):
                group.append(obj)
                break
        else:
            groups.append([obj])
    return groups
