"""The explorer and the metrics on a real five-node network that ran a scenario: every node's
`metrics_url` in `status --json` and its /metrics scraped; then headless Chromium (Debian's
chromium and chromium-driver, driven by selenium) opening the explorer, with screenshots saved
under test-artifacts/explorer/."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consortium.devnet import Devnet, free_port
from consortium.scenarios.ledger_view import NodeLedger
from consortium.scenarios.loader import builtin_scenarios
from consortium.scenarios.narration import SilentNarrator
from consortium.scenarios.runner import ScenarioRunner
from tests.network_helpers import live_network, status_rows, statuses, wait_for

pytestmark = [pytest.mark.live, pytest.mark.slow]

ARTIFACTS = Path(
    os.environ.get("CONSORTIUM_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)
SCENARIO = "double-financing"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass(frozen=True)
class Story:
    net: Devnet
    height: int


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    with live_network(tmp_path_factory.mktemp("explorer-live"), metrics_port=0) as net:
        wait_for(lambda: len(statuses(net)) == len(net.config.node_ids), 30)
        runner = ScenarioRunner(net.config, net.keys, SilentNarrator())
        chosen = [s for s in builtin_scenarios() if s.name == SCENARIO]
        results = asyncio.run(asyncio.wait_for(runner.run(chosen), timeout=90))
        assert all(r.passed for r in results), results
        ledger = NodeLedger(net.config, "regulator")
        try:
            height = ledger.height()
        finally:
            ledger.close()
        yield Story(net, height)


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.status == 200
        return answer.read().decode()


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels} in the scrape")


def test_status_lists_every_nodes_metrics_url_and_each_serves_metrics(story: Story):
    rows = status_rows(story.net)
    urls = {node: row["metrics_url"] for node, row in rows.items()}
    assert all(
        url and re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url) for url in urls.values()
    )
    assert len(set(urls.values())) == len(urls)

    def scraped_at_height() -> str | None:
        text = _scrape(urls["bank-a"])
        return text if _sample(text, "consortium_height", node="bank-a") >= story.height else None

    text = wait_for(scraped_at_height, 10, 0.3)
    assert _sample(text, "consortium_committed_transactions_total", node="bank-a") > 0
    assert _sample(text, "consortium_view", node="bank-a") == 0
    assert _sample(text, "consortium_is_primary", node="bank-a") in (0.0, 1.0)
    assert _sample(text, "consortium_view_changes_total", node="bank-a") == 0
    assert _sample(text, "consortium_mempool_requests", node="bank-a") >= 0
    assert _sample(text, "consortium_bus_messages_total", node="bank-a", direction="in") > 0
    assert _sample(text, "consortium_bus_messages_total", node="bank-a", direction="out") > 0
    latency = "consortium_phase_latency_seconds_count"
    assert _sample(text, latency, phase="pre_prepare_to_executed") > 0
    assert _sample(text, "consortium_store_write_seconds_count", kind="block") > 0
    assert _sample(text, "consortium_store_write_seconds_count", kind="sync") > 0
    assert "consortium_rejected_messages_total" in text
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert line.startswith("consortium_"), line


def test_heartbeats_carry_the_consensus_timeline(story: Story):
    current = statuses(story.net)
    for node, status in current.items():
        executed = [entry for entry in status["timeline"] if entry[4] is not None]
        assert executed, node
        _, pre_prepare, prepared, committed, done = executed[-1]
        assert pre_prepare <= prepared <= committed <= done, (node, executed[-1])
        assert isinstance(status["clock_offset_ms"], int)


@pytest.fixture(scope="module")
def explorer_url(story: Story) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "consortium", "explorer", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--config", str(story.net.config.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                return _scrape(url + "/api/network") is not None
            except OSError:
                assert process.poll() is None, process.communicate()[0]
                return False

        wait_for(answers, 15, 0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.browser
def test_a_browser_shows_the_network_blocks_and_a_transaction(story: Story, explorer_url: str):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "chromium and chromium-driver are not installed (scripts/bootstrap installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    shots = ARTIFACTS / "explorer"
    shots.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.add_argument("--disable-dev-shm-usage")
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        wait = WebDriverWait(browser, 20)
        browser.get(explorer_url + "/")
        # Live: the page counts the snapshots its event stream delivered.
        wait.until(
            lambda b: (
                int(b.find_element(By.TAG_NAME, "body").get_attribute("data-updates") or 0) >= 2
            )
        )
        wait.until(
            lambda b: len(b.find_elements(By.CSS_SELECTOR, "#nodes tbody td.health.ok")) == 5
        )
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#tps-chart polyline"))
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#latest-timeline circle.executed"))
        browser.save_screenshot(str(shots / "network.png"))

        browser.get(explorer_url + "/blocks")
        links = browser.find_elements(By.CSS_SELECTOR, "#block-list tbody tr td:first-child a")
        assert int(links[0].text) >= story.height
        browser.save_screenshot(str(shots / "blocks.png"))

        # The block with the scenario's rejected attempt: open it from the audit page.
        browser.get(explorer_url + "/audit")
        rejected = browser.find_elements(By.CSS_SELECTOR, "#rejected tbody tr td:first-child a")
        assert rejected, "the scenario's rejected attempts are listed"
        rejected[0].click()
        wait.until(lambda b: b.find_elements(By.ID, "certificate-verdict"))
        verdict = browser.find_element(By.ID, "certificate-verdict").text
        assert verdict.startswith("valid:"), verdict
        assert "failed:" in browser.find_element(By.ID, "txs").text
        browser.save_screenshot(str(shots / "block.png"))

        browser.find_element(By.CSS_SELECTOR, "#txs tbody tr td.mono a").click()
        wait.until(lambda b: b.find_elements(By.ID, "tx-outcome"))
        assert browser.find_element(By.ID, "tx-outcome").text in ("committed",) or (
            browser.find_element(By.ID, "tx-outcome").text.startswith("failed:")
        )
        browser.save_screenshot(str(shots / "transaction.png"))
    finally:
        browser.quit()
