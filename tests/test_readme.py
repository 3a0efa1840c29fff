"""The README's promises that a test can hold: CI runs exactly its test command, and its
tutorial client snippets chat with a rich client as written."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from wire import rich_client

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("```sh") + 1
    return lines[start : start + 2]


def test_readme_starts_with_two_commands() -> None:
    run, test = readme_commands()
    assert run.startswith("python3 -m pip install -r requirements.txt && ")
    assert test == "python3 -m pip install -r requirements.txt && python3 -m pytest"


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci_lines


# --- the tutorial clients of "Clients of the classic tutorials", run as written ----------

#: Put before a snippet: its input() returns these lines, each after its pause (a person
#: typing), and ends the program after the last.
TYPIST = """
import builtins, time
_script = iter(SCRIPT)
def _typed(prompt=""):
    try:
        pause, line = next(_script)
    except StopIteration:
        raise SystemExit(0)
    time.sleep(pause)
    return line
builtins.input = _typed
"""


def python_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Clients of the classic tutorials", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


def run_snippet(code: str, port: int, script: list[tuple[float, str]]) -> str:
    program = f"SCRIPT = {script!r}\n{TYPIST}\n" + code.replace("5050", str(port))
    proc = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=False
    )
    return proc.stdout


@pytest.mark.timeout(60)
def test_the_readme_tutorial_clients_chat_with_a_rich_client(server) -> None:  # type: ignore[no-untyped-def]
    tutorial, select = python_snippets()
    port = server.address[1]
    alice, _ = rich_client(server.address, "alice")
    answered: list[str] = []

    def answer() -> None:  # alice answers each of them once she hears them
        for _ in range(2):
            chat = alice.recv_until(lambda m: m["type"] == "chat")
            answered.append(chat["text"])
            alice.send_json(type="chat", text=f"hi {chat['nick']}", id=len(answered))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    out = run_snippet(tutorial, port, [(0.2, "hello from tut"), (1.5, "quit")])
    assert "Message was Sent!" in out and "alice: hi guest-1" in out, out
    out = run_snippet(select, port, [(0, "bob"), (0.3, "hello from bob"), (1.5, "")])
    assert "alice > hi bob" in out, out
    thread.join(10)
    assert answered == ["hello from tut", "hello from bob"]
    alice.close()
