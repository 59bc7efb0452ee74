"""Issue 16, hardening: one test per defect, each reproducing it (and failing before its fix)."""
from __future__ import annotations

import asyncio
import os

import pytest


# -- 1. the local sweep cluster is authenticated -------------------------------------------------------------------
async def _refused(address: str, **connection_args) -> bool:
    """Whether a Dask comm to ``address`` is refused before it can send an operation."""
    from distributed.comm import connect

    try:
        comm = await connect(address, timeout=5, **connection_args)
        await comm.write({"op": "identity"})
        await asyncio.wait_for(comm.read(), 5)
    except (OSError, asyncio.TimeoutError):
        return True
    await comm.close()
    return False


@pytest.mark.dask
@pytest.mark.timeout(120)
def test_local_sweep_cluster_refuses_connections_without_its_credentials():
    """Another local user connected to the scheduler port and ran os.getuid on a worker: now every endpoint of the
    cluster is TLS with credentials only the sweep holds."""
    pytest.importorskip("distributed")
    from distributed import Client
    from distributed.security import Security

    from tumorca.sweep import local_cluster

    cluster = local_cluster(1)
    try:
        with Client(cluster, set_as_default=False) as client:  # the owner's client: the credentials come along
            assert client.submit(os.getpid, pure=False).result(timeout=60) != os.getpid()
            endpoints = [cluster.scheduler_address, *client.scheduler_info()["workers"]]
        assert all(a.startswith("tls://127.0.0.1:") for a in endpoints), endpoints
        stranger = Security.temporary().get_connection_args("client")  # TLS, but not this cluster's certificates
        for address in endpoints:
            assert asyncio.run(_refused(address.replace("tls://", "tcp://"))), address
            assert asyncio.run(_refused(address, **stranger)), address
    finally:
        cluster.close()
