"""Service-account tokens, called directly: the claims a cluster's tokens carry, and each refusal of verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from meshbook.sandbox.apiserver.serviceaccounts import TokenService
from meshbook.sandbox.apiserver.tokens import DEFAULT_AUDIENCE, ISSUER, LEEWAY_SECONDS, TokenIssuer, TokenRefused
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.storage.resources import ResourceRegistry
from meshbook.sandbox.storage.store import Object, Store

SA_UID = "0d6c3c2e-5d1e-4c43-9d0e-8a7a2b1e6f00"


@pytest.fixture
def issuer(tmp_path: Path) -> TokenIssuer:
    return TokenIssuer(tmp_path)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    """The claims the issuer writes for app/app now, with `changes` applied (None drops a claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": [DEFAULT_AUDIENCE],
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "iss": ISSUER,
        "sub": "system:serviceaccount:app:app",
        "kubernetes.io": {"namespace": "app", "serviceaccount": {"name": "app", "uid": SA_UID}},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed_by_the_sandbox_key(state_dir: Path, claims: dict[str, Any]) -> str:
    """A token signed with the issuer's own key file: passes the signature check, so the claim checks decide."""
    key = serialization.load_pem_private_key((state_dir / "sa.key").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return jwt.encode(claims, key, algorithm="RS256")


def _refusal(issuer: TokenIssuer, token: str, *audiences: str) -> TokenRefused:
    with pytest.raises(TokenRefused) as caught:
        issuer.verify(token, audiences or (DEFAULT_AUDIENCE,))
    return caught.value


def test_token_carries_the_claims_of_a_cluster_token(issuer: TokenIssuer) -> None:
    token, exp = issuer.issue("app", "app", SA_UID, pod=("app-1", "pod-uid-1"), expiration_seconds=3600)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "kid": issuer.key_id, "typ": "JWT"}
    claims = issuer.verify(token)
    assert set(claims) == {"aud", "exp", "iat", "nbf", "iss", "jti", "sub", "kubernetes.io"}
    assert claims["iss"] == ISSUER and claims["aud"] == [DEFAULT_AUDIENCE]
    assert claims["sub"] == "system:serviceaccount:app:app"
    assert claims["exp"] == exp == claims["iat"] + 3600 and claims["nbf"] == claims["iat"]
    assert claims["kubernetes.io"] == {
        "namespace": "app",
        "serviceaccount": {"name": "app", "uid": SA_UID},
        "pod": {"name": "app-1", "uid": "pod-uid-1"},
    }


def test_key_is_kept_private_and_reused(tmp_path: Path, issuer: TokenIssuer) -> None:
    assert stat.S_IMODE((tmp_path / "sa.key").stat().st_mode) == 0o600
    token, _ = issuer.issue("app", "app", SA_UID)
    again = TokenIssuer(tmp_path)
    assert again.key_id == issuer.key_id
    assert again.verify(token)["sub"] == "system:serviceaccount:app:app"


def test_audience_is_one_of_the_accepted(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue("app", "app", SA_UID, audiences=["vault", "other"])
    assert issuer.verify(token, ["nope", "vault"])["aud"] == ["vault", "other"]
    assert "do not include any of ['https://kubernetes.default.svc.cluster.local']" in str(_refusal(issuer, token))


def test_expired_token_is_refused(issuer: TokenIssuer) -> None:
    token, exp = issuer.issue("app", "app", SA_UID, expiration_seconds=3600, now=time.time() - 7200)
    assert exp < time.time() - 3000
    refused = _refusal(issuer, token)
    assert str(refused) == "token has expired"
    assert isinstance(refused.__cause__, jwt.ExpiredSignatureError)


def test_token_not_yet_valid_is_refused(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue("app", "app", SA_UID, now=time.time() + 3600)
    refused = _refusal(issuer, token)
    assert str(refused) == "token is not valid yet (nbf or iat in the future)"
    assert isinstance(refused.__cause__, jwt.ImmatureSignatureError)


def test_small_clock_skew_is_allowed(tmp_path: Path, issuer: TokenIssuer) -> None:
    now = int(time.time())
    skewed = _claims(exp=now - 2, nbf=now + 2, iat=now + 2)  # within LEEWAY_SECONDS, with margin for a slow run
    assert LEEWAY_SECONDS >= 8
    assert issuer.verify(_signed_by_the_sandbox_key(tmp_path, skewed))["exp"] == now - 2
    late = _signed_by_the_sandbox_key(tmp_path, _claims(exp=now - 120, iat=now - 720, nbf=now - 720))
    assert str(_refusal(issuer, late)) == "token has expired"


def test_wrong_audience_is_refused(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue("app", "app", SA_UID, audiences=["istio-ca"])
    refused = _refusal(issuer, token, "vault")
    assert str(refused) == "token audiences do not include any of ['vault']"
    assert isinstance(refused.__cause__, jwt.InvalidAudienceError)


def test_wrong_issuer_is_refused(tmp_path: Path, issuer: TokenIssuer) -> None:
    token = _signed_by_the_sandbox_key(tmp_path, _claims(iss="https://elsewhere.example"))
    refused = _refusal(issuer, token)
    assert str(refused) == f"token issuer is not {ISSUER}"
    assert isinstance(refused.__cause__, jwt.InvalidIssuerError)


@pytest.mark.parametrize("missing", ["exp", "nbf", "iss", "aud", "sub", "iat"])
def test_token_without_a_required_claim_is_refused(tmp_path: Path, issuer: TokenIssuer, missing: str) -> None:
    token = _signed_by_the_sandbox_key(tmp_path, _claims(**{missing: None}))
    assert str(_refusal(issuer, token)) == f"token lacks a required claim: {missing}"


def test_alg_none_is_refused(issuer: TokenIssuer) -> None:
    unsigned = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(_claims()).encode())}."
    assert jwt.decode(unsigned, options={"verify_signature": False})["sub"] == "system:serviceaccount:app:app"
    refused = _refusal(issuer, unsigned)
    assert str(refused) == "token is not signed with RS256"
    assert isinstance(refused.__cause__, jwt.InvalidAlgorithmError)


def test_hs256_signed_with_the_public_key_is_refused(issuer: TokenIssuer) -> None:
    """The classic confusion: HMAC keyed with the (public) verification key must not verify."""
    public_pem = issuer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(_claims()).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{_b64(mac)}"
    refused = _refusal(issuer, forged)
    assert str(refused) == "token is not signed with RS256"
    assert isinstance(refused.__cause__, jwt.InvalidAlgorithmError)


def test_tampered_payload_is_refused(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue("app", "app", SA_UID)
    header, _, signature = token.split(".")
    admin = _claims(sub="system:serviceaccount:kube-system:admin")
    forged = f"{header}.{_b64(json.dumps(admin).encode())}.{signature}"
    refused = _refusal(issuer, forged)
    assert str(refused) == "token signature does not verify with this sandbox's key"
    assert isinstance(refused.__cause__, jwt.InvalidSignatureError)


def test_token_of_another_sandbox_is_refused(tmp_path: Path, issuer: TokenIssuer) -> None:
    (tmp_path / "other").mkdir()
    token, _ = TokenIssuer(tmp_path / "other").issue("app", "app", SA_UID)
    assert str(_refusal(issuer, token)) == "token signature does not verify with this sandbox's key"


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b.c", "Bearer x.y"])
def test_malformed_token_is_refused(issuer: TokenIssuer, garbage: str) -> None:
    assert str(_refusal(issuer, garbage)).startswith("malformed token: ")


# -- TokenReview: verified claims must still name live objects ----------------------------------------------------


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[TokenService]:
    store = Store(tmp_path / "store.sqlite")
    service = TokenService(ApiCore(store, ResourceRegistry()), TokenIssuer(tmp_path))
    yield service
    store.close()


def _create(service: TokenService, plural: str, name: str) -> Object:
    rt = service.core.registry.lookup("", "v1", plural)
    assert rt is not None
    return service.core.store.create(rt, {"metadata": {"name": name, "namespace": "app"}})


def _delete(service: TokenService, plural: str, name: str) -> None:
    rt = service.core.registry.lookup("", "v1", plural)
    assert rt is not None
    service.core.store.delete(rt, "app", name)


def _review(service: TokenService, token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token, **({"audiences": audiences} if audiences else {})}
    status: dict[str, Any] = service.token_review({"spec": spec})["status"]
    return status


def test_review_of_a_pod_bound_token(tokens: TokenService) -> None:
    sa = _create(tokens, "serviceaccounts", "app")
    pod = _create(tokens, "pods", "app-1")
    token = tokens.token_for("app", "app", pod)
    assert token is not None
    status = _review(tokens, token)
    assert status["authenticated"] is True
    assert status["user"] == {
        "username": "system:serviceaccount:app:app",
        "uid": sa["metadata"]["uid"],
        "groups": ["system:serviceaccounts", "system:serviceaccounts:app", "system:authenticated"],
        "extra": {
            "authentication.kubernetes.io/pod-name": ["app-1"],
            "authentication.kubernetes.io/pod-uid": [pod["metadata"]["uid"]],
        },
    }
    assert status["audiences"] == [DEFAULT_AUDIENCE]
    assert tokens.authenticate(token)
    _delete(tokens, "pods", "app-1")
    _create(tokens, "pods", "app-1")  # same name, new uid: the token was bound to the old pod
    status = _review(tokens, token)
    assert status == {"authenticated": False, "user": {}, "error": "pod app/app-1 bound to the token no longer exists"}
    assert not tokens.authenticate(token)


def test_review_refuses_a_recreated_service_account(tokens: TokenService) -> None:
    _create(tokens, "serviceaccounts", "app")
    token = tokens.token_for("app", "app")
    assert token is not None and _review(tokens, token)["authenticated"]
    _delete(tokens, "serviceaccounts", "app")
    _create(tokens, "serviceaccounts", "app")
    assert _review(tokens, token)["error"] == "service account app/app not found or recreated"


def test_review_checks_the_asked_audiences(tokens: TokenService) -> None:
    _create(tokens, "serviceaccounts", "app")
    request = tokens.token_request("app", "app", {"spec": {"audiences": ["vault"]}})
    token = request["status"]["token"]
    assert request["spec"]["audiences"] == ["vault"]
    assert _review(tokens, token, ["other", "vault"])["audiences"] == ["vault"]
    assert _review(tokens, token)["error"] == f"token audiences do not include any of ['{DEFAULT_AUDIENCE}']"
    assert not tokens.authenticate(token)  # the API server accepts only its own audience


def test_review_refuses_a_subject_that_disagrees_with_the_claims(tmp_path: Path, tokens: TokenService) -> None:
    sa = _create(tokens, "serviceaccounts", "app")
    account = {"name": "app", "uid": sa["metadata"]["uid"]}
    claims = _claims(sub="system:serviceaccount:kube-system:admin")
    claims["kubernetes.io"] = {"namespace": "app", "serviceaccount": account}
    token = _signed_by_the_sandbox_key(tmp_path, claims)
    assert _review(tokens, token)["error"] == "token subject does not match its kubernetes.io service account"
    del claims["kubernetes.io"]
    token = _signed_by_the_sandbox_key(tmp_path, claims)
    assert _review(tokens, token)["error"] == "token lacks the kubernetes.io service-account claims"
