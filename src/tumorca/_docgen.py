"""The parts of the documentation that are generated from the code, so that they cannot drift from it.

Each generated part sits in a Markdown file between two marker comments::

    <!-- BEGIN PARAMETERS -->
    ...generated text...
    <!-- END PARAMETERS -->

``python -m tumorca._docgen`` (run in the repository root) rewrites every such part; ``--check`` only reports the
files that differ and exits with status 1 if any does.  ``tests/test_docs.py`` runs the same check, so a change to
a parameter, a derived rate or a command fails the tests until the docs are regenerated.

The generated parts are the parameter tables and the derived per-step constants of ``docs/model.md``
(from :data:`tumorca.PARAMETERS` and :meth:`tumorca.Params.rates`) and the command list of ``docs/cli.md`` (from the
``tumorca`` Click group).
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

#: The command that rewrites every generated part; error messages quote it.
REGENERATE = "python -m tumorca._docgen"

#: Definitions of the derived per-step constants of :meth:`tumorca.Params.rates`, one row per tuple of keys.  A key
#: that ``rates()`` returns and no row names makes :func:`rate_table` fail, so a new constant must be defined here.
RATE_DEFINITIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("o2_k",), "D_O2/Δx² (1/min)"),
    (("p_div_max",), "1 − exp(−`tumor_cycle_rate`·Δt)"),
    (("p_nec_max",), "1 − exp(−`necrosis_rate_max`·Δt)"),
    (("q_death_steps",), "max(1, ⌈`quiescent_death_time`/Δt⌉)"),
    (("vegf_alpha", "mmp9_alpha", "cxcl_alpha"), "D·Δt/Δx²"),
    (("vegf_gain", "mmp9_gain", "cxcl_gain"), "1/(1 + λ·Δt)"),
    (("vegf_bound_gain",), "1/(1 + `vegf_bound_decay`·Δt)"),
    (("vegf_dt_free", "vegf_dt_bound"), "Δt·(1 − f_b), Δt·f_b"),
    (("krel_dt",), "`vegf_release_rate`·Δt"),
    (("regress_steps",), "max(1, ⌈`vessel_regression_time`/Δt⌉)"),
    (("p_coopt_regress",), "1 − exp(−`coopt_regression_rate`·Δt)"),
    (("p_sprout_max",), "1 − exp(−`sprout_rate`·Δt)"),
    (("exclusion_sites",), "`sprout_exclusion`/Δx"),
    (("p_kill_max",), "1 − exp(−`neut_kill_rate`·Δt)"),
    (("g_pol",), "exp(−Δt/`neut_polarization_time`)"),
)


def _value(v) -> str:
    """A default or a derived value as the tables print it: strings in backticks, floats to 6 significant digits."""
    if isinstance(v, str):
        return f"`{v}`"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _row(cells) -> str:
    # a '|' inside a cell would end the cell in Markdown
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def parameter_tables() -> str:
    """One Markdown table per parameter group, in the order of :data:`tumorca.PARAMETERS`.

    Returns
    -------
    str
        For each group a ``#### group`` heading and a table of name, default, unit, range, meaning and source.
    """
    from tumorca import PARAMETERS

    out = []
    for group in dict.fromkeys(s.group for s in PARAMETERS):
        out += [f"#### {group}", "", "| name | default | unit | range | meaning | source |",
                "|---|---|---|---|---|---|"]
        out += [_row([f"`{s.name}`", _value(s.default), s.unit or "–", s.describe_range(), s.doc, s.source or "–"])
                for s in PARAMETERS if s.group == group]
        out.append("")
    return "\n".join(out).rstrip("\n")


def rate_table() -> str:
    """The derived per-step constants at the default parameters (:meth:`tumorca.Params.rates`).

    Returns
    -------
    str
        A Markdown table of key(s), value(s) and definition.

    Raises
    ------
    KeyError
        If ``rates()`` returns a key that :data:`RATE_DEFINITIONS` does not define, or no longer returns one it does.
    """
    from tumorca import Params

    rates = Params().rates()
    named = [k for keys, _ in RATE_DEFINITIONS for k in keys]
    if set(named) != set(rates):
        raise KeyError(f"tumorca._docgen.RATE_DEFINITIONS names {sorted(set(named) - set(rates))} that rates() does "
                       f"not return and misses {sorted(set(rates) - set(named))}: define each derived constant there")
    out = ["| key | value | definition |", "|---|---|---|"]
    out += [_row([", ".join(f"`{k}`" for k in keys), ", ".join(_value(rates[k]) for k in keys), text])
            for keys, text in RATE_DEFINITIONS]
    return "\n".join(out)


def command_table() -> str:
    """Every command of the ``tumorca`` Click group with the first sentence of its help.

    Returns
    -------
    str
        A Markdown table of command and what it does, in the order ``tumorca --help`` lists them.
    """
    import click

    from tumorca.cli import cli

    ctx = click.Context(cli, info_name="tumorca")
    out = ["| command | what it does |", "|---|---|"]
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        # a limit longer than any help: Click then stops at the end of the first sentence, without '...'
        out.append(_row([f"`tumorca {name}`", command.get_short_help_str(limit=10_000)]))
    return "\n".join(out)


#: Generated parts: file (relative to the repository root) -> marker name -> generator.
BLOCKS: dict[str, dict[str, Callable[[], str]]] = {
    "docs/model.md": {"PARAMETERS": parameter_tables, "RATES": rate_table},
    "docs/cli.md": {"COMMANDS": command_table},
}


def splice(text: str, name: str, body: str) -> str:
    """Replace what lies between the ``BEGIN name`` and ``END name`` marker comments of ``text`` with ``body``.

    Parameters
    ----------
    text : str
        The whole Markdown file.
    name : str
        The marker name, e.g. ``"PARAMETERS"``.
    body : str
        The generated text, without the markers.

    Returns
    -------
    str
        ``text`` with the part replaced; the markers stay on their own lines.

    Raises
    ------
    ValueError
        If the pair of markers is missing, repeated or out of order.
    """
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"expected exactly one {begin} ... {end} pair, in that order")
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.S)
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def generate(root: Path) -> dict[Path, tuple[str, str]]:
    """The current and the regenerated text of every file with generated parts.

    Parameters
    ----------
    root : Path
        The repository root (the folder holding ``docs/``).

    Returns
    -------
    dict
        Path -> (text on disk, text with every generated part regenerated).
    """
    out = {}
    for rel, blocks in BLOCKS.items():
        path = Path(root) / rel
        old = new = path.read_text(encoding="utf-8")
        for name, make in blocks.items():
            try:
                new = splice(new, name, make())
            except ValueError as exc:
                raise ValueError(f"{rel}: {exc}") from None
        out[path] = (old, new)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: rewrite the generated parts, or with ``--check`` list the stale files.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 if every file is (now) up to date, 1 with ``--check`` if some file differs.
    """
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default=".", help="repository root (default: the current directory)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a generated part is stale")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / "docs").is_dir():
        parser.error(f"{root.resolve()} has no docs/ folder: run this in the repository root or pass it")
    stale = 0
    for path, (old, new) in generate(root).items():
        if old == new:
            continue
        stale += 1
        if args.check:
            print(f"{path}: generated parts differ from the code; regenerate with: {REGENERATE}")
        else:
            path.write_text(new, encoding="utf-8")
            print(f"rewrote {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
