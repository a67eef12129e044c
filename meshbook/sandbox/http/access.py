"""Who is calling and whether they may: authentication (the kubeconfig's bearer token or a service-account
JWT), impersonation headers, and RBAC authorization of every request, as kube-apiserver's filter chain
orders them. A refusal is answered here, before any handler runs, with kube-apiserver's 401 or 403 Status."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from meshbook.sandbox.apiserver.authorization.attributes import forbidden, request_attributes
from meshbook.sandbox.apiserver.authorization.impersonation import (
    EXTRA_PREFIX,
    GROUP_HEADER,
    UID_HEADER,
    USER_HEADER,
    impersonated_user,
)
from meshbook.sandbox.apiserver.authorization.rbac import RBACAuthorizer
from meshbook.sandbox.apiserver.authorization.user import ADMIN, UserInfo, from_review_status
from meshbook.sandbox.apiserver.serviceaccounts import TokenService
from meshbook.sandbox.http.wire import json_response, status_body
from meshbook.sandbox.storage.store import StoreError

USER_KEY: Final = "meshbook.user"  # where handlers find the (possibly impersonated) user of a request


def request_user(request: web.Request) -> UserInfo:
    """The user the access middleware authenticated (the administrator when it did not run)."""
    user: UserInfo = request.get(USER_KEY, ADMIN)
    return user


def _authenticate(request: web.Request, expected: bytes, tokens: TokenService) -> UserInfo | None:
    given = request.headers.get("Authorization", "")
    if hmac.compare_digest(given.encode(), expected):
        return ADMIN
    if not given.startswith("Bearer "):
        return None
    review = tokens.token_review({"spec": {"token": given.removeprefix("Bearer ").strip()}})
    status = review["status"]
    return from_review_status(status["user"]) if status.get("authenticated") else None


def _impersonation(request: web.Request) -> tuple[str | None, list[str], str | None, dict[str, list[str]]]:
    headers = request.headers
    extra: dict[str, list[str]] = {}
    for key, value in headers.items():
        if key.lower().startswith(EXTRA_PREFIX.lower()):
            extra.setdefault(key[len(EXTRA_PREFIX) :].lower(), []).append(value)
    return headers.get(USER_HEADER), list(headers.getall(GROUP_HEADER, [])), headers.get(UID_HEADER), extra


def _refusal(exc: StoreError) -> web.Response:
    body = status_body(exc.code, exc.reason, exc.message, exc.details)
    if exc.details == {}:
        body["details"] = {}  # a forbidden non-resource path: upstream sends empty details
    return json_response(body, exc.code)


def access_middleware(token: str, tokens: TokenService, authorizer: RBACAuthorizer) -> Any:
    """Authenticate, apply impersonation, authorize; handlers then read `request_user(request)`."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def access(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        user = _authenticate(request, expected, tokens)
        if user is None:
            return json_response(status_body(401, "Unauthorized", "Unauthorized"), 401)
        try:
            user = impersonated_user(authorizer, user, *_impersonation(request))
            attrs = request_attributes(user, request.method, request.path, request.query)
            decision = authorizer.authorize(attrs)
            if not decision.allowed:
                raise forbidden(attrs, decision.reason)
        except StoreError as exc:
            return _refusal(exc)
        request[USER_KEY] = user
        return await handler(request)

    return access
