"""Joining a Ray cluster, when one is configured: `AE_RAY_ADDRESS` (`auto`, `host:6379`, `ray://...`).

Ray is optional (`requirements-ray.txt`). Without an address nothing here imports it and the
app trains in local slots (`ae.training.slots`). With one, every process of the app that
needs the cluster (a web process, the map service, the training service's actor) joins it
through `connect()`: one namespace, so named actors are found from any machine, and this
checkout on the workers' import path. Every node must reach the same data file and model
store at the same paths: a shared folder (NFS, say), as the README's cluster setup says.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from ae.ipc import ServiceGone

ADDRESS_VARIABLE = "AE_RAY_ADDRESS"
NAMESPACE = "autoencoder-explorer"
ROOT = Path(__file__).resolve().parent.parent
_lock = threading.Lock()


def ray_address() -> str | None:
    """The configured cluster's address, or None: train on this machine."""
    return os.environ.get(ADDRESS_VARIABLE, "").strip() or None


def python_path() -> str:
    """This checkout first on a Ray worker's import path (every node runs the same checkout)."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def node_name() -> str:
    """This worker's node, short, for the page ("node 3f2a91c0")."""
    import ray

    return f"node {ray.get_runtime_context().get_node_id()[:8]}"


def connect(address: str | None = None):
    """Join the cluster once per process (later calls return at once); returns the `ray` module.
    Raises ClusterUnavailable, in words, if it cannot be reached or Ray is not installed."""
    address = address or ray_address()
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable(f"{ADDRESS_VARIABLE} is set, but Ray is not installed: "
                                 "pip install -r requirements-ray.txt") from None
    with _lock:
        if ray.is_initialized():
            return ray
        try:
            ray.init(address=address, namespace=NAMESPACE, logging_level="WARNING", log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": python_path()}})
        except Exception as error:  # Ray raises ConnectionError, RuntimeError, ValueError... in words
            raise ClusterUnavailable(f"The Ray cluster at {address} cannot be reached ({error}).") from None
    return ray


class ClusterUnavailable(ServiceGone):
    """Ray is configured but missing or unreachable."""
