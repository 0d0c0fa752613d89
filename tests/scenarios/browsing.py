"""What the browser tests share: Debian's Chromium driven by Playwright (skipped with its reason where it
is missing, failed under CI=true), axe-core's verdict on a page, and what sticks out on a phone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"  # fetch.sh vendors it

if not Path(CHROMIUM).exists():
    reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


sync_api = pytest.importorskip("playwright.sync_api")


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it stands: rule, and where."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))  # evaluated by the browser's debugger: no CSP
    found = page.evaluate("axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


PHONE = {"width": 390, "height": 844}


def overflowing(page) -> list[str]:
    """What sticks out past the right edge of the screen (the page would scroll sideways)."""
    return page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const wide = [...document.querySelectorAll('body *')].filter(e => {
            const box = e.getBoundingClientRect();
            return box.width > 0 && box.right > width + 1 && !e.closest('.leaflet-container');
          });
          const page = document.documentElement.scrollWidth;
          return [page > width ? 'page: ' + page : '',
                  ...wide.slice(0, 8).map(e => e.tagName + '.' + e.className + '#' + e.id)].filter(Boolean);
        }"""
    )
