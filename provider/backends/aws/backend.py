"""AWS Secrets Manager and SSM Parameter Store, fetched as the pod.

Secrets Manager objects are read one GetSecretValue each, in parallel (its
quota is 10,000/s; BatchGetSecretValue's is only 100/s). SSM parameters are
read with GetParameters, ten names a call (SSM's default quota is 40/s).
A failover region is tried only when the primary fails with a transient or
server-side fault; the AWS provider calls both regions on every mount.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import botocore
import botocore.config

from provider.backends.aws import AwsSettings
from provider.backends.aws.config import (
    AwsObject,
    AwsPlan,
    ObjectType,
    Selector,
    check_arn_region,
    parse_plan,
)
from provider.backends.aws.credentials import (
    MAX_STS_CLIENTS,
    POD_IDENTITY_AUDIENCE,
    POD_IDENTITY_IPV4,
    POD_IDENTITY_IPV6,
    ROLE_ANNOTATION,
    STS_AUDIENCE,
    AwsIdentity,
    Credentials,
    close_client,
    identity_cache,
    pod_identity_credentials,
    session_name,
    sts_credentials,
)
from provider.backends.aws.endpoints import lean_session
from provider.backends.aws.errors import keep_unreadable_error_status, translate
from provider.backends.aws.render import Fetched, parameter_answer, render, secret_answer
from provider.backends.base import (
    Backend,
    BackendServices,
    FetchContext,
    FetchResult,
    ObjectVersion,
    OutputFile,
)
from provider.cache import Cache
from provider.codes import ErrorCode
from provider.errors import (
    DeadlineExceeded,
    InvalidParameters,
    NotFound,
    PermissionDenied,
    ProviderError,
    Unavailable,
)
from provider.identity import verified_token
from provider.request import MountRequest

REGION_LABEL = "topology.kubernetes.io/region"
SSM_BATCH = 10


def ssm_name(sel: Selector) -> str:
    """GetParameters selector syntax: ``name:version`` or ``name:label``."""
    if sel.version:
        return f"{sel.name}:{sel.version}"
    if sel.label:
        return f"{sel.name}:{sel.label}"
    return sel.name


class AwsBackend(Backend[AwsPlan]):
    name = "aws"
    cache_plans = True

    def __init__(self, settings: AwsSettings, services: BackendServices) -> None:
        self._settings = settings
        self._services = services
        # One Session for the process: a new Session costs ~60 ms of CPU, a
        # client made from a shared one ~2 ms. Session.client is not thread-safe.
        # With botocore's endpoint data for our three services only (see endpoints).
        self._session: Any = lean_session()
        # Every client of the session: a 429/5xx that botocore cannot read keeps
        # its status and Retry-After (see UnreadableErrorAnswer).
        self._session.events.register("before-parse", keep_unreadable_error_status)
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
        # A class names any region: STS clients are kept for a bounded few,
        # and evicting one closes its connections.
        self.sts_clients: Cache[str, Any] = Cache(
            "aws.sts", max_entries=MAX_STS_CLIENTS, on_evict=close_client
        )
        self.identities = identity_cache()
        if services.caches is not None:
            services.caches.add(self.identities)
            services.caches.add(self.sts_clients)

    # -- plan ---------------------------------------------------------------

    def plan(self, request: MountRequest) -> AwsPlan:
        return parse_plan(request.attributes, request.default_mode, self._settings.region)

    def object_count(self, plan: AwsPlan) -> int:
        return len(plan.objects)

    # -- clients ------------------------------------------------------------

    def _client(self, service: str, region: str, creds: Credentials | None) -> Any:
        with self._session_lock:
            if creds is None:
                return self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=self._settings.endpoint_url or None,
                    config=self._sts_config,
                )
            return self._session.client(
                service,
                region_name=region,
                endpoint_url=self._settings.endpoint_url or None,
                aws_access_key_id=creds.access_key,
                aws_secret_access_key=creds.secret_key,
                aws_session_token=creds.session_token,
                config=self._config,
            )

    def _sts_client(self, region: str) -> Any:
        client = self.sts_clients.peek(region)
        if client is None:
            client = self.sts_clients.put(region, self._client("sts", region, None))
        return client

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

    async def _role_arn(self, plan: AwsPlan, ctx: FetchContext) -> str:
        if plan.role_arn:
            return plan.role_arn
        pod = ctx.request.pod
        kube = self._services.kube
        if kube is None:
            raise InvalidParameters(
                [
                    "parameter 'roleArn' is required when the provider cannot read the "
                    f"ServiceAccount annotation {ROLE_ANNOTATION!r} (no Kubernetes API access)"
                ]
            )
        try:
            annotations = await kube.service_account_annotations(
                ctx, pod.namespace, pod.service_account
            )
        except NotFound:
            annotations = {}
        role = str(annotations.get(ROLE_ANNOTATION, ""))
        if not role:
            raise PermissionDenied(
                f"ServiceAccount {pod.namespace}/{pod.service_account} has no "
                f"{ROLE_ANNOTATION!r} annotation (IRSA); annotate it, set parameter "
                "'roleArn', or set usePodIdentity: \"true\"",
                code=ErrorCode.AuthFailed,
            )
        return role

    async def _identity(
        self, plan: AwsPlan, ctx: FetchContext, region: str
    ) -> tuple[tuple[str, ...], AwsIdentity]:
        pod = ctx.request.pod
        if plan.use_pod_identity:
            token = verified_token(ctx.request, POD_IDENTITY_AUDIENCE, parameter="usePodIdentity")
            endpoints = self._pod_identity_endpoints(plan.address_type)
            key = (pod.namespace, pod.service_account, "pod-identity", *endpoints)

            def load_pod_identity() -> AwsIdentity:
                last: ProviderError | None = None
                for endpoint in endpoints:
                    try:
                        return AwsIdentity(pod_identity_credentials(endpoint, token))
                    except Unavailable as exc:
                        last = exc  # try the other address family (auto)
                assert last is not None
                raise last

            return key, await ctx.shared(
                self.identities, key, load_pod_identity, operation="PodIdentity"
            )
        token = verified_token(ctx.request, STS_AUDIENCE, parameter="IRSA (usePodIdentity false)")
        role = await self._role_arn(plan, ctx)
        key = (pod.namespace, pod.service_account, "irsa", role)

        def load_irsa() -> AwsIdentity:
            try:
                answer = self._sts_client(region).assume_role_with_web_identity(
                    RoleArn=role,
                    RoleSessionName=session_name(pod.namespace, pod.service_account),
                    WebIdentityToken=token,
                )
            except Exception as exc:
                raise translate(
                    exc, subject=f"role {role!r}", operation="AssumeRoleWithWebIdentity"
                ) from None
            return AwsIdentity(sts_credentials(answer, role))

        return key, await ctx.shared(
            self.identities, key, load_irsa, operation="AssumeRoleWithWebIdentity"
        )

    def _pod_identity_endpoints(self, address_type: str) -> tuple[str, ...]:
        if self._settings.pod_identity_endpoint:
            return (self._settings.pod_identity_endpoint,)
        if address_type == "ipv4":
            return (POD_IDENTITY_IPV4,)
        if address_type == "ipv6":
            return (POD_IDENTITY_IPV6,)
        return (POD_IDENTITY_IPV4, POD_IDENTITY_IPV6)

    # -- fetch --------------------------------------------------------------

    async def fetch(self, plan: AwsPlan, ctx: FetchContext) -> FetchResult:
        region = await self._region(plan, ctx)
        if not plan.region:
            problems = [
                p for o in plan.objects for p in check_arn_region(o, region, plan.failover_region)
            ]
            if problems:
                raise InvalidParameters(problems)
        key, entry = await self._identity(plan, ctx, region)
        # Everything that decides what the backend lets this caller read.
        identity = (*key, region, plan.failover_region, self._settings.endpoint_url)

        def client(service: str, where: str) -> Any:
            return entry.client(service, where, lambda c: self._client(service, where, c))

        sm = [o for o in plan.objects if o.object_type is ObjectType.SECRETS_MANAGER]
        ssm = [o for o in plan.objects if o.object_type is ObjectType.SSM_PARAMETER]
        # An object may name its own region: one class, several regions, one
        # set of credentials (IAM is global); SSM batches never mix regions.
        jobs: list[Any] = [
            self._secret(o, plan, o.region or region, client, ctx, identity=identity) for o in sm
        ]
        by_region: dict[str, list[AwsObject]] = {}
        for o in ssm:
            by_region.setdefault(o.region or region, []).append(o)
        jobs.extend(
            self._parameters(batch, plan, where, client, ctx, identity=identity)
            for where, objects in by_region.items()
            for batch in _batches(objects)
        )
        results = await ctx.gather(jobs)
        fetched: dict[int, Fetched] = {}
        for part in results:
            fetched.update(part)
        files: list[OutputFile] = []
        versions: list[ObjectVersion] = []
        for obj in plan.objects:
            f, v = render(obj, fetched[id(obj)])
            files.extend(f)
            versions.extend(v)
        return FetchResult(tuple(files), tuple(versions))

    async def _with_failover(
        self,
        plan: AwsPlan,
        primary: Callable[[], Any],
        failover: Callable[[], Any] | None,
        ctx: FetchContext,
        operation: str,
    ) -> Any:
        try:
            return await ctx.call(primary, operation=operation)
        except (Unavailable, DeadlineExceeded):
            if failover is None or not plan.failover_region or ctx.deadline.remaining() < 1:
                raise
        return await ctx.call(failover, operation=f"{operation}(failover)")

    async def _secret(
        self,
        obj: AwsObject,
        plan: AwsPlan,
        region: str,
        client: Callable[[str, str], Any],
        ctx: FetchContext,
        *,
        identity: tuple[str, ...],
    ) -> dict[int, Fetched]:
        def read(sel: Selector, where: str) -> Callable[[], Fetched]:
            def call() -> Fetched:
                kwargs = {"SecretId": sel.name}
                if sel.version:
                    kwargs["VersionId"] = sel.version
                if sel.label:
                    kwargs["VersionStage"] = sel.label
                subject = f"object {obj.object_name!r} (secret {sel.name!r} in {where})"
                try:
                    answer = client("secretsmanager", where).get_secret_value(**kwargs)
                except Exception as exc:
                    raise translate(exc, subject=subject, operation="GetSecretValue") from None
                return secret_answer(answer, subject)

            return call

        failover = read(obj.failover, plan.failover_region) if obj.failover else None
        result = await ctx.cached_object(
            identity,
            ("GetSecretValue", region, obj.primary, obj.failover),
            lambda: self._with_failover(
                plan, read(obj.primary, region), failover, ctx, "GetSecretValue"
            ),
            refresh=plan.refresh_interval,
            size=lambda f: len(f.value),
        )
        return {id(obj): result}

    async def _parameters(
        self,
        batch: Sequence[AwsObject],
        plan: AwsPlan,
        region: str,
        client: Callable[[str, str], Any],
        ctx: FetchContext,
        *,
        identity: tuple[str, ...],
    ) -> dict[int, Fetched]:
        def read(
            selectors: list[tuple[AwsObject, Selector]], where: str
        ) -> Callable[[], dict[int, Fetched]]:
            def call() -> dict[int, Fetched]:
                names = [ssm_name(sel) for _, sel in selectors]
                try:
                    answer = client("ssm", where).get_parameters(
                        Names=list(dict.fromkeys(names)), WithDecryption=True
                    )
                except Exception as exc:
                    listed = ", ".join(repr(o.object_name) for o, _ in selectors)
                    raise translate(
                        exc, subject=f"objects {listed} (SSM in {where})", operation="GetParameters"
                    ) from None
                listed_invalid = answer.get("InvalidParameters")
                listed_invalid = listed_invalid if isinstance(listed_invalid, list) else []
                invalid = {n for n in listed_invalid if isinstance(n, str)}
                missing = [
                    o.object_name
                    for (o, _), n in zip(selectors, names, strict=True)
                    if n in invalid
                ]
                if missing:
                    raise NotFound(
                        f"SSM parameters not found in {where} (or version/label not found): "
                        + ", ".join(repr(m) for m in missing)
                    )
                params = answer.get("Parameters")
                params = params if isinstance(params, list) else []
                found = [p for p in params if isinstance(p, dict)]
                out: dict[int, Fetched] = {}
                for obj, sel in selectors:
                    subject = f"object {obj.object_name!r} (parameter {sel.name!r} in {where})"
                    param = _match_parameter(found, sel)
                    if param is None:
                        # SSM lists every name it was asked for, found or invalid:
                        # an answer that lists neither is not a usable answer.
                        raise Unavailable(
                            f"{subject}: AWS's GetParameters answer lists the parameter neither "
                            "as found nor as invalid; not a usable answer"
                        )
                    out[id(obj)] = parameter_answer(param, subject)
                return out

            return call

        primary = read([(o, o.primary) for o in batch], region)
        failover = None
        if all(o.failover for o in batch):
            failover = read([(o, o.failover) for o in batch if o.failover], plan.failover_region)

        async def load() -> tuple[Fetched, ...]:
            # Cached by names, not by the plan's objects: another class may ask the same.
            got: dict[int, Fetched] = await self._with_failover(
                plan, primary, failover, ctx, "GetParameters"
            )
            return tuple(got[id(o)] for o in batch)

        request = (
            "GetParameters",
            region,
            tuple(o.primary for o in batch),
            tuple(o.failover for o in batch) if failover is not None else (),
        )
        values = await ctx.cached_object(
            identity, request, load,
            refresh=plan.refresh_interval,
            size=lambda fs: sum(len(f.value) for f in fs),
        )
        return {id(o): f for o, f in zip(batch, values, strict=True)}

    def close(self) -> None:
        self.identities.clear()  # closes each identity's clients
        self.sts_clients.clear()


def _match_parameter(found: list[dict[str, Any]], sel: Selector) -> dict[str, Any] | None:
    """The answer for ``sel``. Batches never hold one name twice (see ``_batches``)."""
    for param in found:
        name = str(param.get("Name", ""))
        if name == sel.name or (sel.name.startswith("arn:") and sel.name.endswith(name)):
            return param
        if param.get("ARN") == sel.name:
            return param
    return None


def _batches(objects: Sequence[AwsObject]) -> list[list[AwsObject]]:
    """Groups of at most ten, never the same parameter name twice in one group.

    GetParameters answers ``name:1`` and ``name:2`` with two entries of the same
    Name (Selector tells them apart, and some servers omit it), so one name per
    batch keeps matching answers to objects unambiguous.
    """
    batches: list[list[AwsObject]] = []
    for obj in objects:
        for batch in batches:
            if len(batch) < SSM_BATCH and all(o.primary.name != obj.primary.name for o in batch):
                batch.append(obj)
                break
        else:
            batches.append([obj])
    return batches
