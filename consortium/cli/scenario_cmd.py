"""`consortium scenario list / show / run`: the scripted business flows of DOMAIN.md."""

from __future__ import annotations

import asyncio

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from consortium.cli.common import ConsortiumGroup, config_option, json_option, load, print_json
from consortium.config import NetworkConfig
from consortium.keys import KeyDirectory
from consortium.scenarios.helpers import HELPERS
from consortium.scenarios.loader import builtin_scenarios, builtin_source, resolve
from consortium.scenarios.model import Scenario
from consortium.scenarios.narration import Narrator, RichNarrator, SilentNarrator
from consortium.scenarios.results import ScenarioResult
from consortium.scenarios.runner import ScenarioRunner


@click.group(cls=ConsortiumGroup)
def scenario() -> None:
    """Scripted business flows against the running network."""


def run_scenarios(
    config: NetworkConfig, keys: KeyDirectory, scenarios: list[Scenario], narrator: Narrator
) -> list[ScenarioResult]:
    return asyncio.run(ScenarioRunner(config, keys, narrator).run(scenarios))


def failures(results: list[ScenarioResult]) -> list[str]:
    return [r.failure or f"{r.name}: failed" for r in results if not r.passed]


def summary_table(results: list[ScenarioResult]) -> Table:
    table = Table(title="scenarios")
    for column in ("scenario", "steps", "seconds", "result"):
        table.add_column(column)
    for result in results:
        table.add_row(
            escape(result.title),
            str(sum(1 for s in result.steps if s.passed)) + f"/{len(result.steps)}",
            f"{result.duration_s:.1f}",
            "[green]passed[/green]" if result.passed else "[bold red]FAILED[/bold red]",
        )
    return table


@scenario.command("list")
@json_option
def scenario_list(as_json: bool) -> None:
    """The built-in scenarios, in the order `run all` tells them."""
    scenarios = builtin_scenarios()
    if as_json:
        print_json(
            {
                "scenarios": [
                    {"name": s.name, "title": s.title, "steps": len(s.steps), "story": s.story}
                    for s in scenarios
                ],
                "helpers": {name: spec.what for name, spec in HELPERS.items()},
            }
        )
        return
    table = Table(title="built-in scenarios (consortium scenario show NAME prints one to copy)")
    for column in ("name", "title", "steps"):
        table.add_column(column)
    for s in scenarios:
        table.add_row(s.name, escape(s.title), str(len(s.steps)))
    console = Console()
    console.print(table)
    console.print("helpers for {helper: NAME, ...} values:")
    for name, spec in HELPERS.items():
        fields = ", ".join(sorted(spec.fields)) or "no fields"
        console.print(f"  [bold]{name}[/bold] ({fields}): {escape(spec.what)}")


@scenario.command("show")
@click.argument("name")
def scenario_show(name: str) -> None:
    """Print a built-in scenario's YAML, to copy and edit."""
    click.echo(builtin_source(name), nl=False)


@scenario.command("run")
@click.argument("name_or_file")
@config_option
@json_option
def scenario_run(name_or_file: str, config_path: str, as_json: bool) -> None:
    """Run NAME_OR_FILE (a built-in name, `all`, or a YAML file) against the running network."""
    scenarios = resolve(name_or_file)
    config, keys = load(config_path)
    console = Console()
    narrator: Narrator = SilentNarrator() if as_json else RichNarrator(console)
    results = run_scenarios(config, keys, scenarios, narrator)
    if as_json:
        print_json(
            {
                "scenarios": [r.as_json() for r in results],
                "passed": all(r.passed for r in results),
            }
        )
    elif len(results) > 1:
        console.print(summary_table(results))
    failed = failures(results)
    if failed:
        raise click.ClickException("; ".join(failed))
