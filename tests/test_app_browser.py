"""The app in a real browser: `streamlit run` on a free localhost port, headless Chromium through Playwright.

Uses the shipped demo checkpoint when its dataset is prepared (data/processed/amazon2018-game), else the tiny fixture
bundle. Saves docs/app_screenshot.png (the README's picture). Every wait is bounded; the server is always stopped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
DEMO_DATA = ROOT / "data" / "processed" / "amazon2018-game" / "manifest.json"
DEMO_CKPT = ROOT / "checkpoints" / "amazon2018-game" / "config.json"
SCREENSHOT = ROOT / "docs" / "app_screenshot.png"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason=f"needs Chromium at {CHROMIUM} (apt-get install -y chromium)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def server(request, tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if DEMO_DATA.exists() and DEMO_CKPT.exists():
        kind = "demo"
        env["SPECGR_CHECKPOINT"], env["SPECGR_DATA_ROOT"] = str(DEMO_CKPT.parent), str(DEMO_DATA.parents[1])
    else:
        kind = "tiny"
        pipeline, bundle_dir = request.getfixturevalue("tiny_pipeline")
        env["SPECGR_CHECKPOINT"], env["SPECGR_DATA_ROOT"] = str(bundle_dir), str(pipeline.data_root)
    port = free_port()
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc, timeout=60)
        yield f"http://127.0.0.1:{port}", kind
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        print((tmp_path / "streamlit.log").read_text()[-3000:])


def test_app_in_chromium(server):
    from playwright.sync_api import sync_playwright

    url, kind = server
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            page.set_default_timeout(60_000)
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            # the speculation view: counters and the verification chart (first load warms up the models)
            page.get_by_text("Acceptance rate").first.wait_for(timeout=180_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            before = page.get_by_test_id("stMetricValue").nth(1).inner_text()

            # move the γ slider with the keyboard: focus its thumb, step it down (looser: more accepted)
            thumb = page.get_by_role("slider").first
            thumb.focus()
            for _ in range(3):
                page.keyboard.press("ArrowLeft")
            page.wait_for_function(
                "b => document.querySelectorAll('[data-testid=stMetricValue]')[1].innerText !== b", arg=before,
                timeout=60_000)
            after = page.get_by_test_id("stMetricValue").nth(1).inner_text()
            assert after != before, "the slider changed the speculation result"
            page.get_by_text("Round 1").first.wait_for(timeout=30_000)
            time.sleep(1.0)  # let plotly finish drawing before the picture
            shot = SCREENSHOT if kind == "demo" else Path(os.environ.get("TMPDIR", "/tmp")) / "specgr_app_tiny.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot))  # the README picture is of the real demo

            # the embedding explorer: UMAP fit (once) and the chart
            page.get_by_text("Embedding explorer", exact=False).first.click()
            page.get_by_text("UMAP fitted once").wait_for(timeout=300_000)
            chart = page.locator(".js-plotly-plot").first
            chart.wait_for(timeout=60_000)
            assert page.locator(".js-plotly-plot .scatterlayer, .js-plotly-plot .gl-container").count() > 0
        finally:
            browser.close()
