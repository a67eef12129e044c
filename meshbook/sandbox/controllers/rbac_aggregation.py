"""The ClusterRole aggregation controller: an aggregated ClusterRole's `rules` are the union of the rules of
the ClusterRoles its `aggregationRule` selects (how `view`, `edit` and `admin` pick up `aggregate-to-*`
roles), written back so `kubectl get clusterrole view -o yaml` shows what the authorizer uses."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from meshbook.sandbox.apiserver.authorization.rbac import GROUP
from meshbook.sandbox.controllers.base import Controller, Key
from meshbook.sandbox.storage.store import WatchEvent


class ClusterRoleAggregationController(Controller):
    name = "clusterrole-aggregation"

    def _aggregated(self) -> list[str]:
        rt = self.core.registry.lookup(GROUP, "v1", "clusterroles")
        assert rt is not None
        return [r["metadata"]["name"] for r in self.core.store.list(rt) if r.get("aggregationRule")]

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        # Any ClusterRole change may add or remove rules of any aggregated role.
        if event.rt_key != f"{GROUP}/clusterroles":
            return ()
        return [("", name) for name in self._aggregated()]

    def initial_keys(self) -> Iterable[Key]:
        return [("", name) for name in self._aggregated()]

    async def reconcile(self, key: Key) -> None:
        rt = self.core.registry.lookup(GROUP, "v1", "clusterroles")
        authorizer = self.core.authorizer
        assert rt is not None
        role = self.core.store.get(rt, "", key[1])
        if role is None or not role.get("aggregationRule") or authorizer is None:
            return
        rules = [dict(rule) for rule in authorizer.cluster_role_rules(key[1]) or ()]
        if rules == (role.get("rules") or []):
            return
        updated = copy.deepcopy(role)
        updated["rules"] = rules
        await self.core.update(rt, "", key[1], updated)
