"""Service-account tokens: RS256-signed JWTs with iat/nbf/exp, and TokenReview verifying them.

OpenBao's kubernetes auth sends the pod's JWT to the API server's TokenReview, so the sandbox must sign
tokens it can later verify, and refuse them once the service account (or bound pod) is gone.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE = ISSUER


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Signs and verifies tokens with a key kept in the sandbox's state directory (0600)."""

    def __init__(self, state_dir: Path) -> None:
        path = state_dir / "sa.key"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            path.chmod(0o600)
        self._key = key
        digest = hashes.Hash(hashes.SHA256())
        digest.update(
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        self._kid = _b64(digest.finalize()[:16])

    def issue(
        self,
        namespace: str,
        service_account: str,
        service_account_uid: str,
        *,
        audiences: list[str] | None = None,
        expiration_seconds: int = 3600,
        pod: tuple[str, str] | None = None,
        now: float | None = None,
    ) -> tuple[str, int]:
        """A signed JWT and its expiry (unix seconds)."""
        issued = int(now if now is not None else time.time())
        exp = issued + max(600, expiration_seconds)
        claims: dict[str, Any] = {
            "aud": audiences or [DEFAULT_AUDIENCE],
            "exp": exp,
            "iat": issued,
            "nbf": issued,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": service_account, "uid": service_account_uid},
            },
        }
        if pod is not None:
            claims["kubernetes.io"]["pod"] = {"name": pod[0], "uid": pod[1]}
        header = {"alg": "RS256", "kid": self._kid, "typ": "JWT"}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}", exp

    def verify(self, token: str, now: float | None = None) -> dict[str, Any] | None:
        """The claims of a valid, unexpired token signed here; None otherwise."""
        try:
            header_b64, claims_b64, sig_b64 = token.split(".")
            self._key.public_key().verify(
                _unb64(sig_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            claims: dict[str, Any] = json.loads(_unb64(claims_b64))
        except (ValueError, InvalidSignature):
            return None
        moment = now if now is not None else time.time()
        if not (claims.get("nbf", 0) <= moment < claims.get("exp", 0)):
            return None
        return claims
