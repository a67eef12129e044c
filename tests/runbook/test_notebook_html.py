"""Executed notebooks read well in a browser: tables and applied YAML, never a Python repr, never a secret.

Slow: `meshbook run` executes the prerequisites and scenario 1 on the sandbox (the session's shared
`scenario_1_run`), then each executed notebook goes through `jupyter nbconvert --to html` and headless
Chromium (offline: every host name maps to NOTFOUND, so the page's CDN scripts fail fast). The checks
read the DOM Chromium rendered.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from meshbook.manifests import DEMO_STARTUP_SECRETS
from meshbook.runbook.display import REDACTED
from tests.chromium import require_chromium, run_chromium
from tests.runbook import UP_TO_SCENARIO_1, Run

REPR = re.compile(r"\b[A-Z][A-Za-z0-9_]*\((?:[a-z_]+=|'|\))")
"""A Python repr such as `AppliedObject(api_version=...`, `Foo('x')` or `Bar()`."""
BLOCKS = frozenset({"div", "p", "pre", "table", "tr", "td", "th", "details", "summary", "br", "li", "h1", "h2"})
STEP_CALLS = re.compile(r"\brb\.(step|apply|namespace|auto_inject|recreate_pods|allow_|install_|require_mtls)")


@dataclass
class Output:
    """One rendered cell output: its MIME type, text, and the classes of the tables and YAML blocks in it."""

    mime: str
    text: str = ""
    tables: list[str] = field(default_factory=list)
    yaml: list[str] = field(default_factory=list)


class RenderedNotebook(HTMLParser):
    """The page's visible text, and each cell output's text, tables and <pre class="meshbook-yaml"> blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.outputs: list[Output] = []
        self._skip = 0  # inside <script> or <style>
        self._depth = 0  # <div> depth inside the current output
        self._yaml: list[str] | None = None

    def _separate(self, tag: str) -> None:
        """Cells, rows and blocks end a word, as a browser lays them out (inline <span>s do not)."""
        if tag in BLOCKS:
            self.text.append("\n")
            if self._depth:
                self.outputs[-1].text += "\n"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._separate(tag)
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "div" and self._depth:
            self._depth += 1
        elif tag == "div" and "jp-OutputArea-output" in classes:
            self._depth = 1
            self.outputs.append(Output(attributes.get("data-mime-type") or ""))
        elif tag == "table" and self._depth:
            self.outputs[-1].tables.append(" ".join(classes))
        elif tag == "pre" and self._depth and "meshbook-yaml" in classes:
            self._yaml = []

    def handle_endtag(self, tag: str) -> None:
        self._separate(tag)
        if tag in ("script", "style"):
            self._skip -= 1
        elif tag == "div" and self._depth:
            self._depth -= 1
        elif tag == "pre" and self._yaml is not None:
            self.outputs[-1].yaml.append("".join(self._yaml))
            self._yaml = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._depth:
            self.outputs[-1].text += data
        if self._yaml is not None:
            self._yaml.append(data)


@dataclass
class Page:
    name: str
    text: str
    outputs: list[Output]
    code_outputs: list[tuple[str, list[dict[str, object]]]]
    """Each code cell's source and outputs, from the executed notebook itself."""


@pytest.fixture(scope="module")
def executed(scenario_1_run: Run) -> Iterator[Path]:
    """The executed notebooks of the session's shared run (only read here: nbconvert writes elsewhere)."""
    run = scenario_1_run
    assert run.code == 0 and run.run_dir is not None, run.describe()
    yield run.run_dir / "notebooks"


@pytest.fixture(scope="module")
def chromium() -> Path:
    return require_chromium()


# `jupyter nbconvert` itself (its entry point), without the grammars jsonschema would build for a string
# format nbconvert never checks (as `meshbook run` leaves them out: meshbook.runbook.execute.import_papermill).
NBCONVERT = "import sys; sys.modules['rfc3987_syntax'] = None; from nbconvert.nbconvertapp import main; main()"


def convert(names: tuple[str, ...], notebooks: Path, work: Path) -> None:
    """`jupyter nbconvert --to html` of the notebooks, in one process: its start and imports are paid once."""
    command = [sys.executable, "-c", NBCONVERT, "--to", "html", "--output-dir", str(work)]
    inputs = [str(notebooks / f"{name}.ipynb") for name in names]
    proc = subprocess.run([*command, *inputs], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def render(name: str, notebooks: Path, chromium: Path, work: Path) -> Page:
    """The notebook's page (converted by `convert` into `work`) as Chromium renders it, with its cells."""
    page = work / f"{name}.html"
    offline = "--host-resolver-rules=MAP * ~NOTFOUND"
    shown = run_chromium(chromium, work / f"profile-{name}", offline, "--dump-dom", page.as_uri())
    assert shown.returncode == 0 and "</html>" in shown.stdout, shown.stderr[-2000:]
    dom = RenderedNotebook()
    dom.feed(shown.stdout)
    nb = json.loads((notebooks / f"{name}.ipynb").read_text())
    cells = [("".join(c["source"]), c["outputs"]) for c in nb["cells"] if c["cell_type"] == "code"]
    return Page(name, "".join(dom.text), dom.outputs, cells)


@pytest.fixture(scope="module")
def pages(executed: Path, chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Page]:
    work = tmp_path_factory.mktemp("html")
    convert(UP_TO_SCENARIO_1, executed, work)
    return {name: render(name, executed, chromium, work) for name in UP_TO_SCENARIO_1}


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", UP_TO_SCENARIO_1)
def test_every_output_is_a_table_or_text_never_a_repr(pages: dict[str, Page], name: str) -> None:
    page = pages[name]
    assert page.outputs, f"{name}: no rendered outputs"
    for output in page.outputs:
        found = REPR.search(output.text)
        assert found is None, f"{name}: a Python repr in an output: {output.text[found.start() : found.start() + 200]}"
    for source, outputs in page.code_outputs:
        for output in outputs:
            plain = "".join(output.get("data", {}).get("text/plain", ""))  # type: ignore[attr-defined]
            assert not REPR.search(plain), f"{name}: `{source}` shows a repr: {plain[:300]}"
        if STEP_CALLS.search(source) and "import" not in source:
            # every step shows what it did: an HTML result with the Markdown and text forms beside it (the
            # mTLS posture is a view, a DataFrame: HTML and text)
            assert outputs, f"{name}: `{source}` shows nothing"
            mimes = set(outputs[-1].get("data", {}))  # type: ignore[attr-defined]
            wanted = {"text/html", "text/plain"} if "mtls_table()" in source else {"text/html", "text/markdown"}
            assert wanted <= mimes, f"{name}: `{source}`: {mimes}"
    assert 'istio = {"sidecar_mode": "native"}' in page.text  # the parameters cell says how to change it


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", UP_TO_SCENARIO_1)
def test_applied_objects_show_as_tables_with_their_yaml(pages: dict[str, Page], name: str) -> None:
    page = pages[name]
    applied = [o for o in page.outputs if "meshbook-objects" in o.tables]
    assert applied, f"{name}: no table of applied objects"
    for output in applied:
        assert output.mime == "text/html"
        assert "resourceVersion (before -> after)" in output.text
        assert re.search(r"\b(created|configured|unchanged)\b", output.text)
        assert "today's command" in output.text
    yaml = [block for o in page.outputs for block in o.yaml]
    assert yaml and all(block.startswith("apiVersion: ") and "\nkind: " in block for block in yaml)
    for value in DEMO_STARTUP_SECRETS.values():
        assert value not in page.text
    assert any(table.startswith("dataframe") for o in page.outputs for table in o.tables)  # pod and verdict tables


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_each_notebook_shows_todays_commands(pages: dict[str, Page]) -> None:
    istio, bank_vaults, scenario = (pages[name] for name in UP_TO_SCENARIO_1)
    assert "backyards mtls require mesh" in istio.text
    assert "istioctl install -y --set profile=default" in istio.text
    assert "PeerAuthentication istio-system/default" in istio.text
    assert "STRICT" in "".join(o.text for o in istio.outputs if o.mime == "text/html")
    helm = "helm upgrade --install vault-operator oci://ghcr.io/bank-vaults/helm-charts/vault-operator"
    assert helm in bank_vaults.text
    assert "helm repo add banzaicloud-stable" in bank_vaults.text  # the guide's, beside today's
    assert "backyards mtls allow vault-system/vault-secrets-webhook" in bank_vaults.text
    assert "kubectl logs -f -n app deployment/app app" in scenario.text
    assert "kubectl logs -n app deployment/app -c init-ubuntu" in scenario.text
    vault_yaml = [block for o in scenario.outputs for block in o.yaml if "\nkind: Vault\n" in block]
    assert len(vault_yaml) == 1
    assert f"AWS_SECRET_ACCESS_KEY: {REDACTED}" in vault_yaml[0]
    verdicts = [o for o in scenario.outputs if "secret delivered" in o.text]
    assert verdicts and all(o.tables for o in verdicts)
    pods = [o for o in scenario.outputs if "vault-configurer" in o.text and o.tables]
    assert pods and "ready" in pods[0].text and "Running" in pods[0].text
