"""The lazy ``kubernetes_asyncio.client``: the same names, loaded when used (no cluster)."""

from __future__ import annotations

import textwrap

from tests.support.fresh_interpreter import run_probe

from certctl_operator.kube.lazy_client import exports_of


def test_exports_are_read_from_the_imports_and_literals_without_running_anything() -> None:
    source = textwrap.dedent(
        """
        '''Generated.'''
        __version__ = "1.2.3"
        __all__ = ["CoreV1Api", "V1Pod"]
        from pkg.client.api.core_v1_api import CoreV1Api
        from pkg.client.models.v1_pod import V1Pod as Pod
        from . import relative_is_skipped
        raise SystemExit("never run")
        """
    )
    exports, constants = exports_of(source)
    assert exports == {
        "CoreV1Api": ("pkg.client.api.core_v1_api", "CoreV1Api"),
        "Pod": ("pkg.client.models.v1_pod", "V1Pod"),
    }
    assert constants == {"__version__": "1.2.3", "__all__": ["CoreV1Api", "V1Pod"]}


# Run in a fresh interpreter: this one has imported the library already.
PROBE = textwrap.dedent(
    """
    import asyncio, json, sys
    from certctl_operator.kube import lazy_client
    installed = lazy_client.install()
    import kopf
    import certctl_operator.controllers
    import kubernetes_asyncio
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client import api_client

    class Response:
        data = json.dumps({"metadata": {"name": "ca", "labels": {"team": "a"}}, "data": {"k": "v"}})

    async def deserialize():
        async with client.ApiClient() as api:
            return api.deserialize(Response(), "V1ConfigMap")

    config_map = asyncio.run(deserialize())
    models_loaded = sorted(
        name for name in sys.modules if name.startswith("kubernetes_asyncio.client.models.")
    )
    apis_loaded = sorted(name for name in sys.modules if name.startswith("kubernetes_asyncio.client.api."))
    try:
        client.NoSuchThing
        unknown = "found"
    except AttributeError as error:
        unknown = str(error)
    print(json.dumps({
        "installed": installed,
        "again": lazy_client.install(),
        "models_loaded": models_loaded,
        "apis_loaded": apis_loaded,
        "same_module": kubernetes_asyncio.client is client and api_client.ApiClient is client.ApiClient,
        "config_map": [type(config_map).__name__, config_map.metadata.labels, config_map.data],
        "version": client.__version__ == kubernetes_asyncio.__version__,
        "listed": {"CoreV1Api", "V1Secret"} <= set(dir(client)) and "V1Secret" in client.__all__,
        "unknown": unknown,
    }))
    """
)


def test_the_operator_loads_only_the_models_it_uses_and_the_client_works_as_before() -> None:
    found = run_probe(PROBE)
    assert found["installed"] is True
    assert found["again"] is False  # too late once imported: nothing is replaced under the importers
    # Of about 770 models: those Kopf names and the one deserialized here, with what they refer to.
    assert 0 < len(found["models_loaded"]) < 20, found["models_loaded"]
    assert "kubernetes_asyncio.client.models.v1_config_map" in found["models_loaded"]
    assert len(found["apis_loaded"]) < 10, found["apis_loaded"]
    assert found["same_module"] is True
    assert found["config_map"] == ["V1ConfigMap", {"team": "a"}, {"k": "v"}]
    assert found["version"] is True
    assert found["listed"] is True
    assert "has no attribute 'NoSuchThing'" in found["unknown"]
