"""batch/v1 Jobs and their controller, through kubectl (1.28: JSON bodies, 1.33: protobuf) and the client."""

from __future__ import annotations

import json
import ssl
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.sandbox.conftest import (
    KUBECTL,
    KUBECTL_IDS,
    KUBECTL_VERSIONS,
    RunningSandbox,
    running_sandbox,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed"),
]


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS, ids=KUBECTL_IDS)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("jobs"), request.param) as running:
        yield running


@pytest.fixture
def ns(cluster: RunningSandbox) -> str:
    name = f"j-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


def server_minor(cluster: RunningSandbox) -> int:
    return int(json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["minor"])


def job_body(name: str, script: str, restart: str = "Never", **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": restart, "containers": [container]}}, **spec},
    }


def true_conditions(job: client.V1Job) -> list[tuple[str, str | None]]:
    return [(c.type, c.reason) for c in (job.status.conditions or []) if c.status == "True"]


def finished(job: Any) -> bool:
    return any(kind in ("Complete", "Failed") for kind, _ in true_conditions(job))


def wait_finished(cluster: RunningSandbox, ns: str, name: str) -> client.V1Job:
    batch = client.BatchV1Api(cluster.api)
    job = wait_for(
        batch.list_namespaced_job,
        lambda j: j.metadata.name == name and finished(j),  # type: ignore[attr-defined]
        timeout=120,
        namespace=ns,
    )
    assert isinstance(job, client.V1Job)
    return job


def pods_of(cluster: RunningSandbox, ns: str, name: str) -> list[client.V1Pod]:
    core = client.CoreV1Api(cluster.api)
    return list(core.list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={name}").items)


# -- refusals and failures first --------------------------------------------------------------------


def test_restart_policy_always_is_refused(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    with pytest.raises(ApiException) as caught:
        batch.create_namespaced_job(ns, job_body("always", "true", restart="Always"))
    assert caught.value.status == 422
    message = json.loads(caught.value.body)["message"]
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"' in (
        message
    )


def test_negative_counts_are_refused(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    with pytest.raises(ApiException) as caught:
        batch.create_namespaced_job(ns, job_body("neg", "true", backoffLimit=-1))
    assert caught.value.status == 422
    assert "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0" in caught.value.body


def test_failing_pods_exhaust_the_backoff_limit(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    batch.create_namespaced_job(ns, job_body("fails", "echo trying; exit 3", backoffLimit=2))
    job = wait_finished(cluster, ns, "fails")
    assert true_conditions(job) == [("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")]
    assert job.status.failed == 3  # backoffLimit + 1 pods failed
    assert not job.status.succeeded and not job.status.active
    assert job.status.completion_time is None
    failed = job.status.conditions[-1]
    assert failed.message == "Job has reached the specified backoff limit"
    pods = pods_of(cluster, ns, "fails")
    assert len(pods) == 3 and {p.status.phase for p in pods} == {"Failed"}
    row = cluster.kubectl("get", "job", "fails", "-n", ns, "--no-headers").stdout.split()
    assert row[:3] == ["fails", "Failed", "0/1"] if server_minor(cluster) >= 30 else row[:2] == ["fails", "0/1"]
    events = cluster.kubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name=fails").stdout
    assert "BackoffLimitExceeded" in events


def test_on_failure_restarts_count_against_the_limit(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    batch.create_namespaced_job(ns, job_body("restarts", "exit 1", restart="OnFailure", backoffLimit=2))
    job = wait_finished(cluster, ns, "restarts")
    assert true_conditions(job)[-1] == ("Failed", "BackoffLimitExceeded")
    assert job.status.failed == 1  # the one pod, restarted in place, stopped and counted


def test_wait_for_complete_on_a_failed_job_times_out(cluster: RunningSandbox, ns: str) -> None:
    cluster.kubectl("create", "job", "nope", "-n", ns, "--image=busybox", "--", "sh", "-c", "exit 1")
    out = cluster.kubectl(
        "wait", "--for=condition=complete", "job/nope", "-n", ns, "--timeout=3s", check=False, timeout=60
    )
    assert out.returncode != 0 and "timed out" in out.stderr


def test_active_deadline_stops_a_running_job(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    batch.create_namespaced_job(ns, job_body("slow", "sleep 100000", activeDeadlineSeconds=1))
    job = wait_finished(cluster, ns, "slow")
    assert true_conditions(job) == [("FailureTarget", "DeadlineExceeded"), ("Failed", "DeadlineExceeded")]
    assert job.status.conditions[-1].message == "Job was active longer than specified deadline"
    assert not job.status.active and job.status.failed == 1
    assert _wait_no_pods(cluster, ns, "batch.kubernetes.io/job-name=slow", phase_running=True) == []


# -- what works ------------------------------------------------------------------------------------


def test_kubectl_create_job_completes_and_prints_columns(cluster: RunningSandbox, ns: str) -> None:
    out = cluster.kubectl("create", "job", "hello", "-n", ns, "--image=busybox", "--", "sh", "-c", "echo hi")
    assert out.stdout.strip() == "job.batch/hello created"
    waited = cluster.kubectl("wait", "--for=condition=complete", "job/hello", "-n", ns, "--timeout=60s")
    assert waited.stdout.strip() == "job.batch/hello condition met"
    table = cluster.kubectl("get", "jobs", "-n", ns).stdout.splitlines()
    if server_minor(cluster) >= 30:  # STATUS came with 1.30's printer
        assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
        assert table[1].split()[:3] == ["hello", "Complete", "1/1"]
    else:
        assert table[0].split() == ["NAME", "COMPLETIONS", "DURATION", "AGE"]
        assert table[1].split()[:2] == ["hello", "1/1"]
    wide = cluster.kubectl("get", "jobs", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert "batch.kubernetes.io/controller-uid=" in wide[1]
    assert cluster.kubectl("logs", "-n", ns, "job/hello").stdout == "hi\n"


def test_pods_are_labelled_and_owned(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    created = batch.create_namespaced_job(ns, job_body("owned", "true"))
    uid = created.metadata.uid
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert created.spec.backoff_limit == 6 and created.spec.completions == 1 and created.spec.parallelism == 1
    wait_finished(cluster, ns, "owned")
    (pod,) = pods_of(cluster, ns, "owned")
    assert pod.metadata.name.startswith("owned-")
    assert pod.metadata.labels["batch.kubernetes.io/controller-uid"] == uid
    assert pod.metadata.labels["controller-uid"] == uid and pod.metadata.labels["job-name"] == "owned"
    (ref,) = pod.metadata.owner_references
    assert (ref.api_version, ref.kind, ref.name, ref.uid, ref.controller) == ("batch/v1", "Job", "owned", uid, True)
    job = batch.read_namespaced_job("owned", ns)
    assert job.status.succeeded == 1 and job.status.start_time and job.status.completion_time
    assert true_conditions(job) == [("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "CompletionsReached")]


def test_completions_with_parallelism(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    batch.create_namespaced_job(ns, job_body("many", "echo done", completions=3, parallelism=2))
    job = wait_finished(cluster, ns, "many")
    assert job.status.succeeded == 3 and not job.status.failed
    assert len(pods_of(cluster, ns, "many")) == 3
    row = cluster.kubectl("get", "job", "many", "-n", ns, "--no-headers").stdout.split()
    assert "3/3" in row and ("Complete" in row) == (server_minor(cluster) >= 30)


def test_backoff_limit_zero_fails_on_the_first_failure(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    batch.create_namespaced_job(ns, job_body("once", "exit 2", backoffLimit=0))
    job = wait_finished(cluster, ns, "once")
    assert job.status.failed == 1 and true_conditions(job)[-1] == ("Failed", "BackoffLimitExceeded")
    assert len(pods_of(cluster, ns, "once")) == 1


def test_apply_explain_and_delete_collects_pods(cluster: RunningSandbox, ns: str) -> None:
    manifest = json.dumps(job_body("applied", "echo applied") | {"metadata": {"name": "applied", "namespace": ns}})
    assert cluster.kubectl("apply", "-f", "-", input=manifest).stdout.strip() == "job.batch/applied created"
    cluster.kubectl("wait", "--for=condition=complete", "job/applied", "-n", ns, "--timeout=60s")
    explained = cluster.kubectl("explain", "job.spec.backoffLimit").stdout
    assert "KIND:" in explained and "Job" in explained and "backoffLimit" in explained
    assert len(pods_of(cluster, ns, "applied")) == 1
    cluster.kubectl("delete", "job", "applied", "-n", ns, "--wait=true", "--timeout=60s")
    assert _wait_no_pods(cluster, ns, "batch.kubernetes.io/job-name=applied") == []


def test_delete_without_a_policy_orphans_the_pods_with_a_warning(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    batch.create_namespaced_job(ns, job_body("kept", "true"))
    wait_finished(cluster, ns, "kept")
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    headers = {"Authorization": f"Bearer {kubeconfig['users'][0]['user']['token']}"}
    url = f"{cluster.info.server}/apis/batch/v1/namespaces/{ns}/jobs/kept"
    context = ssl.create_default_context(cafile=str(cluster.info.state_dir / "ca.crt"))
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers, method="DELETE"), context=context) as r:
        assert r.status == 200
        assert r.headers["Warning"] == (
            '299 - "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background '
            'to remove them or set propagationPolicy=Orphan to suppress this warning"'
        )
    with pytest.raises(ApiException) as caught:
        batch.read_namespaced_job("kept", ns)
    assert caught.value.status == 404
    wait_for(
        client.CoreV1Api(cluster.api).list_namespaced_pod,
        lambda p: not p.metadata.owner_references,  # type: ignore[attr-defined]
        namespace=ns,
        label_selector="batch.kubernetes.io/job-name=kept",
    )


def test_suspend_and_resume(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    batch.create_namespaced_job(ns, job_body("held", "echo resumed", suspend=True))
    held = wait_for(
        batch.list_namespaced_job,
        lambda j: ("Suspended", "JobSuspended") in true_conditions(j),  # type: ignore[arg-type]
        namespace=ns,
    )
    assert not held.status.active and not pods_of(cluster, ns, "held")  # type: ignore[attr-defined]
    batch.patch_namespaced_job("held", ns, {"spec": {"suspend": False}})
    job = wait_finished(cluster, ns, "held")
    suspended = next(c for c in job.status.conditions if c.type == "Suspended")
    assert (suspended.status, suspended.reason, suspended.message) == ("False", "JobResumed", "Job resumed")
    assert job.status.succeeded == 1 and job.status.start_time


def test_ttl_after_finished_deletes_the_job(cluster: RunningSandbox, ns: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    created = batch.create_namespaced_job(ns, job_body("brief", "true", ttlSecondsAfterFinished=0))
    listing = batch.list_namespaced_job(ns)
    if any(j.metadata.uid == created.metadata.uid for j in listing.items):
        w = watch.Watch()
        for event in w.stream(
            batch.list_namespaced_job,
            namespace=ns,
            resource_version=listing.metadata.resource_version,
            timeout_seconds=60,
        ):
            if event["type"] == "DELETED" and event["object"].metadata.uid == created.metadata.uid:
                w.stop()
    assert all(j.metadata.uid != created.metadata.uid for j in batch.list_namespaced_job(ns).items)
    assert _wait_no_pods(cluster, ns, "batch.kubernetes.io/job-name=brief") == []


def _wait_no_pods(cluster: RunningSandbox, ns: str, selector: str, phase_running: bool = False) -> list[str]:
    """Watch until no pod matches `selector` (the garbage collector deletes them after the Job), or,
    with `phase_running`, until none of them is still running (a failed Job stops its pods)."""
    core = client.CoreV1Api(cluster.api)
    listing = core.list_namespaced_pod(ns, label_selector=selector)
    names = {p.metadata.name for p in listing.items if not phase_running or p.status.phase == "Running"}
    if not names:
        return []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_pod,
        namespace=ns,
        label_selector=selector,
        resource_version=listing.metadata.resource_version,
        timeout_seconds=60,
    ):
        if event["type"] == "DELETED" or (phase_running and event["object"].status.phase != "Running"):
            names.discard(event["object"].metadata.name)
            if not names:
                w.stop()
    return sorted(names)
