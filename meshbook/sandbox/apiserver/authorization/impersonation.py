"""`Impersonate-User` / `Impersonate-Group` / `Impersonate-Uid` / `Impersonate-Extra-*`: acting as another
user, allowed only with the `impersonate` verb on each thing impersonated (kube-apiserver's impersonation
filter), so `kubectl auth can-i --as` works for the kubeconfig's administrator and nobody else."""

from __future__ import annotations

from typing import Final

from meshbook.sandbox.apiserver.authorization.attributes import Attributes, forbidden
from meshbook.sandbox.apiserver.authorization.rbac import RBACAuthorizer
from meshbook.sandbox.apiserver.authorization.user import (
    AUTHENTICATED,
    UserInfo,
    service_account_groups,
    split_service_account,
)
from meshbook.sandbox.storage.store import StoreError

USER_HEADER: Final = "Impersonate-User"
GROUP_HEADER: Final = "Impersonate-Group"
UID_HEADER: Final = "Impersonate-Uid"
EXTRA_PREFIX: Final = "Impersonate-Extra-"
ANONYMOUS: Final = "system:anonymous"


def impersonated_user(
    authorizer: RBACAuthorizer,
    requester: UserInfo,
    user: str | None,
    groups: list[str],
    uid: str | None,
    extra: dict[str, list[str]],
) -> UserInfo:
    """The user to act as, after checking `impersonate` on each part; 403 worded as upstream's if not allowed."""
    if user is None:
        if groups or uid or extra:
            raise StoreError("BadRequest", 400, f"requested {[*groups, *extra]} without impersonating a user")
        return requester

    def check(resource: str, name: str, namespace: str = "", group: str = "") -> None:
        attrs = Attributes(
            requester, "impersonate", True, namespace=namespace, api_group=group, resource=resource, name=name
        )
        decision = authorizer.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)

    service_account = split_service_account(user)
    if service_account is not None:
        check("serviceaccounts", service_account[1], service_account[0])
        if not groups:
            groups = list(service_account_groups(service_account[0]))
    else:
        check("users", user)
    for group in groups:
        check("groups", group)
    for key, values in sorted(extra.items()):
        for value in values:
            check(f"userextras/{key}", value, group="authentication.k8s.io")
    if uid:
        check("uids", uid, group="authentication.k8s.io")
    if user != ANONYMOUS and AUTHENTICATED not in groups:
        groups = [*groups, AUTHENTICATED]
    extras = tuple((k, tuple(v)) for k, v in sorted(extra.items()))
    return UserInfo(user, tuple(groups), uid or "", extras)
