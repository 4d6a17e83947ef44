"""Scenario 7: a rolling update of the provider while pods mount loses no mount.

With the chart's maxSurge > 0 the new provider pod starts before the old one
stops, on the same socket name: the new one takes the socket over, and the
old one, stopping, must not remove a socket that is no longer its own. The new
provider is a second release of the chart (its own DaemonSet, on other probe
ports: with hostNetwork two pods of one DaemonSet would collide on them), its
pod started by kubelet like the first; stopping a provider deletes its pod,
so kubelet sends SIGTERM and waits for the pod's grace period. Pods
created just before, during and after the switch must all mount; then the
same again in reverse (a rollback), which leaves the session's provider serving.
"""

from __future__ import annotations

from tests.e2e import pods
from tests.e2e.chart import Provider, install
from tests.e2e.conftest import APP_SA, World


def test_rolling_update_on_the_same_socket_loses_no_mount(world: World) -> None:
    cluster = world.cluster
    scenario = world.scenario("aws")
    cluster.apply(scenario.spc_yaml)
    socket = cluster.providers_dir / "polysecret.sock"
    names = [f"upgrade-{i}" for i in range(4)]

    def create(name: str) -> None:
        cluster.apply(pods.pod(name, APP_SA, pods.FILES_SCRIPT, spc=scenario.spc_name))

    new: Provider | None = None
    try:
        create(names[0])
        new = install(cluster, world.values, release="polysecret-next")
        create(names[1])
        world.provider.stop()
        assert socket.exists(), "the old provider removed the new one's socket"
        create(names[2])
        for name in names[:3]:
            assert pods.wait_for_round(cluster, name, "FILE") == scenario.files
        # Rollback: the session's provider comes back, the new one goes.
        world.provider.start()
        create(names[3])
        new.stop()
        assert socket.exists(), "the stopping provider removed its successor's socket"
        assert pods.wait_for_round(cluster, names[3], "FILE") == scenario.files
    finally:
        pods.delete(cluster, *names)
        # Whatever failed, later tests get the session's provider back.
        if not world.provider.running:
            world.provider.start()
        if new is not None and new.running:
            new.stop()
