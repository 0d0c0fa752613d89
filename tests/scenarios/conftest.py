"""Fixtures of the scenarios: the browser their browser tests drive."""

import pytest


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, one for a module's tests (skipped, or failed under CI, where it
    is missing: tests.scenarios.browsing)."""
    from tests.scenarios.browsing import launch, sync_api

    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()
