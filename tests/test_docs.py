"""The docs cannot drift: generated tables match the code, the README's commands parse against the ``tumorca``
command (and its first one runs as written), and no file points at documents outside the repository."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest

import tumorca
from tumorca import _docgen

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


# ---- generated parts ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rel", sorted(_docgen.BLOCKS))
def test_generated_parts_match_the_code(rel):
    old, new = _docgen.generate(ROOT)[ROOT / rel]
    if old != new:
        diff = [f"- {a}\n+ {b}" for a, b in zip(old.splitlines(), new.splitlines()) if a != b][:3]
        pytest.fail(f"{rel} is stale; regenerate it with `{_docgen.REGENERATE}` in the repository root. First "
                    "differences:\n" + "\n".join(diff))


def test_generated_tables_hold_every_parameter_rate_and_command():
    """Against the sources themselves, so a generator that drops rows cannot pass."""
    from tumorca.cli import cli

    model = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
    for spec in tumorca.PARAMETERS:
        assert f"| `{spec.name}` | " in model, spec.name
    for key in tumorca.Params().rates():
        assert f"`{key}`" in model.split("<!-- BEGIN RATES -->")[1].split("<!-- END RATES -->")[0], key
    commands = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8").split("<!-- BEGIN COMMANDS -->")[1]
    commands = commands.split("<!-- END COMMANDS -->")[0]
    listed = re.findall(r"^\| `tumorca (\S+)` \|", commands, flags=re.M)
    assert sorted(listed) == sorted(cli.list_commands(click.Context(cli))) and len(listed) >= 11


def test_splice_replaces_only_between_its_markers():
    text = "a\n<!-- BEGIN X -->\nold\n<!-- END X -->\nb\n"
    assert _docgen.splice(text, "X", "new\nrows") == "a\n<!-- BEGIN X -->\nnew\nrows\n<!-- END X -->\nb\n"
    for bad in ("a\n", text + text, "<!-- END X -->\n<!-- BEGIN X -->\n"):
        with pytest.raises(ValueError, match="BEGIN X"):
            _docgen.splice(bad, "X", "new")


def test_check_mode_reports_a_stale_file_and_the_command(tmp_path, capsys):
    for rel in _docgen.BLOCKS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text(encoding="utf-8"), encoding="utf-8")
    assert _docgen.main([str(tmp_path), "--check"]) == 0
    cli_md = tmp_path / "docs" / "cli.md"
    cli_md.write_text(cli_md.read_text(encoding="utf-8").replace("| `tumorca run` |", "| `tumorca runs` |"))
    assert _docgen.main([str(tmp_path), "--check"]) == 1
    assert _docgen.REGENERATE in capsys.readouterr().out
    assert _docgen.main([str(tmp_path)]) == 0 and _docgen.main([str(tmp_path), "--check"]) == 0
    assert cli_md.read_text(encoding="utf-8") == (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


# ---- no pointers to documents outside the repository ----------------------------------------------------------

#: Names of documents that are not in the repository, and ways of pointing outside it.
OUTSIDE = re.compile(r"\b(?:MODEL|CONVENTIONS|VESSELS|O2-SOLVER)\.md\b|\.\./shared|/work/shared|\bMODEL(?:'s)? §"
                     r"|\bthe spec\b")
SCANNED = ("README.md", "pyproject.toml", "setup.py", ".ci", "docs", "src", "ext", "scripts", "tests")
TEXT_SUFFIXES = {".py", ".pyx", ".pxd", ".h", ".md", ".toml", ".cfg", ".txt", ".sh", ".rst", ""}


def _scanned_files():
    for top in SCANNED:
        path = ROOT / top
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            # .c files next to .pyx ones are Cython's output (they repeat the .pyx comments)
            # (this file names the patterns it looks for)
            if f.suffix in TEXT_SUFFIXES and "build" not in f.parts and "__pycache__" not in f.parts \
                    and f != Path(__file__).resolve():
                yield f


def test_no_pointer_to_documents_outside_the_repository():
    """The docs in this repository are the whole truth: no file cites a spec kept elsewhere."""
    found = []
    for f in _scanned_files():
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not found, "pointers to documents outside the repository (say it in docs/ and point there):\n" + \
        "\n".join(found)


def test_the_pointer_pattern_catches_what_it_must():
    for line in ["see MODEL.md §4", "(CONVENTIONS.md: chunks)", "O2-SOLVER.md measured", "/work/shared/docs",
                 "../shared/x", "VESSELS.md", "MODEL §4.3 gives", "MODEL's §2", "as the spec says"]:
        assert OUTSIDE.search(line), line
    for line in ["docs/model.md §4", "the specification in reference.py", "a sweep spec", "docs/o2-solver.md"]:
        assert not OUTSIDE.search(line), line


# ---- the README's two commands --------------------------------------------------------------------------------

def readme_blocks() -> dict[str, list[str]]:
    """The README's bash code blocks, by the ``##`` heading they sit under."""
    out: dict[str, list[str]] = {}
    heading = ""
    for m in re.finditer(r"^## ([^\n]+)$|^```bash\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S):
        if m.group(1):
            heading = m.group(1).strip()
        else:
            out.setdefault(heading, []).append(m.group(2))
    return out


def install_and_run_command() -> str:
    """The README's first command: install, run a simulation on the defaults and draw it."""
    first = [blocks[0] for heading, blocks in readme_blocks().items() if heading.startswith("Install, run")]
    assert len(first) == 1, "README.md: no '## Install, run ...' section with a bash block"
    lines = [ln for ln in first[0].splitlines() if ln.strip()]
    assert len(lines) == 1, "the first command is one line"
    return lines[0]


def readme_test_command() -> str:
    """The README's command that installs and runs the tests."""
    blocks = readme_blocks()["Install for development and run the tests"]
    return blocks[0].strip()


def segments(line: str) -> list[list[str]]:
    """A shell line split at ``&&`` and ``;`` into argument lists, a trailing ``# comment`` dropped."""
    line = line.split("  #")[0].split(" # ")[0]
    return [shlex.split(part) for part in re.split(r"&&|;", line) if part.strip()]


def tumorca_argvs(line: str) -> list[list[str]]:
    """The ``tumorca ...`` commands of a line (also after ``mpiexec -n P``), without the word ``tumorca``."""
    out = []
    for argv in segments(line):
        if argv[:1] == ["mpiexec"]:
            argv = argv[3:]
        if argv[:1] == ["tumorca"]:
            out.append(argv[1:])
    return out


def parse_with_click(argv: list[str]) -> None:
    """Parse ``tumorca argv`` as the command would, without running it: unknown commands or options, missing
    required options and bad values raise :class:`click.ClickException`."""
    from tumorca.cli import cli

    ctx = click.Context(cli, info_name="tumorca")
    command = cli.get_command(ctx, argv[0])
    if command is None:
        raise click.UsageError(f"no command {argv[0]!r}")
    command.make_context(argv[0], list(argv[1:]), parent=ctx).close()


def test_readme_first_command_installs_runs_on_the_defaults_and_draws():
    argvs = segments(install_and_run_command())
    assert argvs[0][:2] == ["pip", "install"], argvs[0]
    extras = re.fullmatch(r"\.\[(.*)\]", argvs[0][-1])
    assert extras, argvs[0]
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert "plot" in extras.group(1).split(",") and set(extras.group(1).split(",")) <= set(optional)
    run, plot = tumorca_argvs(install_and_run_command())
    assert run[0] == "run" and not [a for a in run if a.startswith("--") and a not in ("--output",)], \
        "the README's run uses the defaults: no option other than the output"
    assert plot[0] == "plot" and plot[1] == run[run.index("-o") + 1]
    for argv in (run, plot):
        parse_with_click(argv)


def test_every_readme_tumorca_command_parses(tmp_path, monkeypatch):
    """Every ``tumorca`` line of the README's examples is valid for the command as it is."""
    monkeypatch.chdir(ROOT)  # the examples name files of the repository (docs/examples/...)
    argvs = [argv for blocks in readme_blocks().values() for block in blocks for line in block.splitlines()
             for argv in tumorca_argvs(line)]
    assert len(argvs) >= 12
    for argv in argvs:
        try:
            parse_with_click(argv)
        except click.ClickException as exc:
            pytest.fail(f"README.md: `tumorca {shlex.join(argv)}`: {exc.format_message()}")


def test_readme_test_command_is_what_ci_runs():
    line = readme_test_command()
    assert segments(line) == [["pip", "install", "-e", ".[test]"], ["python", "-m", "pytest"]]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "python -m pip install -q -e '.[test]'" in ci and "python -m pytest" in ci
    fast = [b.strip() for b in readme_blocks()["Install for development and run the tests"][1:]]
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    registered = {m.split(":")[0] for m in markers["markers"]}
    assert fast == ['python -m pytest -m "not slow and not mpi and not dask and not subprocess"']
    assert set(re.findall(r"not (\w+)", fast[0])) == registered


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.timeout(600)  # measured 42 s (35 s the run, the rest the picture)
def test_readme_first_command_runs_as_written(tmp_path):
    """The ``tumorca`` part of the README's first command, run as written (the install is this test's own), in an
    empty folder: a 10-day 256x256 run and its picture."""
    # the tumorca under test, whether installed or on PYTHONPATH
    src = str(Path(tumorca.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    for argv in tumorca_argvs(install_and_run_command()):
        res = subprocess.run([sys.executable, "-m", "tumorca.cli", *argv], cwd=tmp_path, capture_output=True,
                             text=True, env=env, timeout=280)
        assert res.returncode == 0, (argv, res.stderr[-2000:])
    import h5py
    import matplotlib.image

    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f["run/status"][()] == b"complete" and f["time"].shape[0] == 11  # 10 days, a frame a day
    picture = matplotlib.image.imread(tmp_path / "run.png")
    assert picture.ndim == 3 and min(picture.shape[:2]) >= 200
    # a drawing, not a blank canvas: many distinct colours
    assert len(np.unique(picture.reshape(-1, picture.shape[2]), axis=0)) > 20
