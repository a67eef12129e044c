"""`kubectl exec` / `attach` and `kubernetes.stream.stream` against the sandbox: refusals first, then
output, stdin, a terminal, the webhook's env in the app and the real OpenBao CLI in the vault pod.

The session and protocol pieces are checked directly first (no server), then one sandbox per module
with Bank-Vaults, the demo Vault and the app is driven as a user would drive a cluster.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pty
import re
import select
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import websocket
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from multidict import MultiDict

from meshbook.params import SandboxSpeed
from meshbook.sandbox.node.containers import ContainerContext, ContainerLog
from meshbook.sandbox.node.exec import ExecOptions, ExecResult, ExecSession, ProcessIO, Stream, exec_status
from meshbook.sandbox.node.remotecommand import parse_exec_options, status_bytes
from meshbook.sandbox.node.terminal import LineInput
from tests.sandbox.conftest import KUBECTL, RunningSandbox, start_sandbox, wait_for
from tests.sandbox.test_scenarios import SECRET, install_app, install_vault, meshbook

WAIT = 120
START_ERROR = re.compile(
    r"^error: Internal error occurred: error executing command in container: failed to exec in container: "
    r'failed to start exec "[0-9a-f]{64}": OCI runtime exec failed: exec failed: unable to start container '
    r'process: exec: "(?P<name>[^"]+)": executable file not found in \$PATH: unknown$'
)

# --- the protocol pieces, without a server --------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("command=env&stdout=true", ExecOptions(("env",), False, True, False, False)),
        ("command=sh&command=-c&command=x&stdin=1&stdout=1&stderr=1", ExecOptions(("sh", "-c", "x"), True, True, True)),
        ("command=sh&stdin=true&stdout=true&stderr=true&tty=true", ExecOptions(("sh",), True, True, False, True)),
        ("command=env&stdout=True&stderr=false", ExecOptions(("env",), False, True, False, False)),
    ],
)
def test_exec_options_as_the_kubelet_reads_them(query: str, expected: ExecOptions) -> None:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    assert parse_exec_options(MultiDict(pairs)) == expected


def test_exec_options_need_one_stream() -> None:
    with pytest.raises(ValueError, match=r"^you must specify at least 1 of stdin, stdout, stderr$"):
        parse_exec_options(MultiDict([("command", "env"), ("stdout", "false"), ("stdin", "0")]))


def test_error_channel_status_as_the_kubelet_writes_it() -> None:
    assert status_bytes(["env"], ExecResult(0)) == b'{"metadata":{},"status":"Success"}'
    assert status_bytes(["sh", "-c", "exit 3"], ExecResult(3)) == (
        b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error '
        b'executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":'
        b'[{"reason":"ExitCode","message":"3"}]}}'
    )
    failed = exec_status(["x"], ExecResult(start_error="failed to exec in container: boom"))
    assert list(failed) == ["metadata", "status", "message", "reason", "details", "code"]
    assert (
        failed["message"]
        == "Internal error occurred: error executing command in container: failed to exec in container: boom"
    )
    assert (failed["reason"], failed["code"]) == ("InternalError", 500)


def test_terminal_line_discipline() -> None:
    async def scenario() -> None:
        tty = LineInput(tty=True)
        assert tty.feed(b"ecx\x7fho hi\r") == b"ecx\b \bho hi\r\n"
        assert await tty.readline() == "echo hi\n"
        assert tty.feed(b"abc\x03") == b"abc^C\r\n"  # Ctrl-C drops the line
        assert await tty.readline() == "\n"
        assert tty.feed(b"\x1b[A\x1b[Dls\x15x\r") == b"ls\b \b\b \bx\r\n"  # arrows dropped, Ctrl-U kills
        assert await tty.readline() == "x\n"
        assert tty.feed(b"\x04") == b""  # Ctrl-D on an empty line: end of input
        assert await tty.readline() is None
        plain = LineInput(tty=False)
        assert plain.feed(b"a\nb") == b""
        plain.close()
        assert [await plain.readline(), await plain.readline(), await plain.readline()] == ["a\n", "b", None]

    asyncio.run(scenario())


class _Greeter:
    """A provided program (like the OpenBao CLI): reads stdin lines and greets each."""

    async def run(self, argv: Sequence[str], env: Mapping[str, str], io: ProcessIO) -> int:
        while (line := await io.read()) is not None:
            await io.write("stdout", b"hello " + line)
        await io.write("stderr", f"{list(argv[1:])}\n".encode())
        return 7


_LOGS: list[Path] = []  # where the unit sessions' container logs go (a module temporary directory)


@pytest.fixture(scope="module", autouse=True)
def _log_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    _LOGS.append(tmp_path_factory.mktemp("exec-logs"))
    yield
    _LOGS.clear()


def _session(command: Sequence[str], send: Any, stdin: bool, tty: bool) -> ExecSession:
    log = ContainerLog(_LOGS[0] / f"{uuid.uuid4().hex}.log")
    pod = {"metadata": {"name": "box", "namespace": "demo", "labels": {}}, "spec": {}, "status": {}}
    ctx = ContainerContext(
        pod, {"name": "c"}, False, {"HOSTNAME": "box", "GREETING": "hi"}, log,
        SandboxSpeed.INSTANT, asyncio.Event(), lambda _: None, lambda *_: None, None,  # type: ignore[arg-type]
    )  # fmt: skip
    options = ExecOptions(tuple(command), stdin, True, not tty, tty)
    greeter = _Greeter()
    return ExecSession(
        ctx, options, send, [lambda _, name: greeter if name == "greet" else None], files={"/etc/hostname": "box\n"}
    )


def _run_session(command: Sequence[str], stdin: bytes | None = None) -> tuple[str, str, ExecResult]:
    async def scenario() -> tuple[str, str, ExecResult]:
        out: dict[Stream, list[bytes]] = {"stdout": [], "stderr": []}

        async def send(stream_name: Stream, data: bytes) -> None:
            out[stream_name].append(data)

        session = _session(command, send, stdin is not None, False)
        if stdin is not None:
            await session.feed_stdin(stdin)
            session.close_stdin()
        result = await asyncio.wait_for(session.run(), 30)
        return b"".join(out["stdout"]).decode(), b"".join(out["stderr"]).decode(), result

    return asyncio.run(scenario())


def _run_session_bytes(command: Sequence[str], stdin: bytes) -> bytes:
    async def scenario() -> bytes:
        out: list[bytes] = []

        async def send(stream_name: Stream, data: bytes) -> None:
            out.append(data)

        session = _session(command, send, True, False)
        await session.feed_stdin(stdin)
        session.close_stdin()
        await asyncio.wait_for(session.run(), 30)
        return b"".join(out)

    return asyncio.run(scenario())


def test_session_refuses_what_the_container_does_not_have() -> None:
    _, _, result = _run_session(["curl", "-s", "localhost"])
    assert result.exit_code == 0 and 'exec: "curl": executable file not found in $PATH: unknown' in result.start_error
    _, _, result = _run_session(["/opt/tool"])
    assert 'exec: "/opt/tool": stat /opt/tool: no such file or directory: unknown' in result.start_error
    assert _run_session(["sh", "-c", "curl x"])[1:] == ("sh: curl: not found\n", ExecResult(127))
    assert _run_session(["env", "curl"])[1:] == (
        "env: can't execute 'curl': No such file or directory\n",
        ExecResult(127),
    )
    assert _run_session(["cat", "/etc/shadow"])[1:] == (
        "cat: can't open '/etc/shadow': No such file or directory\n",
        ExecResult(1),
    )


def test_session_output_stdin_files_and_provided_programs() -> None:
    assert _run_session(["sh", "-c", "echo $HOSTNAME; env | grep GREET"]) == ("box\nGREETING=hi\n", "", ExecResult(0))
    assert _run_session(["cat", "/etc/hostname"])[0] == "box\n"
    assert _run_session(["cat"], b"one\ntwo") == ("one\ntwo", "", ExecResult(0))
    raw = bytes(range(256)) + b"\n\xff\xfe"  # any bytes pass through unchanged
    assert _run_session_bytes(["cat"], raw) == raw
    assert _run_session(["sh", "-c", "read a b; echo $b"], b"x y z\n")[0] == "y z\n"
    assert _run_session(["sh"], b"X=1\nif true; then\necho $X\nfi\nexit 4\necho never\n") == ("1\n", "", ExecResult(4))
    assert _run_session(["greet", "--flag"], b"a\n") == ("hello a\n", "['--flag']\n", ExecResult(7))
    assert _run_session(["sh", "-c", "printf 'a\\nb\\n' | greet | grep b; echo $?"])[0] == "hello b\n0\n"


def test_session_on_a_terminal_prompts_echoes_and_ends_lines_with_crlf() -> None:
    async def scenario() -> tuple[bytes, ExecResult]:
        screen = bytearray()
        changed = asyncio.Event()

        async def send(stream_name: Stream, data: bytes) -> None:
            assert stream_name == "stdout"  # a terminal has one output
            screen.extend(data)
            changed.set()

        async def until(text: bytes) -> None:
            while not screen.endswith(text):
                changed.clear()
                await asyncio.wait_for(changed.wait(), 30)

        session = _session(["sh"], send, stdin=True, tty=True)
        run = asyncio.ensure_future(session.run())
        await until(b"/ # ")
        await session.feed_stdin(b"echo $HOSTNAME\r")
        await until(b"box\r\n/ # ")
        await session.feed_stdin(b"exit 3\r")
        return bytes(screen), await asyncio.wait_for(run, 30)

    assert asyncio.run(scenario()) == (b"/ # echo $HOSTNAME\r\nbox\r\n/ # exit 3\r\n", ExecResult(3))


# --- one sandbox with Bank-Vaults, the demo Vault and the app, driven with kubectl 1.33 ----------------

BOX = """
apiVersion: v1
kind: Pod
metadata: {name: box, namespace: default}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: [sh, -c, "echo started; sleep 100000"], env: [{name: GREETING, value: hi}]}
  - {name: quitter, image: busybox, command: ["true"]}
  - name: ticker
    image: busybox
    command: [sh, -c, "while true; do echo tick; sleep 30; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: default}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: ["true"]}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    from meshbook.sandbox import control

    sandbox = start_sandbox(tmp_path_factory.mktemp("exec") / "state")
    try:
        sandbox.kubectl("create", "namespace", "vault-system")
        state = str(sandbox.info.state_dir)
        meshbook(sandbox, "sandbox", "install", "bank-vaults", "--state", state, "--pods-failure-policy", "Ignore")
        sandbox.kubectl("rollout", "status", "deployment/vault-operator", "-n", "vault-system", f"--timeout={WAIT}s")
        sandbox.kubectl(
            "rollout", "status", "deployment/vault-secrets-webhook", "-n", "vault-system", f"--timeout={WAIT}s"
        )
        install_vault(sandbox, permissive=False)
        install_app(sandbox, inject=False)
        _start_box(sandbox)
        yield sandbox
    finally:
        sandbox.api.close()
        control.down(sandbox.info.state_dir)


@pytest.fixture(scope="module")
def cluster_128(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """kubectl 1.28, which speaks SPDY/3.1 for exec (WebSocket only came with 1.30)."""
    from meshbook.sandbox import control

    sandbox = start_sandbox(tmp_path_factory.mktemp("exec128") / "state", kubernetes_version="1.28")
    try:
        _start_box(sandbox)
        yield sandbox
    finally:
        sandbox.api.close()
        control.down(sandbox.info.state_dir)


def _start_box(sandbox: RunningSandbox) -> None:
    """Pod `box`: `main` and `ticker` running, `quitter` terminated; pod `done` Succeeded (watched)."""
    sandbox.kubectl("apply", "-f", "-", input=BOX)

    def settled(pod: Any) -> bool:
        states = {c.name: c.state for c in pod.status.container_statuses or []}
        return (
            pod.metadata.name == "box"
            and all(name in states for name in ("main", "quitter", "ticker"))
            and states["quitter"].terminated is not None
            and states["main"].running is not None
            and states["ticker"].running is not None
        )

    api = client.CoreV1Api(sandbox.api)
    wait_for(api.list_namespaced_pod, settled, timeout=WAIT, namespace="default")
    succeeded = lambda pod: pod.metadata.name == "done" and pod.status.phase == "Succeeded"  # noqa: E731
    wait_for(api.list_namespaced_pod, succeeded, timeout=WAIT, namespace="default")


def _app_pod(sandbox: RunningSandbox) -> str:
    return sandbox.kubectl("get", "pods", "-n", "app", "-o", "jsonpath={.items[0].metadata.name}").stdout


@pytest.mark.slow
def test_kubectl_refusals_as_a_cluster_gives_them(cluster: RunningSandbox) -> None:
    missing = cluster.kubectl("exec", "box", "-c", "nope", "--", "env", check=False)
    assert (missing.returncode, missing.stderr) == (
        1,
        "Error from server (BadRequest): container nope is not valid for pod box\n",
    )
    completed = cluster.kubectl("exec", "done", "--", "env", check=False)  # kubectl's own check
    assert (completed.returncode, completed.stderr) == (
        1,
        "error: cannot exec into a container in a completed pod; current phase is Succeeded\n",
    )
    stopped = cluster.kubectl("exec", "box", "-c", "quitter", "--", "env", check=False)
    assert (stopped.returncode, stopped.stderr) == (
        1,
        'error: unable to upgrade connection: container not found ("quitter")\n',
    )
    absent = cluster.kubectl("exec", "box", "-c", "main", "--", "curl", "localhost", check=False)
    assert absent.returncode == 1 and (match := START_ERROR.match(absent.stderr.strip())) and match["name"] == "curl"
    failing = cluster.kubectl("exec", "box", "-c", "main", "--", "sh", "-c", "echo partial; exit 3", check=False)
    assert (failing.returncode, failing.stdout, failing.stderr) == (
        3,
        "partial\n",
        "command terminated with exit code 3\n",
    )
    wrong = cluster.kubectl("exec", "-n", "app", _app_pod(cluster), "-c", "app", "--", "vault", "status", check=False)
    assert wrong.returncode == 1 and (match := START_ERROR.match(wrong.stderr.strip())) and match["name"] == "vault"


@pytest.mark.slow
def test_python_client_refusals(cluster: RunningSandbox) -> None:
    api = client.CoreV1Api(cluster.api)
    with pytest.raises(ApiException) as info:
        stream(
            api.connect_get_namespaced_pod_exec,
            "box",
            "default",
            command=["env"],
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
        )
    assert "a container name must be specified for pod box, choose one of: [main quitter ticker]" in str(info.value)
    with pytest.raises(ApiException) as info:
        stream(
            api.connect_get_namespaced_pod_exec,
            "box",
            "default",
            container="main",
            command=["env"],
            stdout=False,
            stderr=False,
            stdin=False,
            tty=False,
        )
    assert "you must specify at least 1 of stdin, stdout, stderr" in str(info.value)
    with pytest.raises(ApiException) as info:
        stream(api.connect_get_namespaced_pod_exec, "done", "default", command=["env"], stdout=True, stderr=True)
    assert "Handshake status 500" in str(info.value) and str(info.value).endswith('container not found ("main")\n')


@pytest.mark.slow
def test_kubectl_output_files_and_stdin(cluster: RunningSandbox) -> None:
    shown = cluster.kubectl("exec", "box", "--", "sh", "-c", "echo $HOSTNAME; env | grep GREET; cat /etc/hostname")
    assert shown.stdout == "box\nGREETING=hi\nbox\n"
    assert shown.stderr == 'Defaulted container "main" out of: main, quitter, ticker\n'
    piped = cluster.kubectl("exec", "-i", "box", "-c", "main", "--", "cat", input="line one\nline two\n")
    assert piped.stdout == "line one\nline two\n"  # kubectl closes stdin (v5 close signal), so cat ends
    grep = cluster.kubectl("exec", "-i", "box", "-c", "main", "--", "grep", "-c", "o", input="one\ntwo\nthree\n")
    assert grep.stdout == "2\n"


@pytest.mark.slow
def test_app_env_shows_the_webhook_variables_and_no_secret(cluster: RunningSandbox) -> None:
    env = cluster.kubectl("exec", "-n", "app", _app_pod(cluster), "-c", "app", "--", "env").stdout
    assert "VAULT_ADDR=https://vault.vault:8200\n" in env and "VAULT_ROLE=" in env
    assert "AWS_SECRET_ACCESS_KEY=vault:" in env  # vault-env resolves it only for the main process
    assert SECRET not in env
    ca = cluster.kubectl(
        "exec", "-n", "app", _app_pod(cluster), "-c", "app", "--", "head", "-n", "1", "/vault/tls/ca.crt"
    )
    assert ca.stdout == "-----BEGIN CERTIFICATE-----\n"  # the webhook's mount of Secret vault-tls


def _root_token(sandbox: RunningSandbox) -> str:
    encoded = sandbox.kubectl(
        "get", "secret", "vault-unseal-keys", "-n", "vault", "-o", "jsonpath={.data.vault-root}"
    ).stdout
    return base64.b64decode(encoded).decode()


@pytest.mark.slow
def test_vault_status_runs_the_real_openbao_cli_without_a_token(cluster: RunningSandbox) -> None:
    status = cluster.kubectl("exec", "-n", "vault", "vault-0", "-c", "vault", "--", "vault", "status")
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in status.stdout.splitlines()[2:] if line.strip())
    assert (rows["Initialized"], rows["Sealed"], rows["Storage Type"]) == ("true", "false", "raft")
    root = _root_token(cluster)
    probe = cluster.kubectl(
        "exec", "-n", "vault", "vault-0", "-c", "vault", "--",
        "sh", "-c", "bao status | grep Sealed; env | grep -c TOKEN; vault token lookup", check=False,
    )  # fmt: skip
    assert probe.stdout.startswith("Sealed                  false\n0\n")
    assert probe.returncode == 2 and "permission denied" in probe.stdout + probe.stderr  # no token was given
    assert root not in status.stdout + probe.stdout + probe.stderr


@pytest.mark.slow
def test_python_client_streams_and_exit_code(cluster: RunningSandbox) -> None:
    api = client.CoreV1Api(cluster.api)
    resp = stream(
        api.connect_get_namespaced_pod_exec, "box", "default", container="main",
        command=["sh", "-c", "echo out; echo err >&2; exit 4"],
        stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False,
    )  # fmt: skip
    resp.run_forever(timeout=WAIT)
    assert (resp.read_stdout(), resp.read_stderr(), resp.returncode) == ("out\n", "err\n", 4)
    resp = stream(
        api.connect_get_namespaced_pod_exec, "box", "default", container="main", command=["cat"],
        stdout=True, stderr=True, stdin=True, tty=False, _preload_content=False,
    )  # fmt: skip
    resp.write_stdin("through stdin\n")
    resp.close_channel(0)  # v5: end of input
    resp.run_forever(timeout=WAIT)
    assert (resp.read_stdout(), resp.returncode) == ("through stdin\n", 0)


def _ws_url(sandbox: RunningSandbox, path: str) -> tuple[str, dict[str, Any]]:
    conf = sandbox.api.configuration
    url = conf.host.replace("https", "wss", 1) + path
    return url, {
        "header": [f"Authorization: {conf.get_api_key_with_prefix('BearerToken')}"],
        "sslopt": {"ca_certs": conf.ssl_ca_cert},
    }


@pytest.mark.slow
def test_a_request_without_upgrade_is_refused_by_the_api_server(cluster: RunningSandbox) -> None:
    api = client.CoreV1Api(cluster.api)
    with pytest.raises(ApiException) as info:  # the generated client sends a plain GET
        api.connect_get_namespaced_pod_exec("box", "default", container="main", command=["env"], stdout=True)
    assert info.value.status == 400
    assert json.loads(info.value.body)["message"] == "Upgrade request required"


@pytest.mark.slow
def test_wire_v4_base64_and_unknown_subprotocol(cluster: RunningSandbox) -> None:
    url, opts = _ws_url(
        cluster, "/api/v1/namespaces/default/pods/box/exec?container=main&command=echo&command=hi&stdout=1"
    )
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(url, subprotocols=["channel.k8s.io"], timeout=WAIT, **opts)
    assert info.value.status_code == 403
    ws = websocket.create_connection(url, subprotocols=["v4.base64.channel.k8s.io"], timeout=WAIT, **opts)
    messages = []
    while (message := ws.recv()) != "":
        messages.append(message)
    assert messages == [
        "1" + base64.b64encode(b"hi\n").decode(),
        "3" + base64.b64encode(b'{"metadata":{},"status":"Success"}').decode(),
    ]


@pytest.mark.slow
def test_attach_streams_output_from_now_on(cluster: RunningSandbox) -> None:
    api = client.CoreV1Api(cluster.api)
    resp = stream(
        api.connect_get_namespaced_pod_attach, "box", "default", container="ticker",
        stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT
        seen = ""
        while "tick\ntick\n" not in seen and time.monotonic() < deadline:
            resp.update(timeout=5)
            seen += resp.read_stdout(timeout=0) or ""
        assert seen.startswith("tick\n") and "tick\ntick\n" in seen
    finally:
        resp.close()


def _drive_pty(sandbox: RunningSandbox, argv: list[str], steps: list[tuple[bytes, bytes]]) -> tuple[bytes, int]:
    """Run kubectl on a pseudo-terminal: type each input, await its expected text, then await the exit.

    kubectl must exit on its own after the last step (within WAIT seconds), else it is killed and the
    test fails.
    """
    env = {
        **os.environ,
        "KUBECONFIG": str(sandbox.kubeconfig),
        "KUBECACHEDIR": str(sandbox.info.state_dir / "kubectl-cache"),
    }
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes kubectl
        os.execve(KUBECTL, [KUBECTL, *argv], env)
    transcript = b""
    ended = False

    def read_once() -> None:
        nonlocal transcript, ended
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            transcript += chunk
            ended = not chunk

    try:
        for typed, expected in steps:
            if typed:
                os.write(fd, typed)
            deadline = time.monotonic() + WAIT
            while expected not in transcript and not ended:
                assert time.monotonic() < deadline, f"never saw {expected!r}; got {transcript!r}"
                read_once()
            assert expected in transcript, f"kubectl ended before {expected!r}; got {transcript!r}"
        deadline = time.monotonic() + WAIT
        while not ended and time.monotonic() < deadline:
            read_once()
        done, status = os.waitpid(pid, os.WNOHANG)
        while not done and time.monotonic() < deadline:
            time.sleep(0.1)  # the child closed its terminal and is exiting; reap it
            done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"kubectl did not exit within {WAIT}s; got {transcript!r}")
        return transcript, os.waitstatus_to_exitcode(status)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_interactive_shell_on_a_terminal(cluster: RunningSandbox) -> None:
    transcript, code = _drive_pty(
        cluster,
        ["exec", "-it", "box", "-c", "main", "--", "sh"],
        [(b"", b"/ # "), (b"echo $GREETING\r", b"hi\r\n/ # "), (b"exit 5\r", b"exit 5\r\n")],
    )
    assert code == 5
    assert transcript.startswith(b"/ # echo $GREETING\r\nhi\r\n/ # exit 5\r\n")


# --- kubectl 1.28: the same over SPDY/3.1 ---------------------------------------------------------------


@pytest.mark.slow
def test_kubectl_128_over_spdy_refusals_first(cluster_128: RunningSandbox) -> None:
    assert cluster_128.kubectl("version", "--client", "-o", "json").stdout.count('"minor": "28"') == 1
    missing = cluster_128.kubectl("exec", "box", "-c", "nope", "--", "env", check=False)
    assert (missing.returncode, missing.stderr) == (
        1,
        "Error from server (BadRequest): container nope is not valid for pod box\n",
    )
    stopped = cluster_128.kubectl("exec", "box", "-c", "quitter", "--", "env", check=False)
    assert (stopped.returncode, stopped.stderr) == (
        1,
        'error: unable to upgrade connection: container not found ("quitter")\n',
    )
    absent = cluster_128.kubectl("exec", "box", "-c", "main", "--", "curl", "localhost", check=False)
    assert absent.returncode == 1 and (match := START_ERROR.match(absent.stderr.strip())) and match["name"] == "curl"
    failing = cluster_128.kubectl(
        "exec", "box", "-c", "main", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False
    )
    assert (failing.returncode, failing.stdout, failing.stderr) == (
        3,
        "out\n",
        "err\ncommand terminated with exit code 3\n",
    )


@pytest.mark.slow
def test_kubectl_128_over_spdy_output_stdin_and_terminal(cluster_128: RunningSandbox) -> None:
    shown = cluster_128.kubectl("exec", "box", "-c", "main", "--", "sh", "-c", "echo $HOSTNAME; env | grep GREET")
    assert shown.stdout == "box\nGREETING=hi\n"
    piped = cluster_128.kubectl("exec", "-i", "box", "-c", "main", "--", "cat", input="line one\nline two\n")
    assert piped.stdout == "line one\nline two\n"  # stdin's FIN ends cat
    transcript, code = _drive_pty(
        cluster_128,
        ["exec", "-it", "box", "-c", "main", "--", "sh"],
        [(b"", b"/ # "), (b"cat /etc/hostname\r", b"box\r\n/ # "), (b"\x04", b"")],  # Ctrl-D ends the shell
    )
    assert code == 0 and transcript.startswith(b"/ # cat /etc/hostname\r\nbox\r\n/ # ")


def _attach_with_kubectl(sandbox: RunningSandbox) -> str:
    """`kubectl attach box -c ticker` until two ticks arrived; it would follow forever, so it is stopped."""
    env = {
        **os.environ,
        "KUBECONFIG": str(sandbox.kubeconfig),
        "KUBECACHEDIR": str(sandbox.info.state_dir / "kubectl-cache"),
    }
    with subprocess.Popen(
        [KUBECTL, "attach", "box", "-c", "ticker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as proc:
        assert proc.stdout is not None
        seen = b""
        try:
            deadline = time.monotonic() + WAIT
            while seen.count(b"tick\n") < 2 and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], 1)
                if ready:
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    assert chunk, f"kubectl attach ended: {proc.stderr.read() if proc.stderr else b''!r}"
                    seen += chunk
        finally:
            proc.terminate()
            proc.wait(WAIT)
    return seen.decode()


@pytest.mark.slow
def test_kubectl_attach_follows_the_container_output(cluster: RunningSandbox) -> None:
    assert _attach_with_kubectl(cluster).startswith("tick\ntick\n")


@pytest.mark.slow
def test_kubectl_128_attach_over_spdy(cluster_128: RunningSandbox) -> None:
    assert _attach_with_kubectl(cluster_128).startswith("tick\ntick\n")
