"""What the operator process leaves unimported, and that Kopf still logs in and httpx still sends."""

from __future__ import annotations

import textwrap

from tests.support.fresh_interpreter import run_probe

# Run in a fresh interpreter: this one has imported these libraries already.
PROBE = textwrap.dedent(
    """
    import json, sys
    from certctl_operator import slim_imports
    from certctl_operator.kube import lazy_client
    lazy_client.install()
    left_out = slim_imports.leave_out_httpx_cli()
    kopf = slim_imports.import_kopf()
    import certctl_operator.controllers
    import httpx
    logins = [handler.id for handler in kopf.get_default_registry()._activities.get_all_handlers()
              if handler.activity.value == "authentication"]
    unused = ("kubernetes", "rich", "pygments", "acme", "josepy", "requests", "dns")
    loaded_before = {name: name in sys.modules for name in unused}
    import kubernetes.client
    print(json.dumps({
        "left_out": left_out,
        "again": slim_imports.leave_out_httpx_cli(),
        "loaded": loaded_before,
        "logins": logins,
        "httpx_client": httpx.Client.__name__,
        "sync_client_later": kubernetes.client.V1ObjectMeta.__name__,
    }))
    """
)


def test_the_operator_runs_without_the_sync_client_and_httpx_cli_and_kopf_logs_in_async() -> None:
    found = run_probe(PROBE)
    assert found["left_out"] is True
    assert found["again"] is False  # httpx is imported now: too late, nothing changes under it
    # Nor the ACME and DNS libraries (certctl_operator.deferred): no ACME issuer has run.
    assert not any(found["loaded"].values()), found["loaded"]
    # Kopf's fallback login is the one through the client the operator uses.
    assert found["logins"] == ["login_via_async_client"]
    assert found["httpx_client"] == "Client"
    assert found["sync_client_later"] == "V1ObjectMeta"  # hidden only while Kopf looked
