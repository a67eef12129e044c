"""The container-command interpreter: the guide's commands, sh quoting and status rules, errors."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import pytest

from meshbook.sandbox.node.shell.script import Exit, Output, Sleep, Step, expand_references, parse_command


def run(
    command: list[str], args: list[str] | None = None, env: Mapping[str, str] | None = None, limit: int = 100
) -> list[Step]:
    return list(itertools.islice(parse_command(command, args or []).steps(env or {}), limit))


def sh(script: str, env: Mapping[str, str] | None = None, limit: int = 100) -> list[Step]:
    return run(["sh", "-c", script], env=env, limit=limit)


def err(text: str) -> Output:
    return Output(text, "stderr")


# --- the guide's commands --------------------------------------------------------------------------


def test_echo_secret_then_sleep() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": "s3cr3t/Key+1"}
    steps = sh("echo $AWS_SECRET_ACCESS_KEY && echo going to sleep... && sleep 10000", env)
    assert steps == [Output("s3cr3t/Key+1"), Output("going to sleep..."), Sleep(10000.0), Exit(0)]


def test_init_container_command() -> None:
    steps = run(["sh", "-c", "echo $X && echo initContainers ready"], env={"X": "from-vault"})
    assert steps == [Output("from-vault"), Output("initContainers ready"), Exit(0)]


@pytest.mark.parametrize("shell", ["sh", "/bin/sh", "bash", "/bin/bash", "ash"])
def test_shells_by_name_and_path(shell: str) -> None:
    assert run([shell, "-c", "echo ok; exit 4"]) == [Output("ok"), Exit(4)]


def test_plain_programs() -> None:
    assert run(["sleep", "3600"]) == [Sleep(3600.0), Exit(0)]
    assert run(["echo", "hi"]) == [Output("hi"), Exit(0)]
    assert run(["/bin/echo", "$HOME", "a  b"], env={"HOME": "/root"}) == [Output("$HOME a  b"), Exit(0)]
    assert run(["busybox", "sleep", "2"]) == [Sleep(2.0), Exit(0)]


def test_command_replaces_entrypoint_and_args_are_appended() -> None:
    assert run(["sh", "-c"], ["echo $0 $1 $#", "myname", "one"]) == [Output("myname one 1"), Exit(0)]
    assert run([], ["sleep", "5"]) == [Sleep(5.0), Exit(0)]


def test_unknown_program_runs_forever() -> None:
    script = parse_command(["/vault/vault"], ["server", "-dev"])
    assert script.runs_forever
    assert list(script.steps({})) == [Sleep(math.inf)]
    assert parse_command([], []).runs_forever
    assert list(parse_command([], []).steps({})) == [Sleep(math.inf)]
    assert not parse_command(["sh", "-c", "true"], []).runs_forever


def test_kubernetes_variable_references() -> None:
    env = {"GREETING": "hello"}
    assert expand_references("$(GREETING) $$(GREETING) $(MISSING) $x $(", env) == "hello $(GREETING) $(MISSING) $x $("
    assert run(["echo", "$(GREETING)"], env=env) == [Output("hello"), Exit(0)]
    assert sh("echo $(GREETING)", env) == [Output("hello"), Exit(0)]


# --- quoting and expansion -------------------------------------------------------------------------


def test_quoting() -> None:
    env = {"X": "a   b"}
    assert sh("""echo '$X "q"' "$X" $X \\$X a\\ \\ b""", env) == [Output('$X "q" a   b a b $X a  b'), Exit(0)]
    assert sh("""printf '[%s]' "" '' x; echo""") == [Output("[][][x]"), Exit(0)]
    assert sh("""echo "it's" 'say "hi"' "back\\\\slash \\$X \\q" """, env) == [
        Output("""it's say "hi" back\\slash $X \\q"""),
        Exit(0),
    ]


def test_unquoted_empty_expansion_disappears() -> None:
    assert sh("printf '[%s]' $EMPTY x \"$EMPTY\"; echo", {"EMPTY": ""}) == [Output("[x][]"), Exit(0)]


def test_parameter_forms() -> None:
    env = {"EMPTY": "", "SET": "value"}
    script = (
        "echo ${SET} ${UNSET:-d1} ${EMPTY:-d2} ${EMPTY-d3}. ${SET:+alt} ${UNSET:+alt}. ${#SET}; "
        'echo ${NEW:=made} $NEW "${UNSET:-two  spaces}"'
    )
    assert sh(script, env) == [Output("value d1 d2 . alt . 5"), Output("made made two  spaces"), Exit(0)]


def test_required_parameter_stops_the_script() -> None:
    assert sh("echo start; echo ${TOKEN:?is required}; echo never") == [
        Output("start"),
        err("sh: TOKEN: is required"),
        Exit(2),
    ]


def test_assignments_export_and_env() -> None:
    steps = sh("A=1; B=$A; export C=3; D=4 printenv D; printenv A C; echo $A$B; env", {"E": "5"})
    assert steps == [Output("4"), Output("3"), Output("11"), Output("E=5"), Output("C=3"), Exit(0)]


def test_printenv_missing_variable_status() -> None:
    assert sh("printenv HOME NOPE; echo $?", {"HOME": "/"}) == [Output("/"), Output("1"), Exit(0)]


# --- lists, status and exit ------------------------------------------------------------------------


def test_and_or_lists_and_status() -> None:
    script = "false || echo fallback; true || echo never; false; echo status=$?; false && echo no; echo after=$?"
    assert sh(script) == [Output("fallback"), Output("status=1"), Output("after=1"), Exit(0)]


def test_exit_codes() -> None:
    assert sh("false") == [Exit(1)]
    assert sh("echo a; exit 3; echo never") == [Output("a"), Exit(3)]
    assert sh("exit 300") == [Exit(44)]
    assert sh("false; exit") == [Exit(1)]
    assert sh("exit nope") == [err("sh: exit: Illegal number: nope"), Exit(2)]


def test_exec_replaces_the_shell() -> None:
    assert sh("exec 2>/dev/null; exec echo replaced; echo never") == [Output("replaced"), Exit(0)]
    assert sh("exec false; echo never") == [Exit(1)]


def test_not_found() -> None:
    assert sh("nosuch arg; echo $?") == [err("sh: nosuch: not found"), Output("127"), Exit(0)]
    assert run(["/bin/sh", "-c", "vault-agent"]) == [err("/bin/sh: vault-agent: not found"), Exit(127)]


def test_set_e() -> None:
    assert sh("set -e; echo a; false; echo b") == [Output("a"), Exit(1)]
    assert sh("set -e; false || true; false && true; echo kept") == [Output("kept"), Exit(0)]
    assert run(["sh", "-ec", "nosuch; echo b"]) == [err("sh: nosuch: not found"), Exit(127)]
    assert sh("set -e; set +e; false; echo on") == [Output("on"), Exit(0)]


def test_set_x_traces_commands() -> None:
    assert sh("set -x; echo $X", {"X": "1"}) == [err("+ echo 1"), Output("1"), Exit(0)]


def test_comments_and_newlines() -> None:
    script = "# setup\necho a # trailing\n\n  echo '#not' \\\n  b\n"
    assert sh(script) == [Output("a"), Output("#not b"), Exit(0)]


# --- utilities -------------------------------------------------------------------------------------


def test_echo_options() -> None:
    assert sh("echo -n abc; sleep 1; echo def") == [Output("abc"), Sleep(1.0), Output("def"), Exit(0)]
    assert sh("echo -e 'a\\tb\\nc'; echo 'a\\nb'; echo -e 'x\\cy'; echo") == [
        Output("a\tb"),
        Output("c"),
        Output("a\\nb"),
        Output("x"),
        Exit(0),
    ]


def test_printf() -> None:
    assert sh("printf '%s=%d\\n' a 1 b 2; printf 'n%%\\n'") == [
        Output("a=1"),
        Output("b=2"),
        Output("n%"),
        Exit(0),
    ]
    assert sh("printf '%d\\n' x") == [Output("0"), err("printf: x: invalid number"), Exit(1)]


def test_sleep_forms() -> None:
    assert sh("sleep 0.5; sleep 1m; sleep 1 2") == [Sleep(0.5), Sleep(60.0), Sleep(3.0), Exit(0)]
    assert sh("sleep soon; echo $?") == [err("sleep: invalid number 'soon'"), Output("1"), Exit(0)]
    assert sh("echo up; sleep infinity; echo never") == [Output("up"), Sleep(math.inf)]


def test_true_false_colon_cat() -> None:
    assert sh(": ; true && cat /dev/null && echo ok") == [Output("ok"), Exit(0)]
    assert sh("cat /etc/secret") == [err("cat: can't open '/etc/secret': No such file or directory"), Exit(1)]


def test_redirections() -> None:
    script = "echo hidden >/dev/null; echo to-err >&2; nosuch 2>/dev/null; echo $?; echo both >/dev/null 2>&1"
    assert sh(script) == [err("to-err"), Output("127"), Exit(0)]


# --- compound commands -----------------------------------------------------------------------------


def test_if_for_and_test() -> None:
    script = (
        'for i in 1 2 3; do if [ "$i" = 2 ]; then echo two; elif test $i -gt 2; then echo big; else echo $i; fi; done'
    )
    assert sh(script) == [Output("1"), Output("two"), Output("big"), Exit(0)]


def test_while_loop_is_lazy() -> None:
    steps = sh("while true; do echo tick; sleep 1; done", limit=5)
    assert steps == [Output("tick"), Sleep(1.0), Output("tick"), Sleep(1.0), Output("tick")]


def test_busy_loop_runs_forever() -> None:
    assert sh("echo start; while :; do :; done") == [Output("start"), Sleep(math.inf)]


def test_until_loop_ends() -> None:
    assert sh('until [ -n "$DONE" ]; do DONE=1; echo once; done; echo end') == [
        Output("once"),
        Output("end"),
        Exit(0),
    ]


# --- syntax errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("echo 'open", "sh: syntax error: unterminated quoted string"),
        ('echo "open', "sh: syntax error: unterminated quoted string"),
        ("&& echo", 'sh: syntax error: unexpected "&&"'),
        ("echo a &&", "sh: syntax error: unexpected end of file"),
        ("echo a; ; echo b", 'sh: syntax error: unexpected ";"'),
        ("if true; then echo a", "sh: syntax error: unexpected end of file"),
        ("echo ${", "sh: syntax error: bad substitution"),
        ("echo a |", "sh: syntax error: unexpected end of file"),
        ("| cat", 'sh: syntax error: unexpected "|"'),
        (
            "echo $(date)",
            "sh: syntax error: command substitution $(...) is not supported by the sandbox shell",
        ),
        ("sleep 1 &", 'sh: syntax error: background "&" is not supported by the sandbox shell'),
    ],
)
def test_syntax_errors(script: str, message: str) -> None:
    assert sh(f"echo never; {script}") == [err(message), Exit(2)]


def test_pipelines_feed_each_stage_the_output_of_the_one_before() -> None:
    """Pipes were refused before exec needed `env | grep VAULT`; now they run stage after stage."""
    env = {"VAULT_ADDR": "https://vault.vault:8200", "OTHER": "x", "VAULT_ROLE": "app"}
    assert sh("env | grep VAULT_ | wc -l", env) == [Output("2"), Exit(0)]
    assert sh("env | grep -c NOPE", env) == [Output("0"), Exit(1)]
    assert sh("printf 'a\\nb\\nc\\n' | head -n 2 | tail -n 1") == [Output("b"), Exit(0)]
    assert sh("echo x | grep -q y || echo none") == [Output("none"), Exit(0)]
    assert sh("echo a | cat /missing") == [err("cat: can't open '/missing': No such file or directory"), Exit(1)]
    assert sh("exit 3 | true; echo still $?") == [Output("still 0"), Exit(0)]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("printf 'Ab\\nab\\ncd\\n' | grep -i ab", [Output("Ab"), Output("ab"), Exit(0)]),
        ("printf 'ab\\ncd\\n' | grep -vn ab", [Output("2:cd"), Exit(0)]),
        ("printf 'ab\\nabc\\n' | grep -x ab", [Output("ab"), Exit(0)]),
        ("printf 'ab\\ncd\\nef\\n' | grep 'ab\\|ef'", [Output("ab"), Output("ef"), Exit(0)]),
        ("printf 'a+b\\n' | grep -F a+b", [Output("a+b"), Exit(0)]),
        ("echo x | grep -z x", [err("grep: invalid option -- 'z'"), Exit(2)]),
        ("echo '(' | grep '('", [Output("("), Exit(0)]),  # literal in a basic regex
        ("echo x | grep -E '('", [err("grep: bad regex '(': missing ), unterminated subpattern"), Exit(2)]),
        ("grep x /missing", [err("grep: /missing: No such file or directory"), Exit(2)]),
        ("printf '1\\n2\\n3\\n' | tail -2", [Output("2"), Output("3"), Exit(0)]),
        ("echo a b | wc", [Output("      1       2       4"), Exit(0)]),
        ("head -n x", [err("head: invalid number 'x'"), Exit(1)]),
        ("hostname", [Output("box"), Exit(0)]),
    ],
)
def test_filters_as_busybox_runs_them(script: str, expected: list[Step]) -> None:
    assert sh(script, {"HOSTNAME": "box"}) == expected


def test_shell_usage_errors_never_raise() -> None:
    assert run(["sh", "-c"]) == [err("sh: -c requires an argument"), Exit(2)]
    assert run(["sh", "/start.sh"]) == [err("sh: can't open '/start.sh': No such file or directory"), Exit(2)]
    assert run(["sh"]) == [Exit(0)]
