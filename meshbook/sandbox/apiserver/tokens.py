"""Service-account tokens: RS256 JWTs signed and verified with PyJWT, carrying the claims a real cluster's do.

OpenBao's kubernetes auth sends the pod's JWT to the API server's TokenReview, so the sandbox must sign
tokens it can later verify, and refuse them once the service account (or bound pod) is gone (that live
check is serviceaccounts.py's). Verification pins RS256 and this issuer's public key, so `alg: none` and
an HS256 token "signed" with the public key are refused, and checks issuer, audience, exp and nbf.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER: Final = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE: Final = ISSUER  # the API server's own audience, as a cluster's default
ALGORITHM: Final = "RS256"
LEEWAY_SECONDS: Final = 10  # clock skew allowed on exp and nbf
MIN_EXPIRATION_SECONDS: Final = 600  # a TokenRequest asks for at least 10 minutes, as on a real cluster
REQUIRED_CLAIMS: Final = ("iss", "sub", "aud", "exp", "iat", "nbf")


class TokenRefused(Exception):
    """A bearer token that is not a valid service-account token of this sandbox; the message says why."""


class TokenIssuer:
    """Signs and verifies tokens with an RSA key kept in the sandbox's state directory (0600)."""

    def __init__(self, state_dir: Path) -> None:
        path = state_dir / "sa.key"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{path}: expected the sandbox's RSA service-account key, found {type(key).__name__}; "
                                 "delete it to have a new one made (tokens issued before stop working)")  # fmt: skip
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
        self.public_key = key.public_key()
        digest = hashes.Hash(hashes.SHA256())
        digest.update(
            self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        self.key_id = base64.urlsafe_b64encode(digest.finalize()[:16]).rstrip(b"=").decode()

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
        """A signed JWT and its expiry (unix seconds); `pod` is (name, uid) of the pod it is bound to."""
        issued = int(now if now is not None else time.time())
        exp = issued + max(MIN_EXPIRATION_SECONDS, expiration_seconds)
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": service_account_uid},
        }
        if pod is not None:
            private["pod"] = {"name": pod[0], "uid": pod[1]}
        claims: dict[str, Any] = {
            "aud": audiences or [DEFAULT_AUDIENCE],
            "exp": exp,
            "iat": issued,
            "nbf": issued,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "kubernetes.io": private,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})
        return token, exp

    def verify(self, token: str, audiences: Sequence[str] = (DEFAULT_AUDIENCE,)) -> dict[str, Any]:
        """The claims of a token signed here, for one of `audiences`, now within nbf..exp; TokenRefused if not."""
        if not audiences:
            raise ValueError("verify needs at least one audience to accept")
        try:
            return jwt.decode(
                token,
                self.public_key,
                algorithms=[ALGORITHM],
                audience=list(audiences),
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRefused("token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenRefused("token is not valid yet (nbf or iat in the future)") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRefused(f"token audiences do not include any of {list(audiences)}") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRefused(f"token issuer is not {ISSUER}") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise TokenRefused(f"token is not signed with {ALGORITHM}") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRefused("token signature does not verify with this sandbox's key") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(f"token lacks a required claim: {exc.claim}") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenRefused(f"malformed token: {exc}") from exc
