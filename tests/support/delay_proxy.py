"""A TCP proxy on loopback that delays every client->server chunk.

Why: the test servers (moto, OpenBao, the Key Vault stand-in) answer in a few
milliseconds of their own CPU on this 2-core machine, so on loopback they,
not the network, bound what parallel fetching can gain. Real backends are
5-30 ms away. The benchmark puts this proxy in front of a server to show
what parallel fetching buys when the round trip dominates. It is the fault
proxy (tests/support/faultproxy.py) in raw mode with one fault, a fixed
latency, on for good: it forwards bytes only, so TLS passes through untouched
(the certificate still names 127.0.0.1).
"""

from __future__ import annotations

from tests.support.faultproxy import Fault, FaultProxy


class DelayProxy(FaultProxy):
    """``127.0.0.1:<port>`` -> ``127.0.0.1:<upstream_port>``, holding requests ``delay`` s."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        super().__init__(upstream_port, raw=True)
        self.delay = delay
        self.set(Fault.delay(delay) if delay else None)

    def url(self, scheme: str | None = "http") -> str:
        return super().url(scheme)
