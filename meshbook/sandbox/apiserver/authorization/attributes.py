"""What a request asks to do, in the terms authorizers decide on (kube-apiserver's RequestInfo), and the
403 it gets when no rule allows it, worded as kube-apiserver words it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from meshbook.sandbox.apiserver.authorization.user import UserInfo
from meshbook.sandbox.storage.store import StoreError

# HTTP method -> verb of a resource request (a GET without a name is `list`, with watch=true `watch`).
METHOD_VERBS: Final = {
    "POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
}  # fmt: skip
# Subresources of a namespace that stay on the namespace (not a resource of their own).
NAMESPACE_SUBRESOURCES: Final = frozenset({"status", "finalize"})
# Streaming subresources: a WebSocket GET needs `create` too (AuthorizePodWebsocketUpgradeCreatePermission,
# on by default since 1.30), so the sandbox asks `create` whatever the method.
CONNECT_SUBRESOURCES: Final = frozenset({"exec", "attach", "portforward"})


@dataclass(frozen=True)
class Attributes:
    """One authorization question: may `user` do `verb` on this resource (or non-resource path)?"""

    user: UserInfo
    verb: str
    resource_request: bool
    path: str = ""
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_attributes(user: UserInfo, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """A request's attributes, parsed from its path as kube-apiserver's RequestInfoFactory does."""
    parts = [p for p in path.strip("/").split("/") if p]
    non_resource = Attributes(user, method.lower(), False, path=path)
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return non_resource
    verb = METHOD_VERBS.get(method.upper(), method.lower())
    if rest[0] == "watch":
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return non_resource
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch") in ("true", "1") else "list"
    if verb in ("list", "watch"):
        selector = query.get("fieldSelector", "")
        for term in selector.split(","):
            key, _, value = term.partition("=")
            if key == "metadata.name" and value and not value.startswith("="):
                name = value
    if not name and verb == "delete":
        verb = "deletecollection"
    if resource == "pods" and subresource in CONNECT_SUBRESOURCES:
        verb = "create"
    return Attributes(user, verb, True, path, namespace, group, version, resource, subresource, name)


def forbidden_message(attrs: Attributes) -> str:
    """What kube-apiserver says the user may not do (`forbiddenMessage` in its authorization filter)."""
    user = attrs.user.name
    if not attrs.resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" {scope}'


def forbidden(attrs: Attributes, reason: str = "") -> StoreError:
    """The 403 Status kube-apiserver answers: `<resource> "<name>" is forbidden: <why>[: <reason>]`."""
    why = forbidden_message(attrs) + (f": {reason}" if reason else "")
    if not attrs.resource_request:
        return StoreError("Forbidden", 403, f"forbidden: {why}", {})
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details = {"name": attrs.name, "group": attrs.api_group, "kind": attrs.resource}
    return StoreError("Forbidden", 403, f"{subject} is forbidden: {why}", {k: v for k, v in details.items() if v})
