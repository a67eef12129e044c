"""`serviceaccounts/NAME/token` (TokenRequest) and `tokenreviews`: issuing and checking SA tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meshbook.sandbox.apiserver.tokens import TokenIssuer
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

    def token_for(self, namespace: str, service_account: str, pod: Object | None = None) -> str | None:
        """A token for a pod's service account (what the kubelet projects into the pod)."""
        sa = self._lookup("serviceaccounts", namespace, service_account)
        if sa is None:
            return None
        bound = (pod["metadata"]["name"], pod["metadata"]["uid"]) if pod else None
        token, _ = self.issuer.issue(namespace, service_account, sa["metadata"]["uid"], pod=bound)
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
        spec.setdefault("audiences", audiences or ["https://kubernetes.default.svc.cluster.local"])
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
        """Whether a bearer token is a live service-account token issued here."""
        review = self.token_review({"spec": {"token": token}})
        return bool(review["status"].get("authenticated"))

    def token_review(self, body: dict[str, Any]) -> Object:
        token = str((body.get("spec") or {}).get("token") or "")
        claims = self.issuer.verify(token)
        status: dict[str, Any] = {"authenticated": False, "user": {}}
        if claims is not None:
            info = claims.get("kubernetes.io", {})
            namespace = info.get("namespace", "")
            sa_name = info.get("serviceaccount", {}).get("name", "")
            sa = self._lookup("serviceaccounts", namespace, sa_name)
            pod_ref = info.get("pod")
            pod = self._lookup("pods", namespace, pod_ref["name"]) if pod_ref else None
            if sa is None or sa["metadata"]["uid"] != info.get("serviceaccount", {}).get("uid"):
                status["error"] = "service account not found or recreated"
            elif pod_ref and (pod is None or pod["metadata"]["uid"] != pod_ref.get("uid")):
                status["error"] = "pod bound to the token no longer exists"
            else:
                wanted = list((body.get("spec") or {}).get("audiences") or [])
                audiences = claims.get("aud", [])
                if wanted and not set(wanted) & set(audiences):
                    status["error"] = "token audiences do not match"
                else:
                    extra: dict[str, list[str]] = {}
                    if pod_ref:
                        extra = {
                            "authentication.kubernetes.io/pod-name": [pod_ref["name"]],
                            "authentication.kubernetes.io/pod-uid": [pod_ref["uid"]],
                        }
                    status = {
                        "authenticated": True,
                        "user": {
                            "username": f"system:serviceaccount:{namespace}:{sa_name}",
                            "uid": sa["metadata"]["uid"],
                            "groups": [
                                "system:serviceaccounts",
                                f"system:serviceaccounts:{namespace}",
                                "system:authenticated",
                            ],
                            **({"extra": extra} if extra else {}),
                        },
                        "audiences": wanted or audiences,
                    }
        else:
            status["error"] = "invalid bearer token"
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": body.get("spec") or {},
            "status": status,
        }
