"""Leases of gateways on a shared replica (runtime/lease.py): when a replica on a cluster may end."""

from __future__ import annotations

from mmserve.runtime.lease import Holders


def test_a_replica_is_held_until_its_last_lease_runs_out() -> None:
    holders = Holders()
    holders.hold("a", 10, now=0)
    holders.hold("b", 10, now=5)
    assert holders.gateways(now=9) == ["a", "b"]
    assert not holders.unheld(now=9.9)
    assert holders.gateways(now=12) == ["b"]  # a stopped renewing (killed): its lease ran out
    assert not holders.unheld(now=14.9)
    assert holders.unheld(now=15.1)


def test_a_ping_renews_a_lease_and_never_shortens_it() -> None:
    holders = Holders()
    holders.hold("a", 10, now=0)
    holders.hold("a", 10, now=8)  # the next health check
    assert not holders.unheld(now=17)
    holders.hold("a", 1, now=9)  # a gateway with a shorter lease pinging: the longer one stands
    assert not holders.unheld(now=17)
    assert holders.unheld(now=18.5)


def test_a_gateway_giving_its_lease_back_leaves_the_others_holding() -> None:
    holders = Holders()
    holders.hold("a", 10, now=0)
    holders.hold("b", 10, now=0)
    holders.release("a")
    assert holders.gateways(now=1) == ["b"]
    holders.release("b")
    assert holders.unheld(now=1)
    holders.release("b")  # twice (a retry): no error
    assert holders.unheld(now=1)


def test_a_running_call_keeps_a_replica_nobody_holds() -> None:
    """A late ping must never end a busy replica: a running call means a live gateway."""
    holders = Holders()
    holders.hold("a", 10, now=0)
    holders.running += 1
    assert not holders.unheld(now=60)
    holders.running -= 1
    assert holders.unheld(now=60)
