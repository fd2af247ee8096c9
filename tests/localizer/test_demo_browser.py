"""The demo page in a real browser: Debian's headless chromium, driven by selenium.

Loads the page, uploads a phone photo (stored turned, EXIF orientation 6), reads the JSON record
the page shows and compares it with the line `python -m localizer.predict` prints for the photo,
checks the drawing shows upright and the record downloads, then uploads a file that is not an
image (a message on the page) and one more photo (the page still works). Screenshots go to
reports/browser/. Without chromium (`make browser` installs it) the test is skipped here, and
fails in CI, which must never skip it silently.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import urllib.request

import pytest

from localizer.inference import demo_model, demo_page
from localizer.ops import statistics
from tests import fixtures
from tests.localizer.test_demo import TOLERANCE, assert_records_agree, tagged_photo

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
"""Debian's packages (`make browser`)."""
SCREENSHOT = os.path.join(fixtures.REPO_ROOT, "reports", "browser", "demo.png")
ERROR_SCREENSHOT = os.path.join(fixtures.REPO_ROOT, "reports", "browser", "demo_error.png")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where chromium's sandbox refuses to start
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--window-size=1200,1000",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # Only this machine: the page must work offline, and a request elsewhere fails at once.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
)
WAIT_S = 90


@pytest.fixture(scope="module")
def browser():
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        missing = f"{CHROMIUM} or {CHROMEDRIVER} is missing"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: CI must run the demo's browser test; run `make browser` first")
        pytest.skip(f"{missing}: `make browser` installs Debian's chromium and chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager never downloads a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def page_url(random_tiny_model_path):
    """The demo page of the random tiny model, served by this process on a free port."""
    gradio = demo_page.import_gradio()
    model = demo_model.DemoModel(random_tiny_model_path)
    with tempfile.TemporaryDirectory() as work_dir:
        page = demo_page.build_page(gradio, model, work_dir)
        url = demo_page.launch(page, "127.0.0.1", free_port())
        try:
            yield url
        finally:
            page.close()


def upload(driver, path):
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(path)


def shown_record(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, "#record textarea").get_attribute("value")


def message(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "message").text


def test_page_answers_a_phone_photo_as_predict_does(
    browser, page_url, random_tiny_model_path, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tagged_photo(tmp_path, "phone.jpg", orientation=6)
    # predict runs beside the browser (a TensorFlow start takes seconds).
    predict = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localizer.predict",
            f"--model={random_tiny_model_path}",
            f"--min_box_quality={statistics.LOC_IOU_THRESHOLD}",
            photo,
        ],
        cwd=fixtures.REPO_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait = WebDriverWait(browser, WAIT_S)
        browser.get(page_url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"))
        upload(browser, photo)
        wait.until(lambda d: '"file": "phone.jpg"' in shown_record(d))
        record = json.loads(shown_record(browser))
        # The drawing shows, upright: the photo is stored 48 wide and 64 high, seen 64 x 48.
        drawing = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#drawing img"))
        wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", drawing) > 0)
        size = browser.execute_script(
            "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", drawing
        )
        assert size == [64, 48] and record["image_size"] == [48, 64]
        assert message(browser) == ""
        assert (
            browser.find_element(By.CSS_SELECTOR, "#class textarea, #class input")
            .get_attribute("value")
            .startswith(record["class"])
        )
        assert record["class"] in browser.find_element(By.ID, "top5").text
        # The record downloads as the same line.
        link = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#record_file a[href]"))
        shown = "".join(browser.find_element(By.ID, "record_file").text.split())  # name wraps
        assert "phone.jpg.pred.json" in shown
        with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as response:
            assert response.read().decode() == shown_record(browser) + "\n"
        os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
        browser.save_screenshot(SCREENSHOT)
        print(f"screenshot: {SCREENSHOT}")

        # Not an image: a message on the page, the answer cleared.
        notes = tmp_path / "notes.jpg"
        notes.write_text("a shopping list, not a photo")
        upload(browser, str(notes))
        wait.until(lambda d: "Cannot use this photo" in message(d))
        assert "notes.jpg: not a JPEG, PNG, GIF, BMP or WebP image" in message(browser)
        assert shown_record(browser) == ""
        browser.save_screenshot(ERROR_SCREENSHOT)
        print(f"screenshot: {ERROR_SCREENSHOT}")
        # ... and the next photo is answered.
        upload(browser, tagged_photo(tmp_path, "plain.jpg", orientation=1))
        wait.until(lambda d: '"file": "plain.jpg"' in shown_record(d))
        assert message(browser) == ""

        out, err = predict.communicate(timeout=300)
    finally:
        if predict.poll() is None:
            predict.kill()
            predict.communicate()
    assert predict.returncode == 0, err[-3000:]
    expected = json.loads(out.splitlines()[0])
    assert expected["file"] == photo
    assert_records_agree(record, {**expected, "file": "phone.jpg"}, TOLERANCE)
