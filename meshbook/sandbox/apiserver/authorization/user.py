"""Who makes a request: the authenticated user kube-apiserver hands to its authorizers (`user.Info`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

AUTHENTICATED: Final = "system:authenticated"
UNAUTHENTICATED: Final = "system:unauthenticated"
MASTERS: Final = "system:masters"
SERVICE_ACCOUNTS: Final = "system:serviceaccounts"
SERVICE_ACCOUNT_PREFIX: Final = "system:serviceaccount:"


@dataclass(frozen=True)
class UserInfo:
    """A user name, its groups, uid and extra attributes (what TokenReview and impersonation carry)."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    def as_review_user(self) -> dict[str, Any]:
        """The user in the form the review kinds' status and spec use."""
        out: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra}
        return out


# The kubeconfig user, as on kind: an administrator in the privileged group system:masters.
ADMIN: Final = UserInfo("kubernetes-admin", (MASTERS, AUTHENTICATED))


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}", AUTHENTICATED)


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    """The user a service-account token authenticates as."""
    return UserInfo(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}", service_account_groups(namespace), uid)


def split_service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a `system:serviceaccount:NS:NAME` user name, else None."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, name = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
    return (namespace, name) if sep and namespace and name and ":" not in name else None


def from_review_status(user: dict[str, Any]) -> UserInfo:
    """A TokenReview status's `user` as a UserInfo."""
    extra = tuple((str(k), tuple(str(x) for x in v)) for k, v in sorted((user.get("extra") or {}).items()))
    return UserInfo(str(user.get("username", "")), tuple(user.get("groups") or ()), str(user.get("uid") or ""), extra)
