"""The HTML review report: every group, least certain first, evidence, real differences only,
light and dark themes; rendered by a real headless browser.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from customerkit import synth
from customerkit.matching import DuplicateReport, find_duplicates
from customerkit.testing.postgres import in_ci


def _report(size: int = 1_200) -> DuplicateReport:
    data = synth.labelled_contacts(size, seed=14)
    return find_duplicates(data.records, kind="contact")


def _weakest(section: str) -> float:
    found = re.search(r"weakest link ([0-9.]+)", section)
    assert found is not None
    return float(found.group(1))


def test_the_page_holds_every_group_least_certain_first() -> None:
    report = _report()
    assert len(report.groups) > 100
    page = report.to_html()
    sections = re.findall(r"<details class='ck-group'.*?</details>", page, re.S)
    assert len(sections) == len(report.groups)
    weakest = [_weakest(section) for section in sections]
    assert weakest == sorted(weakest)
    assert page.startswith("<!DOCTYPE html>")
    assert "prefers-color-scheme: dark" in page
    assert "http" not in page  # self-contained: nothing fetched
    notebook = report._repr_html_()
    assert notebook.count("<details class='ck-group'") == min(200, len(report.groups))


def test_only_differences_the_matcher_saw_are_highlighted() -> None:
    records = [
        {"id": "a", "first_name": "Ann", "last_name": "Lee", "phone": "808-569-9568"},
        {"id": "b", "first_name": "Ann", "last_name": "Leigh", "phone": "+1 808 569 9568"},
    ]
    page = find_duplicates(records, kind="contact").to_html()
    rows = dict(re.findall(r"<tr><th>(\w+)</th>(.*?)</tr>", page))
    assert "ck-differs" not in rows["phone"]  # one number written two ways
    assert "ck-differs" in rows["last_name"]
    assert "ck-differs" not in rows["first_name"]
    assert "phone same" in page  # the evidence, per field
    assert "0." in page


def test_the_page_is_written_to_a_file(tmp_path: Path) -> None:
    report = _report(300)
    target = tmp_path / "report.html"
    assert report.to_html(target) == target.read_text(encoding="utf-8")


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if in_ci():
        pytest.fail("CI must render the report in a real browser: apt-get install chromium")
    pytest.skip("no headless browser here (CI installs chromium)")


def _run(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)  # noqa: S603 - the browser found on PATH, our own file


def test_a_real_browser_renders_every_group_in_both_themes(tmp_path: Path) -> None:
    browser = _browser()
    report = _report(600)
    page = tmp_path / "report.html"
    report.to_html(page)
    dom = _run(browser, "--dump-dom", page.as_uri()).stdout
    assert dom.count('class="ck-group"') == len(report.groups) > 0
    light, dark = tmp_path / "light.png", tmp_path / "dark.png"
    _run(browser, f"--screenshot={light}", "--window-size=1200,900", page.as_uri())
    _run(
        browser,
        f"--screenshot={dark}",
        "--window-size=1200,900",
        "--force-dark-mode",
        "--blink-settings=preferredColorScheme=0",
        page.as_uri(),
    )
    assert light.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert dark.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert light.read_bytes() != dark.read_bytes()  # the dark theme applies
