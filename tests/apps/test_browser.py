"""The app in a real browser: ``ultrassl app`` serving, driven by Debian's chromium through
Playwright (the system browser, no download).

Needs ``/usr/bin/chromium`` (``apt-get install -y --no-install-recommends chromium``; the CI
script installs it). Screenshots of every step are saved in the test's folder and, when
``ULTRASSL_SCREENSHOTS`` names a folder, copied there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("ULTRASSL_CHROMIUM", "/usr/bin/chromium"))
REPO = Path(__file__).resolve().parents[2]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no browser at {CHROMIUM} (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (``/proc/net/tcp``, IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.fixture
def served_app(fetal_set, models, tmp_path):
    """``ultrassl app`` on the small fetal set with the tiny models' folder; yields its URL."""
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "ultrassl.cli", "app", str(fetal_set.parent), "--runs",
         str(models["plane_detection"].parent), "--port", str(port)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)})
    try:
        deadline = time.monotonic() + 90
        while not _listening_addresses(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the app did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_upload_slide_and_open_the_pretext_and_embedding_views_in_a_browser(served_app, tmp_path):
    from playwright.sync_api import expect, sync_playwright
    from pydicom.data import get_testdata_file

    url, port = served_app
    assert _listening_addresses(port) == {"127.0.0.1"}  # this machine only
    echo = get_testdata_file("color3d_jpeg_baseline.dcm")  # a real ultrasound cine: 120 frames of 480 x 640
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)  # first runs import torch and read loops on 2 cores
        page.goto(url)
        expect(page.get_by_text("ultrassl data viewer").first).to_be_visible()
        expect(page.get_by_text("frame 0 of 12").first).to_be_visible()  # the served manifest's first clip

        page.get_by_text("Upload", exact=True).click()
        page.locator('input[type="file"]').set_input_files(echo)
        expect(page.get_by_text("frame 0 of 120").first).to_be_visible()
        expect(page.get_by_text("uploaded loop").first).to_be_visible()
        shots.append(tmp_path / "1_upload.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

        page.locator('input[type="range"][aria-label="Frame"]').focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        expect(page.get_by_text("frame 3 of 120").first).to_be_visible()
        shots.append(tmp_path / "2_frame_slider.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

        page.get_by_text("Draw a training sample of this clip").click()
        expect(page.get_by_text("CATE encodings relative to view2").first).to_be_visible()
        shots.append(tmp_path / "3_pretext.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

        page.get_by_text("Embed the clips").click()
        page.get_by_role("button", name="Embed 1 clip").click()
        expect(page.get_by_text("8 frames of 1 clip").first).to_be_visible()
        shots.append(tmp_path / "4_embedding.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

        text = page.inner_text("body")
        browser.close()
    # nothing of the file's identifying header reaches the page, nor its name
    for value in ("PLA", "20160503", "color3d_jpeg_baseline"):
        assert value not in text.split(), value
    assert "Traceback" not in text
    for shot in shots:
        assert shot.stat().st_size > 10_000, shot  # a page was drawn, not a blank
    keep = os.environ.get("ULTRASSL_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
