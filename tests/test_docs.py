"""The code snippets of README.md, docs/*.md and docs/notes/*.md.

Python snippets are executed (in a folder holding a freshly exported tiny run
at runs/default, which the plain-Keras snippet opens). Shell snippets are
checked line by line: every flag of a `wgimask`, `train.py`, `evaluate.py`,
`benchmarks/` or `recipes/` command must be one that program defines; the
README's main command (`wgimask --example`) runs in test_pretrained.py.
Commands that need other software (pip, Docker, curl, TensorBoard, apt) and
environment settings (export) are
listed in `NOT_RUN` and only checked for existing.
"""

import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCUMENTS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "docs" / "notes").glob("*.md")),
]
NOT_RUN = (
    "pip",
    "docker",
    "curl",
    "tensorboard",
    "saved_model_cli",
    "sudo",
    "ruff",
    "export",
)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _snippets(language):
    found = []
    for document in DOCUMENTS:
        for match in FENCE.finditer(document.read_text()):
            if match.group(1) == language:
                name = f"{document.relative_to(REPO)}:{match.start()}"
                found.append(pytest.param(match.group(2), id=name))
    return found


def _commands():
    """(program, flags, where) for every shell line of every document."""
    commands = []
    for param in _snippets("bash"):
        text = param.values[0].replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line.startswith("#"):
                continue
            for part in re.split(r"&&|\|\|", line):
                words = shlex.split(part)
                # Environment settings before the program (OMP_NUM_THREADS=1).
                while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                    words = words[1:]
                if words:
                    commands.append((words, param.id))
    return commands


@pytest.fixture(scope="module")
def workdir(tiny_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    shutil.copytree(tiny_run, folder / "runs" / "default")
    return folder


@pytest.mark.parametrize("code", _snippets("python"))
def test_python_snippets_run(code, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})
    printed = capsys.readouterr().out
    # A "# result" comment on a print line states what it prints.
    for line in code.splitlines():
        if line.startswith("print(") and "  # " in line:
            assert line.split("  # ", 1)[1].strip() in printed


def _flag_names(words):
    return [w[2:].split("=")[0] for w in words if w.startswith("--")]


def test_wgimask_commands_use_existing_flags():
    from wgimask import cli

    lines = [(w, where) for w, where in _commands() if w[0] == "wgimask"]
    assert lines, "the README shows the command"
    for words, where in lines:
        for name in _flag_names(words):
            bare = name[2:] if name.startswith("no") and name[2:] in cli.FLAGS else name
            assert name == "help" or bare in cli.FLAGS, (where, name)


@pytest.mark.slow
def test_script_commands_use_existing_flags():
    scripts = {}
    for words, where in _commands():
        if words[0] in NOT_RUN or words[0] == "wgimask":
            continue
        assert words[0] == "python", (where, words)
        if words[1] == "-m":
            if not words[2].startswith("benchmarks."):
                continue  # python -m pytest, python -m wgimask.serve.lite
            # A benchmark runs as a module: its file must exist.
            path = REPO / (words[2].replace(".", "/") + ".py")
            assert path.is_file(), (where, words[2])
            scripts.setdefault(("-m", words[2]), []).append((words, where))
            continue
        path = REPO / words[1]
        assert path.is_file(), (where, words[1])
        scripts.setdefault((words[1],), []).append((words, where))
    for script, uses in scripts.items():
        done = subprocess.run(
            [sys.executable, *script, "--help"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )
        help_text = done.stdout
        if script in (("train.py",), ("evaluate.py",)):
            # Their own flags with defaults, exit 0, no TensorFlow log block.
            assert done.returncode == 0, done.stderr
            assert "(default:" in help_text and "oneDNN" not in done.stderr
        for words, where in uses:
            for name in _flag_names(words):
                assert f"--{name}" in help_text or f"--[no]{name}" in help_text, (
                    where,
                    script,
                    name,
                )


def test_every_test_a_document_names_exists():
    named = []
    for document in DOCUMENTS:
        named += re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", document.read_text())
    assert named, "docs/reliability.md names the test behind each promise"
    for path, name in named:
        assert f"def {name}(" in (REPO / path).read_text(), (path, name)
