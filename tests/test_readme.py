"""The README's promises that a test can hold: CI runs exactly its test command."""

from pathlib import Path

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
