"""The dashboard in a real headless Chromium (Debian's chromium + chromedriver, via Selenium):
log in with an API key, see a zone fall from A after littering, void one act, see the grade
come back; the camera page shows the chain state and the zone map over the reference frame.

Screenshots go to the test's temporary directory, and to $DETECTOR_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import BackendProcess, Chain, add_user, make_keys, write_config

from detector.protocol import keys
from detector.protocol.views import make_view

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def png(width: int, height: int, pixel) -> bytes:
    """A real PNG from a pixel function (x, y) -> (r, g, b); pure Python, no imaging library."""
    raw = b"".join(b"\0" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def street(x: int, y: int) -> tuple[int, int, int]:
    """A stand-in reference frame: sky, a wall, a pavement (blurred snapshots look about as flat)."""
    if y < 90:
        return (150, 190, 230)
    if y < 200:
        return (170 - (x // 40) % 2 * 12, 120, 100)
    return (120 + (x + y) % 20, 120 + (x + y) % 20, 125)


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are not installed (.ci/run installs them)")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"chromium-profile-{os.getpid()}"
    # without these, Chromium waits on the network or a GPU this closed, headless machine lacks
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 5000  # a rendered page, not a blank
    if os.environ.get("DETECTOR_SCREENSHOT_DIR"):
        out = Path(os.environ["DETECTOR_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.name)
    return path


def zone_row(driver, zone: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'tr.zone[data-zone="{zone}"]')


@pytest.mark.slow
def test_log_in_see_a_zone_fall_void_and_recover(browser, tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    ks = make_keys(tmp_path, "kerbcam", "gate")
    cfg = write_config(tmp_path / "backend.yaml", {c: ks[c][1] for c in ks})
    operator = add_user(cfg, "olga", "operator")
    b = BackendProcess(cfg).start()
    try:
        cam = Chain.of(ks["kerbcam"][0], "kerbcam")
        gate = Chain.of(ks["gate"][0], "gate")
        # the camera's view: a reference frame and its zones, then the frame itself
        frame = png(640, 360, street)
        fsha = hashlib.sha256(frame).hexdigest()
        zones = {
            "kerb": [(0, 230), (640, 230), (640, 360), (0, 360)],
            "wall": [(0, 90), (640, 90), (640, 200), (0, 200)],
        }
        view = make_view(
            keys.load_private_key(ks["kerbcam"][0]), "s1", "kerbcam", fsha, 640, 360, zones, datetime.now(UTC)
        )
        assert b.client.post("/v1/views", json=view).status_code == 200
        assert b.client.put(f"/v1/evidence/{fsha}", content=frame).status_code == 201
        assert b.post(cam.event("littering", "wall", "small", litter=50)).status_code == 200
        assert b.post(gate.event("littering", "entrance", "small", litter=1)).status_code == 200

        # not logged in: the log-in page, nothing of the ledger
        browser.get(b.url + "/")
        assert "Log in" in browser.page_source and "kerb" not in browser.page_source
        browser.find_element(By.ID, "key").send_keys("dk_not_a_key")
        browser.find_element(By.ID, "login").click()
        # the page before the click has a #message too ("log in first"): wait for the answer's page,
        # retrying while the old page's element goes stale under the navigation
        WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: "not valid" in d.find_element(By.ID, "message").text
        )
        shot(browser, tmp_path, "1-login-refused")
        browser.find_element(By.ID, "key").send_keys(operator)
        browser.find_element(By.ID, "login").click()
        WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.site")))
        assert "olga (operator)" in browser.page_source

        # littering in the kerb zone, each with a snapshot: the zone falls from A
        snaps = [png(160, 90, lambda x, y, k=k: (200, 60 + 80 * k, 60)) for k in range(2)]
        evs = [cam.event("littering", "kerb", "small", litter=1, evidence=snaps[0])]
        browser.refresh()
        assert b.post(evs).status_code == 200
        browser.refresh()
        assert zone_row(browser, "kerb").get_attribute("data-grade") == "A"
        evs = [cam.event("littering", "kerb", "bulky", litter=2, evidence=snaps[1])]
        assert b.post(evs).status_code == 200
        for i, s in enumerate(snaps):
            assert b.client.put(f"/v1/evidence/{hashlib.sha256(s).hexdigest()}", content=s).status_code == 201, i
        browser.refresh()
        row = zone_row(browser, "kerb")
        assert (row.get_attribute("data-score"), row.get_attribute("data-grade")) == ("890", "B")
        shot(browser, tmp_path, "2-overview-kerb-fell-to-B")

        # the zone's acts, with evidence thumbnails; void one bulky act
        row.find_element(By.TAG_NAME, "a").click()
        WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "acts")))
        assert browser.find_element(By.ID, "zone-grade").text == "B"
        thumbs = browser.find_elements(By.CSS_SELECTOR, "img.thumb")
        assert len(thumbs) == 2
        assert all(browser.execute_script("return arguments[0].naturalWidth", t) == 160 for t in thumbs)
        target = browser.find_element(By.CSS_SELECTOR, f'tr.act[data-event="{evs[0]["id"]}"]')
        target.find_element(By.NAME, "reason").send_keys("a parked pram, not litter")
        target.find_element(By.CSS_SELECTOR, "button.void").click()
        WebDriverWait(browser, 5).until(ec.alert_is_present()).accept()  # the confirm dialog
        WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "zone-grade").text == "A")
        assert browser.find_element(By.ID, "zone-score").text == "990"
        voided = browser.find_element(By.CSS_SELECTOR, f'tr.act.voided[data-event="{evs[0]["id"]}"]')
        assert "voided by olga" in voided.text and "parked pram" in voided.text
        shot(browser, tmp_path, "3-zone-after-void")
        browser.get(b.url + "/")
        assert zone_row(browser, "kerb").get_attribute("data-grade") == "A"

        # a camera whose chain is blocked, and the zone map over the reference frame
        refused = gate.event("littering", "entrance", "small", litter=2)
        gate.event("littering", "entrance", "small", litter=3)  # never sent: the next one leaves a gap
        assert b.post(gate.event("littering", "entrance", "small", litter=4)).status_code == 409
        assert refused  # (its seq is the one missing)
        browser.get(b.url + "/")
        assert "Blocked cameras" in browser.find_element(By.ID, "blocked-cameras").text
        browser.get(b.url + "/sites/s1/cameras")
        gate_row = browser.find_element(By.CSS_SELECTOR, 'tr.camera[data-camera="gate"]')
        assert gate_row.get_attribute("data-chain") == "blocked" and "seq_gap" in gate_row.text
        assert "accept-gap" in gate_row.text
        assert (
            browser.find_element(By.CSS_SELECTOR, 'tr.camera[data-camera="kerbcam"]').get_attribute("data-chain")
            == "ok"
        )
        polys = {
            p.get_attribute("data-zone"): p.get_attribute("data-grade")
            for p in browser.find_elements(By.CSS_SELECTOR, "polygon.zone-poly")
        }
        assert polys == {"kerb": "A", "wall": "A"}
        loaded = browser.execute_script(
            "const i = new Image(); i.src = document.querySelector('svg.map image').getAttribute('href');"
            "return new Promise(r => { i.onload = () => r(i.naturalWidth); i.onerror = () => r(0); });"
        )
        assert loaded == 640  # the reference frame is served to the logged-in browser
        browser.set_window_size(1280, 1300)  # the whole map in the picture
        shot(browser, tmp_path, "4-cameras-and-zone-map")

        # log out: the pages are closed again
        browser.find_element(By.ID, "logout").click()
        WebDriverWait(browser, 10).until(lambda d: "Log in" in d.page_source)  # the log-out has landed
        browser.get(b.url + "/sites/s1/cameras")
        assert "Log in" in browser.page_source and "gate" not in browser.page_source
    finally:
        b.stop()
