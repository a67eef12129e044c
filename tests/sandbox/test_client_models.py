"""The client's model tables read from source equal the client's own, and the server never imports the client."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kubernetes.client import models as client_models

from meshbook.sandbox.apiserver.validation import client_models as source_models
from meshbook.sandbox.apiserver.validation.client_models import ClientModelError, models


def test_an_unknown_model_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no model 'V1Widget'"):
        _ = models.V1Widget
    assert getattr(models, "V1Widget", None) is None


def test_a_model_file_without_literal_tables_is_refused(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    (directory / "v1_thing.py").write_text("class V1Thing(object):\n    openapi_types = dict(a='str')\n")
    monkeypatch.setattr(source_models, "_models_dir", lambda: directory)
    with pytest.raises(ClientModelError, match="V1Thing should define openapi_types and attribute_map"):
        source_models._class_tables("V1Thing", "v1_thing")


@pytest.mark.parametrize(
    "name",
    [
        "V1Pod",
        "V1PodSpec",
        "V1Container",
        "CoreV1Event",
        "V1ObjectMeta",
        "V1CustomResourceDefinitionSpec",
        "V1JSONSchemaProps",
        "V1MutatingWebhookConfiguration",
        "V1StatefulSetSpec",
        "AdmissionregistrationV1ServiceReference",
    ],
)
def test_tables_equal_the_client_models(name: str) -> None:
    ours, theirs = getattr(models, name), getattr(client_models, name)
    assert isinstance(ours, type)
    assert ours.openapi_types == theirs.openapi_types
    assert ours.attribute_map == theirs.attribute_map


def test_every_exported_model_is_found() -> None:
    names = [
        name for name in dir(client_models) if name[:1].isupper() and isinstance(getattr(client_models, name), type)
    ]
    assert len(names) > 500
    assert sorted(source_models._module_of()) == sorted(names)


def test_the_server_does_not_import_clients_it_does_not_use() -> None:
    """The server needs the model tables, not the kubernetes client (~20 MB resident), and the parameter
    enums, not the pydantic models (~11 MB). (It speaks to OpenBao with hvac, as all meshbook's Vault work.)"""
    code = (
        "import sys, meshbook.sandbox.server, meshbook.sandbox.vault.operations; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'kubernetes', 'pydantic'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
