"""The Applier's discovery stays in memory: no cache file under the temp directory is written or read.

The official client's default caches discovery in `<tmp>/osrcp-<md5 of the server URL>.json` and reads it back
in any later process; sandboxes reuse ports, so a fresh sandbox was served another one's kinds (listed as
served, 404 when used).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import dynamic

from meshbook.errors import MeshbookError
from meshbook.kube.apply import Applier
from tests.sandbox.conftest import RunningSandbox, running_sandbox

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The process's temp directory, where the official client keeps its default discovery cache."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _default_cache_file(sandbox: RunningSandbox, temp_dir: Path) -> Path:
    host = sandbox.api.configuration.host.encode()
    return temp_dir / f"osrcp-{hashlib.md5(host, usedforsecurity=False).hexdigest()}.json"


def _plant_phantom_kind(cache_file: Path) -> None:
    """Edit the client's own cache file so it lists a kind `Phantom` in v1 that the server does not serve."""
    cache = json.loads(cache_file.read_text())
    core_v1 = cache["resources"]["api"][""]["v1"]["resources"]
    phantom = json.loads(json.dumps(core_v1["ConfigMap"]))
    for resource in phantom:
        resource["kind"], resource["name"] = "Phantom", "phantoms"
    core_v1["Phantom"] = phantom
    cache_file.write_text(json.dumps(cache))


def test_the_client_default_reads_a_stale_file_the_applier_does_not(sandbox: RunningSandbox, temp_dir: Path) -> None:
    # The failure mode, shown with the official client's default: its file is written, and read back.
    dynamic.DynamicClient(sandbox.api).resources.get(api_version="v1", kind="ConfigMap")
    cache_file = _default_cache_file(sandbox, temp_dir)
    assert cache_file.exists()
    _plant_phantom_kind(cache_file)
    assert dynamic.DynamicClient(sandbox.api).resources.get(api_version="v1", kind="Phantom").kind == "Phantom"

    # The Applier asks the server, which does not serve it.
    with pytest.raises(MeshbookError, match=r"does not serve Phantom \(v1\)"):
        Applier(sandbox.api).resource("v1", "Phantom")


def test_the_applier_writes_no_discovery_file(sandbox: RunningSandbox, temp_dir: Path) -> None:
    applier = Applier(sandbox.api)
    assert applier.resource("v1", "ConfigMap").kind == "ConfigMap"
    with pytest.raises(MeshbookError):
        applier.resource("v1", "NoSuchKind")  # a miss refreshes discovery: still nothing written
    assert list(temp_dir.iterdir()) == []
