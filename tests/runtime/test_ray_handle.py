"""Health checks of remote replicas (runtime/ray_handle.py) against real actors on the test Ray cluster."""

from __future__ import annotations

import pytest

from tests.helpers.ray_cluster import RayCluster


@pytest.mark.slow
def test_a_hung_replica_is_killed_and_replaced_only_after_missing_pings_in_a_row(ray_cluster: RayCluster) -> None:
    result = ray_cluster.run_driver("tests.helpers.ray_health")
    missed = result["missed_pings"]
    assert missed > 1
    # one slow answer is a busy machine: the replica stays until it missed `missed` pings in a row
    assert result["hung"]["checks"] == [False] * (missed - 1) + [True]
    assert result["hung"]["generation"] == 1
    # the hung actor was killed, not left holding its CPUs and slots beside its replacement
    assert result["hung"]["old"] == "dead"
    assert result["hung"]["healthy_check"] is False
    # an actor Ray knows is dead is replaced at the first check
    assert result["dead"] == {"replaced": True, "generation": 1}
    # a replica busy with calls (of several gateways) still answers the pings of its control
    # group at once; a ping in the default group waits behind the calls and is missed
    assert result["busy"] == {
        "shared_replaced": False,
        "shared_missed": 0,
        "default_group_replaced": False,
        "default_group_missed": 1,
    }
