"""Discovery against a scripted API server: refusals become gaps, unserved kinds are empty, versions fall back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from meshbook.audit.discover import LISTS, SUBJECT_ACCESS_REVIEWS, USER_AGENT, discover

VAULT = {"metadata": {"name": "vault", "namespace": "vault"}, "spec": {"serviceAccount": "vault"}}


class ScriptedServer:
    """Answers each path with (status, body) from `answers`; 404 for any other path. Records requests."""

    def __init__(self, answers: Mapping[str, tuple[int, dict[str, Any]]]) -> None:
        self.answers = dict(answers)
        self.requests: list[tuple[str, str, str, dict[str, Any] | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append((self.command, self.path, str(self.headers.get("User-Agent")), body))
                status, payload = server.answers.get(self.path, (404, _status(404, "the server could not find it")))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def api(self) -> client.ApiClient:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        configuration.api_key = {"BearerToken": "Bearer not-a-secret"}
        return client.ApiClient(configuration)


def _status(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}


def _items(*items: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {"kind": "List", "items": list(items)}


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer({})
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_a_refused_list_is_a_gap_naming_it_and_its_checks_and_the_others_still_fill(scripted: ScriptedServer) -> None:
    scripted.answers = {path: _items() for entry in LISTS for path in entry.paths}
    scripted.answers["/api/v1/pods"] = (403, _status(403, 'pods is forbidden: User "auditor" cannot list pods'))
    scripted.answers["/api/v1/namespaces"] = _items({"metadata": {"name": "app"}})
    found = discover(scripted.api())
    (gap,) = found.gaps
    assert gap.what == "list pods" and gap.checks == "every container check"
    assert gap.reason == 'pods is forbidden: User "auditor" cannot list pods (HTTP 403)'
    assert [n["metadata"]["name"] for n in found.namespaces] == ["app"] and found.pods == []


def test_a_refused_access_review_is_a_gap_and_no_verdict(scripted: ScriptedServer) -> None:
    scripted.answers = {path: _items() for entry in LISTS for path in entry.paths}
    scripted.answers["/apis/vault.banzaicloud.com/v1alpha1/vaults"] = _items(VAULT)
    scripted.answers[SUBJECT_ACCESS_REVIEWS] = (403, _status(403, "subjectaccessreviews is forbidden"))
    found = discover(scripted.api())
    assert found.access_reviews == []
    (gap,) = found.gaps
    assert gap.what == "create subjectaccessreviews.authorization.k8s.io for vault/vault"
    assert "HTTP 403" in gap.reason and "system:auth-delegator" in gap.checks


def test_unserved_kinds_are_empty_and_peer_authentications_fall_back_to_v1beta1(scripted: ScriptedServer) -> None:
    policy = {"metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "STRICT"}}}
    scripted.answers = {"/apis/security.istio.io/v1beta1/peerauthentications": _items(policy)}
    found = discover(scripted.api())
    assert found.gaps == [] and found.vaults == [] and found.pods == []
    assert found.peer_authentications == [policy]


def test_every_request_is_a_read_or_an_access_review_asking_about_vaults_account(scripted: ScriptedServer) -> None:
    scripted.answers = {path: _items() for entry in LISTS for path in entry.paths}
    scripted.answers["/apis/vault.banzaicloud.com/v1alpha1/vaults"] = _items(VAULT)
    scripted.answers[SUBJECT_ACCESS_REVIEWS] = (200, {"status": {"allowed": True, "reason": "bound"}})
    found = discover(scripted.api())
    assert [(r.service_account, r.allowed) for r in found.access_reviews] == [("vault/vault", True)]
    reads = {path for method, path, _, _ in scripted.requests if method == "GET"}
    assert reads == {entry.paths[0] for entry in LISTS}
    (review,) = [r for r in scripted.requests if r[0] != "GET"]
    assert review[:2] == ("POST", SUBJECT_ACCESS_REVIEWS)
    assert review[3] is not None and review[3]["spec"]["user"] == "system:serviceaccount:vault:vault"
    assert {agent for _, _, agent, _ in scripted.requests} == {USER_AGENT}


def test_an_unreachable_server_raises_rather_than_reporting_gaps() -> None:
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # discard: nothing listens
    configuration.retries = 0
    with pytest.raises(Exception) as raised:
        discover(client.ApiClient(configuration))
    assert "Connection refused" in str(raised.value) or "Max retries" in str(raised.value)
