"""MkDocs hooks of the docs site (``mkdocs.yml``: ``hooks:``).

The CLI reference page (``reference/cli.md``) is generated at build time from the typer
app itself: ``twin --help`` and the help of every command and sub-command, as click
renders it, so the page cannot drift from the code. It is never written to ``docs/``.

The file-format pages name each format's current schema version as ``{{ schema.run }}``,
``{{ schema.estimate }}`` and ``{{ schema.dataset }}``: filled in from the code's own
``SCHEMA_VERSION`` at build time, so a version bump cannot leave the pages behind.

The docstrings name code with Sphinx roles (``:func:`read_run```); the API pages show
the name alone, in code font (``:func:`` and a ``~`` prefix dropped).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer.main

CLI_PAGE = "reference/cli.md"
#: Columns of the rendered help (wide enough that option help is rarely wrapped).
HELP_WIDTH = 100


#: A click command as typer builds it (typer >= 0.29 carries its own copy of click, so
#: the types are duck-typed: ``list_commands``/``get_command`` make a group).
Command = Any


def iter_commands(
    command: Command, path: tuple[str, ...] = ("twin",), parents: tuple[Command, ...] = (),
) -> Iterator[tuple[tuple[str, ...], tuple[Command, ...]]]:
    """``(path, commands along it)`` for the root command and every command below it,
    in the order ``--help`` lists them."""
    chain = (*parents, command)
    yield path, chain
    if hasattr(command, "list_commands"):
        ctx = command.context_class(command, info_name=path[-1])
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from iter_commands(sub, (*path, name), chain)


def help_text(path: tuple[str, ...], chain: tuple[Command, ...]) -> str:
    """The command's ``--help`` output, as a terminal ``HELP_WIDTH`` columns wide shows it."""
    ctx = None
    for name, command in zip(path, chain, strict=True):
        ctx = command.context_class(command, info_name=name, parent=ctx,
                                    terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH)
    assert ctx is not None
    return str(chain[-1].get_help(ctx)).rstrip()


def cli_reference_markdown() -> str:
    """The CLI reference page: one section per command, its help in a code block."""
    from twin.cli import app

    root = typer.main.get_command(app)
    commands = list(iter_commands(root))
    lines = [
        "# Command-line reference",
        "",
        "Generated when the site is built, from the `twin` typer app "
        "(`twin.cli.app`): each section is that command's `--help`. Errors a user "
        "can cause print one `error:` line and exit with code 2 "
        "([guarantees](../GUARANTEES.md)).",
        "",
    ]
    lines += [f"* [`{' '.join(p)}`](#{'-'.join(p)})" for p, _ in commands[1:]]
    for path, chain in commands:
        name = " ".join(path)
        lines += ["", f"## `{name}` {{#{'-'.join(path)}}}", "", "```text",
                  help_text(path, chain), "```"]
    return "\n".join(lines) + "\n"


def schema_versions() -> dict[str, str]:
    """The placeholders of the format pages and the schema versions they stand for."""
    from twin.dataset.config import SCHEMA_VERSION as DATASET
    from twin.estimatefile import SCHEMA_VERSION as ESTIMATE
    from twin.runfile import SCHEMA_VERSION as RUN

    return {"{{ schema.run }}": str(RUN), "{{ schema.estimate }}": str(ESTIMATE),
            "{{ schema.dataset }}": str(DATASET)}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill in the schema versions (see the module docstring)."""
    for placeholder, value in schema_versions().items():
        markdown = markdown.replace(placeholder, value)
    return markdown


#: A Sphinx role left before a code span in the rendered HTML, and a ``~`` that starts one.
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|data|mod|attr|obj|exc|const):(<code>)~?")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Drop the Sphinx roles of the docstrings (see the module docstring)."""
    return _ROLE.sub(r"\1", html)


def on_files(files: Any, config: Any) -> Any:
    """Add the generated CLI reference page to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, CLI_PAGE, content=cli_reference_markdown()))
    return files
