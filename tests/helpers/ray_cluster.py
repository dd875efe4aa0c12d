"""A local Ray cluster for tests: a head and a second node started with ``ray start``, on loopback.

Each node has its own custom resource (``node_head`` / ``node_b``) so that tests can see where
an actor landed, and both have ``mmserve_test`` slots that test cards ask for, so that a
replica can move from one node to the other. Each node runs ``ray start --block`` in its own
process group: :meth:`RayCluster.kill_node` SIGKILLs one node's processes (a machine dying),
:meth:`RayCluster.stop` ends the rest. Never ``ray stop``: it ends every Ray process on the
machine, other people's included.

Processes that connect to it (the test itself, an ``mmserve serve``) get :attr:`env`, which
keeps Ray's drivers on loopback too (see tests/helpers/ray_node.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.server import free_port

REPO = Path(__file__).resolve().parents[2]
# Nodes are declared dead after ~5 s without a heartbeat instead of ~15 s (not sooner: on a loaded
# 2-core CI machine a live node can miss a few half-second checks).
HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "10"}


@dataclass
class RayNode:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class RayCluster:
    def __init__(self, *, cpus_per_node: int = 4, slots_per_node: int = 2) -> None:
        # short: Ray puts unix sockets under it (at most 107 characters a path)
        self.root = Path(tempfile.mkdtemp(prefix="mmray-", dir="/tmp"))
        self.port = free_port()
        self.cpus = cpus_per_node
        self.slots = slots_per_node
        self.nodes: dict[str, RayNode] = {}
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # drivers and the head stay on 127.0.0.1
            # a node's SIGTERM (stop()) would first drain it for up to 30 s: 20 s at the end of every
            # test session that ran replicas on the head. Nothing here needs a drain: end at once.
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            **HEALTH,
        }

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, nodes: int = 2) -> RayCluster:
        self._start_node("head", head=True)
        if nodes > 1:
            self._start_node("b")
        return self

    def _start_node(self, name: str, *, head: bool = False, timeout: float = 180.0) -> RayNode:
        resources = {f"node_{name}": 100.0, "mmserve_test": float(self.slots)}
        args = ["start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
        args += [f"--num-cpus={self.cpus}", "--num-gpus=0", f"--resources={json.dumps(resources)}"]
        args += ["--object-store-memory=100000000"]
        if head:
            cmd = [str(Path(sys.executable).parent / "ray"), *args, "--head", f"--port={self.port}"]
            cmd += ["--include-dashboard=false", f"--temp-dir={self.root}"]
        else:
            cmd = [sys.executable, "-m", "tests.helpers.ray_node", *args, f"--address={self.address}"]
        log = self.root / f"{name}.log"
        env = dict(self.env)
        if not head:
            env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # joining a head needs it on (see ray_node.py)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
            )
        node = RayNode(name, proc, log, resources)
        self.nodes[name] = node
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "Ray runtime started" in text:
                return node
            if proc.poll() is not None:
                raise RuntimeError(f"ray start ({name}) exited:\n{text[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"ray start ({name}) did not come up")

    def node_names(self) -> dict[str, str]:
        """Ray node id -> this cluster's node name (from each node's ``node_<name>`` resource); alive nodes only."""
        script = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
            "print(json.dumps({n['NodeID']: [k[5:] for k in n['Resources'] if k.startswith('node_')] "
            "for n in ray.nodes() if n['Alive']}))"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], env=self.env, capture_output=True, text=True, timeout=120, check=True
        )
        found = json.loads(out.stdout.strip().splitlines()[-1])
        return {node: names[0] for node, names in found.items() if names}

    def run_driver(self, module: str, *args: str, timeout: float = 240) -> Any:
        """Run ``python -m <module> <address> <args>`` as a Ray driver of its own (so that the test
        process never joins a cluster: ``ray.init`` stays for its life); the JSON of its last line."""
        out = subprocess.run(
            [sys.executable, "-m", module, self.address, *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def kill_node(self, name: str) -> None:
        """SIGKILL every process of one node (its raylet, workers and actors): a machine dying."""
        node = self.nodes[name]
        tree = _descendants(node.proc.pid)  # workers leave the group (setsid) but stay children
        _kill_group(node.proc.pid, signal.SIGKILL)
        for pid in tree:
            _kill(pid, signal.SIGKILL)
        node.proc.wait(timeout=30)

    def stop(self) -> None:
        for name in reversed(list(self.nodes)):
            node = self.nodes[name]
            if node.alive:
                _kill_group(node.proc.pid, signal.SIGTERM)
                try:
                    node.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    _kill_group(node.proc.pid, signal.SIGKILL)
                    node.proc.wait(timeout=10)
        # workers leave their node's process group: end whatever still runs in this cluster's temp dir
        for pid in self._pids():
            _kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def _pids(self) -> list[int]:
        """Processes whose command line names this cluster's temp dir."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(self.root) in cmdline:
                found.append(int(entry.name))
        return found


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
