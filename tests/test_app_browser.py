"""The app in a real browser: `streamlit run` on a free localhost port, headless Chromium through Playwright.

Uses the shipped demo checkpoint when its dataset is prepared (data/processed/amazon2018-game), else the tiny fixture
bundle. At 1440×1000 it checks that the key numbers sit on the first screen and change with a slider, and measures
the cold start (server start to a usable page) and the embedding explorer's first open; it prints them and writes
them as JSON to $SPECGR_APP_LATENCY (default: the test's temporary folder). Screenshots go to $SPECGR_SCREENSHOTS
(default: the temporary folder), never into the repository. Every wait is bounded; the server is always stopped.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SPECGR_CHROMIUM", "/usr/bin/chromium")
DEMO_DATA = ROOT / "data" / "processed" / "amazon2018-game" / "manifest.json"
DEMO_CKPT = ROOT / "checkpoints" / "amazon2018-game" / "config.json"
VIEWPORT = {"width": 1440, "height": 1000}

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason=f"needs Chromium at {CHROMIUM}: sudo apt-get install chromium (Debian/Ubuntu)")]


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
    started = time.perf_counter()
    # usage statistics are off through .streamlit/config.toml, read from the working directory (the repository root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc, timeout=60)
        yield f"http://127.0.0.1:{port}", kind, started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        print((tmp_path / "streamlit.log").read_text()[-3000:])


def metric(page, label: str):
    """The value element of the st.metric whose label is `label`."""
    return page.locator("[data-testid=stMetric]").filter(has_text=label).first.get_by_test_id("stMetricValue")


def test_app_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, kind, started = server
    shots = Path(os.environ.get("SPECGR_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    timings = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            t = time.perf_counter()
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            # cold start: the first page load makes the server import PyTorch, load the checkpoint and warm up
            accepted = metric(page, "Accepted / drafted")
            accepted.wait_for(timeout=180_000)
            timings["cold_start_s"] = round(time.perf_counter() - started, 2)
            timings["first_page_load_s"] = round(time.perf_counter() - t, 2)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            box = accepted.bounding_box()
            assert box and box["y"] + box["height"] <= VIEWPORT["height"], "the key numbers are on the first screen"
            before = accepted.inner_text()

            # move the γ slider with the keyboard: focus its thumb, step it down (looser: more accepted)
            thumb = page.get_by_role("slider").first
            thumb.focus()
            t = time.perf_counter()
            for _ in range(3):
                page.keyboard.press("ArrowLeft")
            page.wait_for_function(
                "([label, b]) => [...document.querySelectorAll('[data-testid=stMetric]')]"
                ".some(m => m.innerText.includes(label) && !m.innerText.includes(b))",
                arg=["Accepted / drafted", before], timeout=60_000)
            timings["slider_to_new_numbers_s"] = round(time.perf_counter() - t, 2)
            assert accepted.inner_text() != before, "the slider changed the numbers on the first screen"
            time.sleep(1.0)  # let plotly finish drawing before the picture
            page.screenshot(path=str(shots / f"app_{kind}.png"))

            # the embedding explorer: the 2-D map ships with the demo checkpoint (the tiny bundle's too)
            t = time.perf_counter()
            page.get_by_text("Embedding explorer", exact=False).first.click()
            page.get_by_text("UMAP computed at export", exact=False).first.wait_for(timeout=300_000)
            page.locator(".js-plotly-plot .scatterlayer, .js-plotly-plot .gl-container").first.wait_for(
                timeout=60_000)
            timings["umap_first_open_s"] = round(time.perf_counter() - t, 2)
            page.screenshot(path=str(shots / f"app_{kind}_explorer.png"))
        finally:
            browser.close()
    record = {"bundle": kind, "viewport": VIEWPORT, **timings, "machine": f"{platform.machine()}, "
              f"{os.cpu_count()} CPUs", "load_average_1min": round(os.getloadavg()[0], 2),
              "measured_by": "tests/test_app_browser.py (headless Chromium, Playwright)"}
    print("app latency:", json.dumps(record))
    out = Path(os.environ.get("SPECGR_APP_LATENCY", tmp_path / "app_latency.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
