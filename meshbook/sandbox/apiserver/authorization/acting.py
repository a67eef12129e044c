"""The API as one user sees it: what the sandbox's simulated components (the Bank-Vaults operator, the
webhook, `bank-vaults unseal`) call instead of the bare core, so each call is authorized for the service
account their pod runs as, and a missing RBAC grant fails as their API calls fail on a cluster."""

from __future__ import annotations

from typing import Any

from meshbook.sandbox.apiserver.authorization.attributes import Attributes, forbidden
from meshbook.sandbox.apiserver.authorization.user import UserInfo
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object


class ActingCore:
    """`core` seen by `user`: each method asks the authorizer first and raises the 403 a client would get."""

    def __init__(self, core: ApiCore, user: UserInfo) -> None:
        self.core = core
        self.user = user

    def check(self, verb: str, rt: ResourceType, namespace: str = "", name: str = "", subresource: str = "") -> None:
        """Raise the API server's 403 (a StoreError) unless the user may do `verb` on this resource."""
        if self.core.authorizer is None:
            return
        attrs = Attributes(
            self.user, verb, True, "", namespace if rt.namespaced else "", rt.group, rt.version, rt.plural,
            subresource, name,
        )  # fmt: skip
        decision = self.core.authorizer.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)

    def get(self, rt: ResourceType, namespace: str, name: str) -> Object | None:
        self.check("get", rt, namespace, name)
        return self.core.store.get(rt, namespace, name)

    def list(self, rt: ResourceType, namespace: str | None = None) -> list[Object]:
        self.check("list", rt, namespace or "")
        return self.core.store.list(rt, namespace)

    async def create(self, rt: ResourceType, namespace: str, body: Object, **options: Any) -> Object:
        self.check("create", rt, namespace)
        return await self.core.create(rt, namespace, body, **options)

    async def update(self, rt: ResourceType, namespace: str, name: str, body: Object, **options: Any) -> Object:
        self.check("update", rt, namespace, name, options.get("subresource") or "")
        return await self.core.update(rt, namespace, name, body, **options)
