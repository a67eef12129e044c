"""`serviceaccounts/NAME/token` (TokenRequest) and `tokenreviews`: issuing and checking SA tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meshbook.sandbox.apiserver.tokens import DEFAULT_AUDIENCE, TokenIssuer, TokenRefused
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.storage.store import Object


class TokenService:
    def __init__(self, core: ApiCore, issuer: TokenIssuer) -> None:
        self.core = core
        self.issuer = issuer

    def _lookup(self, plural: str, namespace: str, name: str) -> Object | None:
        rt = self.core.registry.lookup("", "v1", plural)
        assert rt is not None
        return self.core.store.get(rt, namespace, name)

    def token_for(
        self, namespace: str, service_account: str, pod: Object | None = None, *, expiration_seconds: int = 3600
    ) -> str | None:
        """A token for a pod's service account (what the kubelet projects into the pod)."""
        sa = self._lookup("serviceaccounts", namespace, service_account)
        if sa is None:
            return None
        bound = (pod["metadata"]["name"], pod["metadata"]["uid"]) if pod else None
        token, _ = self.issuer.issue(
            namespace, service_account, sa["metadata"]["uid"], pod=bound, expiration_seconds=expiration_seconds
        )
        return token

    def token_request(self, namespace: str, name: str, body: dict[str, Any]) -> Object:
        sa = self._lookup("serviceaccounts", namespace, name)
        assert sa is not None
        spec = dict(body.get("spec") or {})
        expiration = int(spec.get("expirationSeconds") or 3600)
        audiences = list(spec.get("audiences") or [])
        bound = spec.get("boundObjectRef") or None
        pod = None
        if bound and bound.get("kind") == "Pod":
            target = self._lookup("pods", namespace, bound.get("name", ""))
            if target is not None:
                pod = (target["metadata"]["name"], target["metadata"]["uid"])
        token, exp = self.issuer.issue(
            namespace,
            name,
            sa["metadata"]["uid"],
            audiences=audiences or None,
            expiration_seconds=expiration,
            pod=pod,
        )
        spec.setdefault("audiences", audiences or [DEFAULT_AUDIENCE])
        spec["expirationSeconds"] = max(600, expiration)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": spec,
            "status": {
                "token": token,
                "expirationTimestamp": datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }

    def authenticate(self, token: str) -> bool:
        """Whether a bearer token is a live service-account token issued here, for the API server's audience."""
        review = self.token_review({"spec": {"token": token}})
        return bool(review["status"].get("authenticated"))

    def _live_claims(self, claims: dict[str, Any]) -> tuple[str, Object, dict[str, Any] | None]:
        """(namespace, service account, bound pod reference) of verified claims that still name live objects."""
        info = claims.get("kubernetes.io")
        if not isinstance(info, dict) or not isinstance(info.get("serviceaccount"), dict):
            raise TokenRefused("token lacks the kubernetes.io service-account claims")
        namespace = str(info.get("namespace", ""))
        account = info["serviceaccount"]
        sa_name = str(account.get("name", ""))
        if claims.get("sub") != f"system:serviceaccount:{namespace}:{sa_name}":
            raise TokenRefused("token subject does not match its kubernetes.io service account")
        sa = self._lookup("serviceaccounts", namespace, sa_name)
        if sa is None or sa["metadata"]["uid"] != account.get("uid"):
            raise TokenRefused(f"service account {namespace}/{sa_name} not found or recreated")
        pod_ref = info.get("pod")
        if pod_ref is not None and not isinstance(pod_ref, dict):
            raise TokenRefused("token's kubernetes.io pod claim is not an object with name and uid")
        if pod_ref is not None:
            pod = self._lookup("pods", namespace, str(pod_ref.get("name", "")))
            if pod is None or pod["metadata"]["uid"] != pod_ref.get("uid"):
                raise TokenRefused(f"pod {namespace}/{pod_ref.get('name', '')} bound to the token no longer exists")
        return namespace, sa, pod_ref

    def token_review(self, body: dict[str, Any]) -> Object:
        """A TokenReview answered: the token is verified for the asked audiences (default: the API server's)."""
        spec = body.get("spec") or {}
        token = str(spec.get("token") or "")
        wanted = [str(a) for a in spec.get("audiences") or []] or [DEFAULT_AUDIENCE]
        status: dict[str, Any]
        try:
            claims = self.issuer.verify(token, wanted)
            namespace, sa, pod_ref = self._live_claims(claims)
        except TokenRefused as refused:
            status = {"authenticated": False, "user": {}, "error": str(refused)}
        else:
            token_audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
            extra: dict[str, list[str]] = {}
            if pod_ref:
                extra = {
                    "authentication.kubernetes.io/pod-name": [pod_ref["name"]],
                    "authentication.kubernetes.io/pod-uid": [pod_ref["uid"]],
                }
            status = {
                "authenticated": True,
                "user": {
                    "username": claims["sub"],
                    "uid": sa["metadata"]["uid"],
                    "groups": [
                        "system:serviceaccounts",
                        f"system:serviceaccounts:{namespace}",
                        "system:authenticated",
                    ],
                    **({"extra": extra} if extra else {}),
                },
                "audiences": [a for a in wanted if a in token_audiences],
            }
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
