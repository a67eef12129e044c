"""HTTP handlers for resource paths: dispatch by verb, lists, Tables, watches and subresources.

The verbs themselves live in `apiserver.verbs.ApiCore`, paths in `paths`, the wire format in `wire`;
this module only translates between HTTP (paths, query
parameters, Accept and Content-Type headers, chunked watch streams) and those calls.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from meshbook.sandbox.apiserver.authorization import reviews
from meshbook.sandbox.apiserver.selectors import SelectorError, parse_field_selector, parse_label_selector
from meshbook.sandbox.apiserver.serviceaccounts import TokenService
from meshbook.sandbox.apiserver.verbs import PATCH_TYPES, RETURNS_DELETED_OBJECT, ApiCore, DeleteOptions, bad_request
from meshbook.sandbox.http.access import request_user
from meshbook.sandbox.http.paths import Target, resolve
from meshbook.sandbox.http.tables import render as tables
from meshbook.sandbox.http.wire import error_response, json_response, read_body, status_body, wants_table
from meshbook.sandbox.node.kubelet import Kubelet
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object, StoreError, Watcher, WatchEvent


class ResourceHandlers:
    def __init__(self, core: ApiCore, pods: Kubelet, tokens: TokenService) -> None:
        self.core = core
        self.pods = pods  # the kubelet stand-in: logs and port-forwarding
        self.tokens = tokens

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            target = resolve(self.core, request.path)
            return await self._dispatch(request, target)
        except StoreError as exc:
            return error_response(exc)
        except SelectorError as exc:
            return error_response(bad_request(str(exc)))

    async def _dispatch(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        q = request.query
        if t.rt.namespaced and t.namespace is None and t.name is not None:
            raise StoreError("NotFound", 404, "the server could not find the requested resource")
        ns = t.namespace or ""
        if t.subresource in ("log", "portforward", "token", "scale"):
            return await self._subresource(request, t)
        if t.name is None:
            if method == "GET":
                if q.get("watch") in ("true", "1"):
                    return await self._watch(request, t)
                return self._list(request, t)
            if method == "POST":
                return await self._create(request, t)
            if method == "DELETE":
                return await self._delete_collection(request, t)
            raise StoreError("MethodNotAllowed", 405, f"{method} is not supported on {t.rt.plural}")
        dry_run = q.get("dryRun") == "All"
        if method == "GET":
            obj = self.core.store.require(t.rt, ns, t.name)
            if wants_table(request):
                return json_response(self._table(request, t.rt, [obj]))
            return json_response(obj)
        if method == "PUT":
            body = await read_body(request)
            if not isinstance(body, dict):
                raise bad_request("the body of the request must be an object")
            return json_response(
                await self.core.update(
                    t.rt,
                    ns,
                    t.name,
                    body,
                    subresource=t.subresource,
                    dry_run=dry_run,
                    field_manager=_field_manager(request),
                )
            )
        if method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            patch_type = PATCH_TYPES.get(content_type)
            if patch_type is None:
                raise StoreError(
                    "UnsupportedMediaType",
                    415,
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(PATCH_TYPES),
                )
            patch = await read_body(request)
            obj, created = await self.core.patch(
                t.rt,
                ns,
                t.name,
                patch_type,
                patch,
                subresource=t.subresource,
                dry_run=dry_run,
                field_manager=q.get("fieldManager") if patch_type == "apply" else _field_manager(request),
                force=q.get("force") in ("true", "1"),
            )
            return json_response(obj, 201 if created else 200)
        if method == "DELETE":
            options = await self._delete_options(request)
            obj, gone = await self.core.delete(t.rt, ns, t.name, options)
            if t.rt.kind in RETURNS_DELETED_OBJECT or t.rt.custom or not gone:
                return json_response(obj)
            return json_response(
                status_body(
                    200,
                    "",
                    "",
                    {"name": t.name, "group": t.rt.group, "kind": t.rt.plural, "uid": obj["metadata"]["uid"]},
                )
                | {"status": "Success"}
            )
        raise StoreError("MethodNotAllowed", 405, f"{method} is not supported")

    async def _create(self, request: web.Request, t: Target) -> web.Response:
        body = await read_body(request)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        dry_run = request.query.get("dryRun") == "All"
        if t.rt.kind == "TokenReview":
            return json_response(self.tokens.token_review(body), 201)
        if t.rt.kind == "SelfSubjectReview":
            return json_response(reviews.self_subject_review(request_user(request), body), 201)
        if t.rt.group == "authorization.k8s.io":
            return json_response(self._review(request, t, body), 201)
        obj = await self.core.create(
            t.rt, t.namespace or "", body, dry_run=dry_run, field_manager=_field_manager(request)
        )
        return json_response(obj, 201)

    def _review(self, request: web.Request, t: Target, body: Object) -> Object:
        """An access or rules review, answered by the authorizer for the caller (or the user it names)."""
        authorizer = self.core.authorizer
        assert authorizer is not None, "the server sets the authorizer"
        if t.rt.kind == "SelfSubjectAccessReview":
            return reviews.self_subject_access_review(authorizer, request_user(request), body)
        if t.rt.kind == "SelfSubjectRulesReview":
            return reviews.self_subject_rules_review(authorizer, request_user(request), body)
        return reviews.subject_access_review(authorizer, body, t.namespace or "")

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        body = await read_body(request) if request.can_read_body else None
        body = body if isinstance(body, dict) else {}
        q = request.query
        grace = body.get("gracePeriodSeconds", q.get("gracePeriodSeconds"))
        pre = body.get("preconditions") or {}
        dry: list[str] = list(body.get("dryRun") or q.getall("dryRun", None) or [])
        return DeleteOptions(
            propagation_policy=body.get("propagationPolicy") or q.get("propagationPolicy") or "Background",
            grace_period_seconds=int(grace) if grace is not None else None,
            dry_run="All" in dry,
            preconditions_uid=pre.get("uid"),
            preconditions_rv=pre.get("resourceVersion"),
        )

    async def _delete_collection(self, request: web.Request, t: Target) -> web.Response:
        options = await self._delete_options(request)
        items = self._select(request, t)
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                out, _ = await self.core.delete(t.rt, meta.get("namespace", ""), meta["name"], options)
                deleted.append(out)
            except StoreError:
                continue
        return json_response(self._list_body(t.rt, deleted))

    # -- lists and watches ---------------------------------------------------------------------------

    def _select(self, request: web.Request, t: Target) -> list[Object]:
        q = request.query
        items = self.core.store.list(t.rt, t.namespace)
        if q.get("labelSelector"):
            selector = parse_label_selector(q["labelSelector"])
            items = [o for o in items if selector.matches(o["metadata"].get("labels") or {})]
        if q.get("fieldSelector"):
            fields = parse_field_selector(q["fieldSelector"])
            fields.validate_for_kind(t.rt.kind)
            items = [o for o in items if fields.matches(o)]
        return items

    def _list_body(self, rt: ResourceType, items: list[Object], cont: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(self.core.store.resource_version)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = 0
        return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta, "items": items}

    def _list(self, request: web.Request, t: Target) -> web.Response:
        items = self._select(request, t)
        q = request.query
        start = 0
        if q.get("continue"):
            # The token holds the last returned key, so changes between pages neither repeat nor skip items.
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(q["continue"]))["after"])
            except (ValueError, KeyError, TypeError):
                raise StoreError("BadRequest", 400, "continue key is not valid") from None
            start = next((i for i, o in enumerate(items) if _list_key(o) > after), len(items))
        limit = int(q.get("limit", "0") or 0)
        cont = None
        page = items[start:]
        if limit > 0 and len(page) > limit:
            page = page[:limit]
            cont = base64.urlsafe_b64encode(json.dumps({"after": list(_list_key(page[-1]))}).encode()).decode()
        if wants_table(request):
            table = self._table(request, t.rt, page)
            table["metadata"] = {"resourceVersion": str(self.core.store.resource_version)}
            if cont:
                table["metadata"]["continue"] = cont
            return json_response(table)
        body = self._list_body(t.rt, page, cont)
        if cont:
            body["metadata"]["remainingItemCount"] = len(items) - start - len(page)
        return json_response(body)

    def _table(self, request: web.Request, rt: ResourceType, objects: list[Object]) -> dict[str, Any]:
        include = request.query.get("includeObject", "Metadata")
        table = tables.to_table(
            rt.kind if not rt.custom else f"{rt.kind}.{rt.group}",
            objects,
            now=datetime.now(UTC),
            printer_columns=list(rt.printer_columns) if rt.custom else None,
            include_object=include,
        )
        table.setdefault("metadata", {})["resourceVersion"] = str(self.core.store.resource_version)
        return table

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        label = parse_label_selector(q["labelSelector"]) if q.get("labelSelector") else None
        fields = parse_field_selector(q["fieldSelector"]) if q.get("fieldSelector") else None
        if fields is not None:
            fields.validate_for_kind(t.rt.kind)

        def matches(obj: Object | None) -> bool:
            if obj is None:
                return False
            meta = obj["metadata"]
            if t.namespace and t.rt.namespaced and meta.get("namespace") != t.namespace:
                return False
            if label is not None and not label.matches(meta.get("labels") or {}):
                return False
            return fields is None or fields.matches(obj)

        def accepts(event: WatchEvent) -> WatchEvent | None:
            now_in, was_in = matches(event.object), matches(event.old)
            if event.type == "MODIFIED" and now_in and not was_in:
                return WatchEvent("ADDED", event.rt_key, event.object, event.old, event.rv)
            if event.type == "MODIFIED" and was_in and not now_in:
                return WatchEvent("DELETED", event.rt_key, event.object, event.old, event.rv)
            if event.type == "DELETED":
                return event if was_in or now_in else None
            return event if now_in else None

        rv_text = q.get("resourceVersion", "")
        since = int(rv_text) if rv_text not in ("", "0") else None
        if rv_text and not rv_text.isdigit():
            raise bad_request(f"invalid resource version: {rv_text}")
        watcher = Watcher(t.rt.storage_key, accepts)
        self.core.store.watch(watcher, since)  # raises 410 before the response starts
        timeout = float(q.get("timeoutSeconds", "1800") or 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        as_table = wants_table(request)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), timeout=min(remaining, 5.0))
                except TimeoutError:
                    if bookmarks:
                        await self._write_event(response, "BOOKMARK", self._bookmark(t.rt))
                    continue
                if event is None:
                    break
                obj: Any = event.object
                if as_table:
                    obj = self._table(request, t.rt, [obj])
                await self._write_event(response, event.type, obj)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.core.store.stop_watch(watcher)
        return response

    def _bookmark(self, rt: ResourceType) -> dict[str, Any]:
        return {
            "kind": rt.kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self.core.store.resource_version)},
        }

    async def _write_event(self, response: web.StreamResponse, kind: str, obj: Any) -> None:
        line = json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n"
        await response.write(line.encode())

    # -- subresources ----------------------------------------------------------------------------------

    async def _subresource(self, request: web.Request, t: Target) -> web.StreamResponse:
        assert t.name is not None and t.subresource is not None
        ns = t.namespace or ""
        if t.subresource == "scale":
            return await self._scale(request, t)
        if t.subresource == "token":
            body = await read_body(request)
            self.core.store.require(t.rt, ns, t.name)
            return json_response(self.tokens.token_request(ns, t.name, body or {}), 201)
        pod = self.core.store.require(t.rt, ns, t.name)
        if t.subresource == "log":
            return await self.pods.serve_log(request, pod)
        return await self.pods.serve_portforward(request, pod)

    async def _scale(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        ns = t.namespace or ""
        obj = self.core.store.require(t.rt, ns, t.name)
        if request.method in ("PUT", "PATCH"):
            body = await read_body(request)
            if request.method == "PATCH":
                content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
                patch_type = PATCH_TYPES.get(content_type, "merge")
                from meshbook.sandbox.apiserver.patch import dispatch as patching

                current = _scale_of(obj)
                if patch_type == "json":
                    body = patching.apply_json_patch(current, body)
                else:
                    body = patching.apply_merge_patch(current, body)
            replicas = (body or {}).get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise StoreError(
                    "Invalid",
                    422,
                    f'Scale.autoscaling "{t.name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                    "must be greater than or equal to 0",
                )
            updated = dict(obj)
            updated["spec"] = {**obj["spec"], "replicas": replicas}
            obj = await self.core.update(t.rt, ns, t.name, updated, dry_run=request.query.get("dryRun") == "All")
        return json_response(_scale_of(obj))


def _field_manager(request: web.Request) -> str:
    """The writer's name: `fieldManager`, else the user agent's program name, as the API server does."""
    given = request.query.get("fieldManager")
    if given:
        return given
    agent = request.headers.get("User-Agent", "unknown").split("/")[0]
    return agent or "unknown"


def _list_key(obj: Object) -> tuple[str, str]:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _scale_of(obj: Object) -> dict[str, Any]:
    selector = obj.get("spec", {}).get("selector", {}) or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: obj["metadata"][k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in obj["metadata"]
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": ",".join(parts)},
    }
