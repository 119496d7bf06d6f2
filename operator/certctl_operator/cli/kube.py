"""The plugin's only contact with the API server: the user's kubeconfig, the
synchronous ``kubernetes`` client, and API errors turned into advice.

Objects are handled as plain dicts (the JSON the API server sends), read
tolerantly: a plugin one version behind the operator must still show what it
can instead of refusing a status field it does not know.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client as _client
from kubernetes import config as _config
from kubernetes import watch as _watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api import AnyResource
from certctl_operator.cli.errors import CliError

T = TypeVar("T")

# The client's own annotations differ between releases; the plugin works with
# the JSON it returns, so it treats the client as untyped.
client: Any = _client
config: Any = _config
watch: Any = _watch

REQUEST_TIMEOUT = (5.0, 30.0)
"""Connect and read timeouts of every request, in seconds."""

Body = dict[str, Any]


def list_command(resource: type[AnyResource], namespace: str | None) -> str:
    """The kubectl command that lists objects of ``resource``, to quote in advice."""
    where = "" if not resource.NAMESPACED else (f" -n {namespace}" if namespace else " -A")
    return f"kubectl get {resource.SHORT_NAMES[0]}{where}"


def object_ref(resource: type[AnyResource] | str, namespace: str | None, name: str) -> str:
    """``ManagedCertificate team-a/web`` or ``ClusterIssuer ca``."""
    kind = resource if isinstance(resource, str) else resource.KIND
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


@dataclass(frozen=True)
class _Failure:
    status: int
    reason: str
    message: str
    has_name: bool


def _failure(error: ApiException) -> _Failure:
    reason, message, has_name = "", "", False
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    if isinstance(body, dict):
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or "")
        details = body.get("details")
        has_name = isinstance(details, dict) and bool(details.get("name"))
    return _Failure(int(error.status or 0), reason, message or str(error.reason or ""), has_name)


class Cluster:
    """One kubeconfig context: its API client, its default namespace, its server."""

    def __init__(self, api_client: Any, *, context: str | None, namespace: str, server: str) -> None:
        self.api_client = api_client
        self.context = context
        self.namespace = namespace
        self.server = server
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.core: Any = client.CoreV1Api(api_client)

    # ------------------------------------------------------------------ errors

    def call(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one API call; turn transport and API failures into :class:`CliError`.

        ``what`` completes the sentence "cannot ...", for example
        "list ManagedCertificates in team-a".
        """
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            return function(*args, **kwargs)
        except ApiException as error:
            raise self.api_error(what, error) from None
        except urllib3.exceptions.HTTPError as error:
            raise self.unreachable(error) from None

    def unreachable(self, error: Exception) -> CliError:
        cause = getattr(error, "reason", None) or error
        return CliError(
            f"cannot reach the API server at {self.server}: {cause}\n"
            "Check that the cluster is running and that --kubeconfig / --context "
            f"(now {self.context or 'the current context'}) point at it."
        )

    def api_error(self, what: str, error: ApiException) -> CliError:
        failure = _failure(error)
        if failure.status == 401:
            return CliError(
                f"cannot {what}: the API server rejected the credentials of context "
                f"{self.context or '(current)'} (401 Unauthorized); log in again or pick another --context"
            )
        if failure.status == 403:
            return ForbiddenError(
                f"cannot {what}: forbidden by RBAC ({failure.message}); ask a cluster admin for access "
                "to the certctl.io resources, or use a context that has it"
            )
        if failure.status == 404 and not failure.has_name:
            return CliError(
                f"cannot {what}: the API server does not know this resource type. Are the certctl.io "
                "CRDs installed? Install them with kubectl apply --server-side -f crds/ (or the Helm "
                "chart) and run kubectl certctl check"
            )
        return CliError(f"cannot {what}: {failure.message} ({failure.status} {failure.reason})".rstrip())

    # ------------------------------------------------------------------ custom objects

    def get(self, resource: type[AnyResource], name: str, namespace: str | None = None) -> Body:
        """One certctl object; :class:`NotFoundError` (with a listing hint) when it is missing."""
        ns = namespace or self.namespace
        ref = object_ref(resource, ns if resource.NAMESPACED else None, name)
        try:
            if resource.NAMESPACED:
                result = self.custom.get_namespaced_custom_object(
                    API_GROUP, API_VERSION, ns, resource.PLURAL, name, _request_timeout=REQUEST_TIMEOUT
                )
            else:
                result = self.custom.get_cluster_custom_object(
                    API_GROUP, API_VERSION, resource.PLURAL, name, _request_timeout=REQUEST_TIMEOUT
                )
        except ApiException as error:
            if error.status == 404 and _failure(error).has_name:
                hint = list_command(resource, ns)
                raise NotFoundError(f"{ref} not found; list them with {hint}") from None
            raise self.api_error(f"read {ref}", error) from None
        except urllib3.exceptions.HTTPError as error:
            raise self.unreachable(error) from None
        return dict(result)

    def list(
        self,
        resource: type[AnyResource],
        namespace: str | None,
        *,
        label_selector: str | None = None,
    ) -> list[Body]:
        """Objects of ``resource`` in ``namespace`` (None: every namespace, or cluster-scoped)."""
        where = f" in {namespace}" if namespace and resource.NAMESPACED else ""
        what = f"list {resource.PLURAL}.{API_GROUP}{where}"
        extra: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        if not resource.NAMESPACED or namespace is None:
            result = self.call(
                what, self.custom.list_cluster_custom_object, API_GROUP, API_VERSION, resource.PLURAL, **extra
            )
        else:
            result = self.call(
                what,
                self.custom.list_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                resource.PLURAL,
                **extra,
            )
        items = result.get("items") or []
        return sorted(
            (dict(item) for item in items),
            key=lambda item: (item["metadata"].get("namespace", ""), item["metadata"]["name"]),
        )

    def patch_annotations(
        self, resource: type[AnyResource], name: str, namespace: str, annotations: dict[str, str]
    ) -> Body:
        """Merge-patch ``annotations`` onto one object."""
        ref = object_ref(resource, namespace, name)
        try:
            result = self.custom.patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                resource.PLURAL,
                name,
                {"metadata": {"annotations": annotations}},
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as error:
            if error.status == 404 and _failure(error).has_name:
                hint = list_command(resource, namespace)
                raise NotFoundError(f"{ref} not found; list them with {hint}") from None
            raise self.api_error(f"annotate {ref}", error) from None
        except urllib3.exceptions.HTTPError as error:
            raise self.unreachable(error) from None
        return dict(result)

    def create(self, resource: type[AnyResource], namespace: str, body: Body) -> Body:
        what = f"create a {resource.KIND} in {namespace}"
        result = self.call(
            what,
            self.custom.create_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            resource.PLURAL,
            body,
        )
        return dict(result)

    def watch_object(
        self, resource: type[AnyResource], name: str, namespace: str, resource_version: str, timeout: float
    ) -> Iterator[Body]:
        """Versions of one object after ``resource_version``, until ``timeout`` seconds have passed.

        Ends early when the server closes the watch; the caller reads the
        object again and watches anew. A watch too old to resume (410 Gone)
        also just ends.
        """
        seconds = max(1, int(timeout))
        stream = watch.Watch()
        try:
            for event in stream.stream(
                self.custom.list_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                resource.PLURAL,
                field_selector=f"metadata.name={name}",
                resource_version=resource_version,
                timeout_seconds=seconds,
                _request_timeout=(REQUEST_TIMEOUT[0], seconds + 5),
            ):
                if event.get("type") in {"ADDED", "MODIFIED"} and isinstance(event.get("object"), dict):
                    yield event["object"]
        except ApiException as error:
            if error.status == 410:
                return
            raise self.api_error(f"watch {object_ref(resource, namespace, name)}", error) from None
        except urllib3.exceptions.ReadTimeoutError:
            return
        except urllib3.exceptions.HTTPError as error:
            raise self.unreachable(error) from None
        finally:
            stream.stop()

    # ------------------------------------------------------------------ core objects

    def get_core(self, kind: str, name: str, namespace: str, *, missing: str) -> Any:
        """A Secret or ConfigMap; :class:`NotFoundError` saying ``missing`` when absent."""
        read = self.core.read_namespaced_secret if kind == "Secret" else self.core.read_namespaced_config_map
        ref = object_ref(kind, namespace, name)
        try:
            return read(name, namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                raise NotFoundError(f"{ref} not found: {missing}") from None
            raise self.api_error(f"read {ref}", error) from None
        except urllib3.exceptions.HTTPError as error:
            raise self.unreachable(error) from None


Connect = Callable[[], "Cluster"]
"""Connects on first use; commands check their arguments before they call it."""


class NotFoundError(CliError):
    """The object the user named does not exist."""


class ForbiddenError(CliError):
    """RBAC does not let this context make the request."""


def _kubeconfig_path(kubeconfig: str | None) -> str | None:
    if kubeconfig is None:
        return None
    path = Path(kubeconfig).expanduser()
    if not path.is_file():
        raise CliError(f"kubeconfig {kubeconfig} does not exist; pass --kubeconfig PATH or set KUBECONFIG")
    return str(path)


def connect(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """Load the kubeconfig (``--kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``)."""
    path = _kubeconfig_path(kubeconfig)
    where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
    configuration = client.Configuration()
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
        chosen = current
        if context is not None:
            chosen = next((entry for entry in contexts if entry.get("name") == context), None)
            if chosen is None:
                names = ", ".join(sorted(str(entry.get("name")) for entry in contexts)) or "none"
                raise CliError(f"context {context!r} is not in the kubeconfig {where}; its contexts: {names}")
        config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, OSError) as error:
        raise CliError(
            f"cannot load the kubeconfig {where}: {error}\n"
            "Pass --kubeconfig PATH or set KUBECONFIG, and --context NAME to pick a context."
        ) from None
    details = (chosen or {}).get("context") or {}
    namespace = str(details.get("namespace") or "default")
    name = (chosen or {}).get("name")
    return Cluster(
        client.ApiClient(configuration),
        context=str(name) if name else None,
        namespace=namespace,
        server=str(configuration.host),
    )
