"""Telling a scenario as it runs: who does what through which node, at which height, with what
effect; then a table per scenario. A silent narrator serves `--json`."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from consortium.scenarios.model import Scenario
from consortium.scenarios.results import NOT_RUN, ScenarioResult, StepResult


class Narrator(Protocol):
    def scenario_started(self, scenario: Scenario) -> None: ...

    def bound(self, values: dict[str, str]) -> None: ...

    def step_finished(self, number: int, result: StepResult) -> None: ...

    def scenario_finished(self, result: ScenarioResult) -> None: ...


class SilentNarrator:
    def scenario_started(self, scenario: Scenario) -> None:
        pass

    def bound(self, values: dict[str, str]) -> None:
        pass

    def step_finished(self, number: int, result: StepResult) -> None:
        pass

    def scenario_finished(self, result: ScenarioResult) -> None:
        pass


class RichNarrator:
    def __init__(self, console: Console) -> None:
        self.console = console

    def scenario_started(self, scenario: Scenario) -> None:
        self.console.rule(f"[bold]{escape(scenario.title)}[/bold]  ({escape(scenario.name)})")
        if scenario.story:
            self.console.print(f"[dim]{escape(scenario.story)}[/dim]")

    def bound(self, values: dict[str, str]) -> None:
        text = ", ".join(f"${name} = {value}" for name, value in values.items())
        self.console.print(f"     [dim]let {escape(text)}[/dim]")

    def step_finished(self, number: int, result: StepResult) -> None:
        mark = "[green]✓[/green]" if result.passed else "[bold red]✗[/bold red]"
        where = f"h {result.height:<4}" if result.height is not None else "      "
        if result.op is not None:
            what = (
                f"[cyan]{escape(result.actor or '')}[/cyan] {escape(result.op)} "
                f"[dim]via {escape(result.via or '')}[/dim]"
            )
        elif result.via is None:
            what = "[magenta]check[/magenta] [dim]on each reader's own ledger[/dim]"
        else:
            what = f"[magenta]check[/magenta] [dim]on the ledger of {escape(result.via)}[/dim]"
        self.console.print(f"{mark} {number:>2} {where} {escape(result.name)}: {what}")
        if result.passed:
            colour = "green" if result.outcome == "committed" else "yellow"
            notice = ""
            if result.block_hash is not None:
                notice = (
                    f" [dim]in block {result.block_hash[:12]}, signed notice of "
                    f"{escape(result.via or '')} matching f+1 nodes[/dim]"
                )
            self.console.print(f"          [{colour}]{escape(result.outcome)}[/{colour}]{notice}")
        else:
            self.console.print(f"          [red]expected {escape(result.expected)}[/red]")
            self.console.print(f"          [bold red]got      {escape(result.outcome)}[/bold red]")
        for line in result.details:
            self.console.print(f"          [dim]{escape(line)}[/dim]")

    def scenario_finished(self, result: ScenarioResult) -> None:
        table = Table(
            title=f"{result.title}: {'passed' if result.passed else 'FAILED'} "
            f"in {result.duration_s:.1f} s",
            title_style="bold green" if result.passed else "bold red",
        )
        for column in ("#", "step", "height", "outcome"):
            table.add_column(column, overflow="fold")
        for number, step in enumerate(result.steps, 1):
            if step.outcome == NOT_RUN:
                outcome = f"[dim]{NOT_RUN}[/dim]"
            elif step.passed:
                outcome = f"[green]✓[/green] {escape(step.outcome)}"
            else:
                outcome = (
                    f"[bold red]✗ expected {escape(step.expected)}, "
                    f"got {escape(step.outcome)}[/bold red]"
                )
            height = "" if step.height is None else str(step.height)
            table.add_row(str(number), escape(step.name), height, outcome)
        self.console.print(table)
        if result.failure:
            self.console.print(f"[bold red]{escape(result.failure)}[/bold red]")
