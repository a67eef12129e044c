"""Mutating admission webhooks, called as the API server calls them.

Every MutatingWebhookConfiguration in the store is honoured, in lexical order of configuration name
(FACTS 6): rules, namespaceSelector and objectSelector decide whether a webhook applies; then the call
itself must reach the webhook's pods. Reaching them is judged like any connection (a Service with
ready endpoints, then the mesh connectivity model from the kube-apiserver); an unreachable webhook
follows its failurePolicy: Ignore admits the object unmutated, Fail rejects it with the API server's
error text. What a reachable webhook does is looked up by its Service (name and path): the sandbox
knows Istio's injector and the Bank-Vaults webhook.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from meshbook.sandbox.apiserver.admission import AdmissionRequest
from meshbook.sandbox.apiserver.selectors import label_selector_from_dict
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.storage.store import Object, StoreError

log = logging.getLogger(__name__)


class WebhookDenied(Exception):
    """A webhook answered `allowed: false`; the message is what it said."""


class WebhookFailed(Exception):
    """A webhook answered HTTP 500 with this body (kubewebhook does when a mutator fails): to the API
    server a failed call, so the hook's failurePolicy decides, as for an unreachable webhook."""


# (webhook, request, object) -> mutated object (or an awaitable of it, for a webhook that calls out, as
# the Bank-Vaults webhook calls Vault for Secrets); raises WebhookDenied to reject.
WebhookBackend = Callable[[Mapping[str, Any], AdmissionRequest, Object], Object | Awaitable[Object]]


@dataclass(frozen=True)
class Reachability:
    """Whether the API server's call reaches the webhook, and the error it sees when it does not."""

    ok: bool
    error: str = ""


# (service namespace, service name, service port) -> Reachability
Judge = Callable[[str, str, int], Reachability]


class WebhookDispatcher:
    """The admission Mutator that runs every configured mutating webhook."""

    def __init__(self, core: ApiCore, backends: Mapping[tuple[str, str], WebhookBackend], judge: Judge) -> None:
        self.core = core
        self.backends = backends  # (service name, path) -> backend
        self.judge = judge

    async def __call__(self, request: AdmissionRequest) -> Object:
        rt = self.core.registry.lookup("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
        assert rt is not None
        obj = request.object
        for config in self.core.store.list(rt):  # sorted by name: the order the API server uses
            for hook in config.get("webhooks") or []:
                if not self._applies(hook, request, obj):
                    continue
                obj = await self._call(hook, request, obj)
        return obj

    def _applies(self, hook: Mapping[str, Any], request: AdmissionRequest, obj: Object) -> bool:
        if not any(_rule_matches(rule, request) for rule in hook.get("rules") or []):
            return False
        if request.rt.namespaced:
            ns_rt = self.core.registry.lookup("", "v1", "namespaces")
            assert ns_rt is not None
            namespace = self.core.store.get(ns_rt, "", request.namespace)
            ns_labels = (namespace or {}).get("metadata", {}).get("labels") or {}
            if not label_selector_from_dict(hook.get("namespaceSelector") or {}).matches(ns_labels):
                return False
        labels = obj.get("metadata", {}).get("labels") or {}
        return label_selector_from_dict(hook.get("objectSelector") or {}).matches(labels)

    async def _call(self, hook: Mapping[str, Any], request: AdmissionRequest, obj: Object) -> Object:
        client = hook.get("clientConfig") or {}
        service = client.get("service") or {}
        name = hook.get("name", "")
        policy = hook.get("failurePolicy", "Fail")
        if not service:
            return obj  # URL webhooks point outside the sandbox: nothing answers there
        ns, svc, path = service.get("namespace", ""), service.get("name", ""), service.get("path", "/")
        port = int(service.get("port", 443))
        url = f"https://{svc}.{ns}.svc:{port}{path}?timeout={hook.get('timeoutSeconds', 10)}s"
        reach = self.judge(ns, svc, port)
        if not reach.ok:
            return _call_failed(name, policy, f'Post "{url}": {reach.error}', obj)
        backend = self.backends.get((svc, path))
        if backend is None:
            return obj  # a webhook the sandbox does not simulate: it admits unchanged
        try:
            mutated = backend(hook, request, copy.deepcopy(obj))
            return await mutated if inspect.isawaitable(mutated) else mutated
        except WebhookDenied as exc:
            raise StoreError("BadRequest", 400, f'admission webhook "{name}" denied the request: {exc}') from None
        except WebhookFailed as exc:  # client-go's error for a 500 with a text body it cannot decode
            quoted = json.dumps(str(exc), ensure_ascii=False)  # Go's %q of the body
            answer = f"an error on the server ({quoted}) has prevented the request from succeeding"
            return _call_failed(name, policy, answer, obj)


def _call_failed(name: str, policy: str, error: str, obj: Object) -> Object:
    """A call that failed: admitted unmutated under failurePolicy Ignore, refused (500) under Fail."""
    message = f'failed calling webhook "{name}": failed to call webhook: {error}'
    if policy == "Ignore":
        log.warning("%s (failurePolicy Ignore: admitted unmutated)", message)
        return obj
    raise StoreError("InternalError", 500, f"Internal error occurred: {message}")


def _rule_matches(rule: Mapping[str, Any], request: AdmissionRequest) -> bool:
    def has(values: Any, wanted: str) -> bool:
        return "*" in (values or []) or wanted in (values or [])

    return (
        has(rule.get("operations"), request.operation)
        and has(rule.get("apiGroups"), request.rt.group)
        and has(rule.get("apiVersions"), request.rt.version)
        and has(rule.get("resources"), request.rt.plural)
    )
