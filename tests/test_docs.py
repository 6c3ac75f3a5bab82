"""The docs site's generated parts and the README's links (the strict ``make docs`` build
checks every link inside the site; these check what it cannot see)."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
import yaml

from scripts.mkdocs_hooks import cli_reference_markdown, iter_commands, on_page_markdown
from twin.cli import app
from twin.dataset.config import SCHEMA_VERSION as DATASET_SCHEMA
from twin.estimatefile import SCHEMA_VERSION as ESTIMATE_SCHEMA
from twin.runfile import SCHEMA_VERSION as RUN_SCHEMA

ROOT = Path(__file__).resolve().parents[1]


def _walk(group: typer.Typer, path: tuple[str, ...]) -> set[tuple[str, ...]]:
    """Every command path registered on the typer app, read from typer's own registry
    (not from the click object the page is generated from)."""
    found = set()
    for info in group.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        found.add((*path, name))
    for sub in group.registered_groups:
        assert sub.name is not None and sub.typer_instance is not None
        found.add((*path, sub.name))
        found |= _walk(sub.typer_instance, (*path, sub.name))
    return found


def test_cli_reference_lists_every_command_and_option() -> None:
    page = cli_reference_markdown()
    commands = _walk(app, ("twin",))
    assert {("twin", "simulate"), ("twin", "scene", "osm"), ("twin", "export", "deepmimo")} \
        <= commands
    for path in commands:
        assert f"## `{' '.join(path)}` {{#{'-'.join(path)}}}" in page, path
    # Each command's section holds its usage line and every option it takes.
    sections = dict(re.findall(r"^## `([^`]+)` \{#[^}]+\}\n\n```text\n(.*?)\n```", page,
                               flags=re.M | re.S))
    for path, chain in iter_commands(typer.main.get_command(app)):
        text = sections[" ".join(path)]
        assert text.startswith(f"Usage: {' '.join(path)} "), text[:80]
        for param in chain[-1].params:
            for flag in param.opts if param.param_type_name == "option" else ():
                assert flag in text, (path, flag)


def test_format_pages_get_the_code_s_schema_versions() -> None:
    markdown = on_page_markdown(
        "run {{ schema.run }}, estimate {{ schema.estimate }}, dataset {{ schema.dataset }}",
        None, None, None)
    assert markdown == f"run {RUN_SCHEMA}, estimate {ESTIMATE_SCHEMA}, dataset {DATASET_SCHEMA}"
    for page in ("run", "estimate", "dataset"):
        assert "{{ schema." in (ROOT / "docs" / "formats" / f"{page}.md").read_text()


def test_readme_links_and_nav_pages_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = [t for t in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in t]
    assert any(t.startswith("docs/") for t in links)
    for target in links:
        assert (ROOT / target.split("#")[0]).exists(), target
    # The full loader: mkdocs.yml names a Python function (the heading slugify).
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.Loader)

    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        if isinstance(node, dict):
            return [p for value in node.values() for p in pages(value)]
        return []

    generated = {"reference/cli.md"}
    for page in pages(config["nav"]):
        assert page in generated or (ROOT / "docs" / page).is_file(), page
