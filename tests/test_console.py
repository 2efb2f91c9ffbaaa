"""The web console at `/`, driven in a real browser as a person uses it.

Debian's chromium and chromium-driver (installed by scripts/test, through scripts/setup --for-tests),
headless, through Selenium, against the real service over HTTP on loopback. The browser reaches nothing
else: every other host goes to a dead proxy and resolves to nothing, so a page that loads a script or
style sheet from the internet shows it.
Screenshots of each page at 1280 and 390 px are written to $EFIMIS_ARTIFACTS (default test-artifacts/).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conftest import DEMO_SECRET, DemoSource, Serve, Service
from efimis_etl.demo import MARKUP
from efimis_etl.settings import Settings
from support import copy_to_postgresql, hold_table, second_wave, until

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
WIDTHS = {"wide": (1280, 900), "narrow": (390, 844)}
# Injected before any page script: records what would have been an alert, and any script error.
HOOKS = """
window.__alerts = [];
window.__errors = [];
window.alert = (m) => { window.__alerts.push(String(m)); };
window.confirm = (m) => { window.__alerts.push(String(m)); return false; };
window.prompt = (m) => { window.__alerts.push(String(m)); return null; };
window.addEventListener('error', (e) => { if (e instanceof ErrorEvent) window.__errors.push(String(e.message)); });
window.addEventListener('unhandledrejection', (e) => { window.__errors.push(String(e.reason)); });
document.addEventListener('securitypolicyviolation', (e) => {
  window.__errors.push('CSP blocked ' + e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
});
"""


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = (
        "Debian's chromium and chromium-driver are needed for the console's tests: "
        "run scripts/setup --for-tests (scripts/test does)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        # No network but loopback: every other host goes through a proxy on a dead port (loopback is
        # bypassed, as Chrome always does) and resolves to nothing.
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1;localhost",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOKS})
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The browser with a fresh tab session: each test signs in for itself."""
    yield browser
    with contextlib.suppress(WebDriverException):  # a page that never loaded has no storage to clear
        browser.execute_script("sessionStorage.clear()")
    browser.set_window_size(*WIDTHS["wide"])


def artifacts() -> Path:
    path = Path(os.environ.get("EFIMIS_ARTIFACTS") or ROOT / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait(driver: WebDriver, condition: Callable[[WebDriver], T], what: str, timeout: float = 60) -> T:
    """The first truthy value of `condition(driver)`, failing after `timeout` s with what was awaited and
    what the page shows."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition(driver)
        except StaleElementReferenceException:  # the console re-rendered under us: ask again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            shown = driver.find_element(By.TAG_NAME, "body").text[:2000]
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; the page shows:\n{shown}")
        time.sleep(0.1)


def shoot(driver: WebDriver, name: str) -> None:
    """Screenshots of the page as it is, at both widths, the whole page tall."""
    for label, (width, height) in WIDTHS.items():
        driver.set_window_size(width, height)
        time.sleep(0.2)  # the layout settles
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, max(height, min(int(full) + 120, 6000)))
        time.sleep(0.2)
        assert driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"
        ), f"{name} scrolls sideways at {width} px"
        driver.save_screenshot(str(artifacts() / f"console-{name}-{label}.png"))
    driver.set_window_size(*WIDTHS["wide"])


def shoot_part(driver: WebDriver, name: str, css: str) -> None:
    """Screenshots of one part of the page at both widths: a phone's view of a long page's detail."""
    for label, (width, height) in WIDTHS.items():
        driver.set_window_size(width, height)
        time.sleep(0.2)
        driver.find_element(By.CSS_SELECTOR, css).screenshot(str(artifacts() / f"console-{name}-{label}.png"))
    driver.set_window_size(*WIDTHS["wide"])


def no_script_ran(driver: WebDriver) -> None:
    """Nothing alerted, no script error, and the page broke no rule of the Content-Security-Policy."""
    assert driver.execute_script("return window.__alerts") == []
    assert driver.execute_script("return window.__errors") == []


def text(driver: WebDriver, css: str) -> str:
    elements = driver.find_elements(By.CSS_SELECTOR, css)
    return elements[0].text if elements else ""


def sign_in(driver: WebDriver, service: Service, client_id: str = "demo", secret: str = DEMO_SECRET) -> None:
    """Sign in with the keyboard alone: the client id field, Tab to the secret, Enter to submit."""
    driver.get(f"{service.url}/")
    client = wait(driver, lambda d: d.find_elements(By.NAME, "client_id"), "the sign-in form")[0]
    client.click()
    driver.switch_to.active_element.send_keys(client_id, Keys.TAB, secret, Keys.ENTER)
    wait(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#imports-body table, #no-imports"), "the imports"
    )
    assert "firm " in text(driver, "#who")


def new_import(driver: WebDriver, connection_string: str) -> str:
    """Start an import from the New import page; the request id the console opened."""
    driver.find_element(By.LINK_TEXT, "New import").click()
    box = wait(driver, lambda d: d.find_elements(By.ID, "connection-string"), "the connection string box")[0]
    box.send_keys(connection_string)
    wait(driver, lambda d: text(d, "#describe-summary"), "how the connection string was understood")
    driver.find_element(By.ID, "start-import").click()
    wait(driver, lambda d: "#/imports/" in d.current_url, "the import's page")
    return str(driver.current_url.rsplit("/", 1)[1])


def state(driver: WebDriver) -> str:
    return text(driver, "#import-state")


def wait_state(driver: WebDriver, wanted: str, timeout: float = 90) -> None:
    wait(driver, lambda d: state(d) == wanted, f"the import to be {wanted}", timeout)


def downloaded(downloads: Path, name: str) -> Path:
    path = downloads / name
    deadline = time.monotonic() + 30
    while not (path.exists() and not (downloads / f"{name}.crdownload").exists()):
        assert time.monotonic() < deadline, f"{name} was not downloaded: {sorted(os.listdir(downloads))}"
        time.sleep(0.1)
    return path


def table_rows(driver: WebDriver, css: str) -> list[list[str]]:
    return [
        [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
        for row in driver.find_elements(By.CSS_SELECTOR, f"{css} tbody tr")
    ]


# ---------------------------------------------------------------------------------------------- tests


def test_sign_in_refuses_a_wrong_secret_and_a_bad_token_with_a_message(page: WebDriver, serve: Serve) -> None:
    with serve() as service:
        page.get(f"{service.url}/")
        shoot(page, "sign-in")
        page.find_element(By.NAME, "client_id").send_keys("demo")
        page.find_element(By.NAME, "client_secret").send_keys("not-the-secret", Keys.ENTER)
        wait(page, lambda d: "Sign-in failed" in text(d, "#notice"), "the refusal")
        assert page.execute_script("return sessionStorage.length") == 0
        page.find_element(By.NAME, "token").send_keys("not.a.token")
        page.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait(page, lambda d: "That token was refused" in text(d, "#notice"), "the token's refusal")
        assert page.execute_script("return sessionStorage.length") == 0
        # A good token pasted works, and lives in sessionStorage only: never in the page's URL.
        bearer = service.client.headers["Authorization"].split()[1]
        page.find_element(By.NAME, "token").clear()
        page.find_element(By.NAME, "token").send_keys(bearer)
        page.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait(page, lambda d: d.find_elements(By.ID, "no-imports"), "the (empty) imports")
        assert bearer not in page.current_url
        assert page.execute_script("return localStorage.length") == 0
        page.find_element(By.ID, "sign-out").click()
        wait(page, lambda d: d.find_elements(By.NAME, "client_id"), "the sign-in form again")
        assert page.execute_script("return sessionStorage.length") == 0
        no_script_ran(page)


def test_new_import_describes_the_connection_string_before_submitting(page: WebDriver, serve: Serve) -> None:
    with serve() as service:
        sign_in(page, service)
        page.find_element(By.LINK_TEXT, "New import").click()
        box = wait(page, lambda d: d.find_elements(By.ID, "connection-string"), "the box")[0]
        box.send_keys("Server=db.example.com;Databse=Firm;Uid=etl;Pwd=s3cr3t-value;Encrypt=yes")
        message = wait(page, lambda d: text(d, "#describe-message"), "the message naming the keyword")
        assert "Databse" in message
        shoot(page, "new-import-message")
        box.clear()
        box.send_keys("Server=tcp:127.0.0.1,1433;Database=Firm;User ID=etl;Password=s3cr3t-value;Encrypt=yes")
        summary = wait(page, lambda d: text(d, "#describe-summary"), "how it was understood")
        assert "127.0.0.1" in summary and "Firm" in summary
        terms = [e.text for e in page.find_elements(By.CSS_SELECTOR, "#describe-details dt")]
        values = [e.text for e in page.find_elements(By.CSS_SELECTOR, "#describe-details dd")]
        understood = dict(zip(terms, values, strict=True))
        assert understood["Kind"] == "SQL Server"
        assert (understood["Server"], understood["Port"]) == ("127.0.0.1", "1433")
        assert (understood["Database"], understood["User"]) == ("Firm", "etl")
        assert understood["Password"] == "•••••••• (given, not shown)"
        assert understood["Encrypt"] in {"yes", "true", "True", "Mandatory", "mandatory"}, understood
        assert "s3cr3t-value" not in page.find_element(By.TAG_NAME, "body").text
        shoot(page, "new-import-understood")
        no_script_ran(page)


def test_clean_firm_imports_to_100_percent_and_promotes_through_the_confirmation(
    page: WebDriver, service: Service, demo: DemoSource, downloads: Path
) -> None:
    sign_in(page, service)
    shoot(page, "imports-empty")
    request_id = new_import(page, demo.url)
    # The bars move without a reload, until each table is 100 %.
    wait_state(page, "Validated")
    bars = page.find_elements(By.CSS_SELECTOR, "#progress-bars li")
    assert len(bars) == len(service.status(request_id)["tables"]) > 5
    for bar in bars:
        assert bar.find_element(By.CSS_SELECTOR, ".percent").text.strip() == "100 %", bar.text
        progress = bar.find_element(By.TAG_NAME, "progress")
        assert progress.get_attribute("value") == progress.get_attribute("max")
    reconciliation = table_rows(page, "#reconciliation-table")
    assert reconciliation and all(row[-1] == "Yes" for row in reconciliation), reconciliation
    assert "No errors" in text(page, "#validation-headline")
    shoot(page, "import-validated")

    # Promote: the confirmation names the firm and the rows per table; the keyboard confirms it.
    promote = page.find_element(By.ID, "promote")
    assert promote.is_enabled()
    dialog = _open(page, "promote", "promote-dialog")
    assert text(page, "#promote-tenant") == "default"
    loaded = {t["table"]: t["rowsLoaded"] for t in service.status(request_id)["tables"]}
    assert {table: figures[0] for table, figures in _shown_preview(page).items()} == loaded
    shoot(page, "promote-confirmation")
    assert page.switch_to.active_element.get_attribute("id") == "promote-cancel"
    page.switch_to.active_element.send_keys(Keys.TAB)
    assert page.switch_to.active_element.get_attribute("id") == "promote-confirm"
    page.switch_to.active_element.send_keys(Keys.ENTER)
    # It closes once the service accepts the promotion (a refusal would stay in it).
    wait(page, lambda d: not dialog.is_displayed(), "the confirmation to close")
    wait_state(page, "Promoted")
    promoted = wait(page, lambda d: table_rows(d, "#promotion-table"), "the promotion's counts")
    production = service.production_rows()
    counts = {row[0]: (int(row[1].replace(",", "")), int(row[2].replace(",", ""))) for row in promoted}
    assert counts == {table: (len(rows), len(rows)) for table, rows in production.items() if rows}
    assert "0 updated, 0 unchanged" in text(page, "#promotion-headline")
    shoot(page, "import-promoted")

    # The id map, as a CSV the browser saves.
    page.find_element(By.XPATH, "//button[contains(., 'id map')]").click()
    id_map = list(csv.DictReader(io.StringIO(downloaded(downloads, f"id-map-{request_id}.csv").read_text())))
    assert len(id_map) == sum(len(rows) for rows in production.values())
    assert {"entity", "importId", "reference"} <= set(id_map[0])

    page.find_element(By.LINK_TEXT, "Imports").click()
    listed = wait(page, lambda d: table_rows(d, "#imports-table"), "the imports list")
    assert [(row[0], row[1]) for row in listed] == [(request_id, "Promoted")]
    shoot(page, "imports")
    page.find_element(By.LINK_TEXT, "Audit").click()
    events = wait(page, lambda d: table_rows(d, "#audit-table"), "the audit events")
    assert {"import-submitted", "promotion-requested"} <= {row[2] for row in events}, events
    shoot(page, "audit")
    no_script_ran(page)


def _figures(driver: WebDriver, css: str) -> dict[str, tuple[int, ...]]:
    """A table's rows as {table: (rows, inserted, updated, unchanged)}, without its total row."""
    return {
        row[0]: tuple(int(cell.replace(",", "")) for cell in row[1:5])
        for row in table_rows(driver, css)
        if row[0] != "All tables"
    }


def _api_preview(service: Service, request_id: str) -> dict[str, Any]:
    response = service.client.get(f"/etl/import/{request_id}/promotion-preview")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _preview_figures(preview: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {t["table"]: (t["rows"], t["inserted"], t["updated"], t["unchanged"]) for t in preview["tables"]}


def _shown_preview(driver: WebDriver) -> dict[str, tuple[int, ...]]:
    """The promote confirmation's preview, once it has arrived and Promote may be pressed."""
    wait(
        driver,
        lambda d: d.find_element(By.ID, "promote-confirm").is_enabled() and table_rows(d, "#promote-preview"),
        "the promotion preview",
    )
    return _figures(driver, "#promote-preview")


def _open(driver: WebDriver, button: str, dialog: str) -> WebElement:
    driver.find_element(By.ID, button).click()
    return wait(
        driver, lambda d: [e for e in d.find_elements(By.ID, dialog) if e.is_displayed()], f"the {dialog}"
    )[0]


def test_promote_shows_the_preview_keeps_its_word_and_revert_puts_production_back(
    page: WebDriver, service: Service, demo: DemoSource, downloads: Path
) -> None:
    sign_in(page, service)
    first = new_import(page, demo.url)
    wait_state(page, "Validated")

    # The confirmation shows the preview: on an empty production, every row is inserted.
    _open(page, "promote", "promote-dialog")
    preview = _shown_preview(page)
    expected = _api_preview(service, first)
    assert preview == _preview_figures(expected)
    assert all(inserted == rows > 0 for rows, inserted, _, _ in preview.values()), preview
    assert text(page, "#promote-no-updates")
    shoot(page, "promote-preview")
    shoot_part(page, "promote-preview-dialog", "#promote-dialog")
    assert page.switch_to.active_element.get_attribute("id") == "promote-cancel"
    page.switch_to.active_element.send_keys(Keys.TAB)
    assert page.switch_to.active_element.get_attribute("id") == "promote-confirm"
    page.switch_to.active_element.send_keys(Keys.ENTER)
    wait_state(page, "Promoted")
    # The promotion keeps the preview's word (that it sends the preview's revision, the refusal below shows).
    assert wait(page, lambda d: _figures(d, "#promotion-table"), "the promotion's counts") == preview

    # Revert, through its own confirmation, which says what it will do.
    _open(page, "revert", "revert-dialog")
    inserted = sum(figures[1] for figures in preview.values())
    assert text(page, "#revert-removed") == (
        f"The {inserted:,} rows this promotion inserted will be deleted from production."
    )
    assert (
        text(page, "#revert-restored") == "The 0 rows it updated will get back the values they had before it."
    )
    assert text(page, "#revert-tenant") == "default"
    shoot(page, "revert-confirmation")
    shoot_part(page, "revert-confirmation-dialog", "#revert-dialog")
    assert page.switch_to.active_element.get_attribute("id") == "revert-cancel"
    page.switch_to.active_element.send_keys(Keys.TAB, Keys.ENTER)
    wait_state(page, "Reverted")
    assert "state-reverted" in str(
        page.find_element(By.CSS_SELECTOR, "#import-state .badge").get_attribute("class")
    )
    assert all(not rows for rows in service.production_rows().values())
    assert "Reverted by demo" in text(page, "#promotion-reverted")
    assert page.find_elements(By.ID, "revert") == []
    assert page.find_element(By.ID, "promote").text == "Promote again…"
    assert page.find_element(By.ID, "promote").is_enabled()
    shoot(page, "import-reverted")

    # A second wave, previewed; production moves (the first import promoted again) before it is confirmed.
    second_wave(demo.path)
    second = new_import(page, demo.url)
    wait_state(page, "Validated")
    _open(page, "promote", "promote-dialog")
    stale = _shown_preview(page)
    assert service.wait_promoted(first)["state"] == "Promoted"
    page.find_element(By.ID, "promote-confirm").click()
    refusal = wait(page, lambda d: text(d, "#promote-moved-message"), "the promotion's refusal")
    assert refusal.startswith("Production has moved since revision") and first in refusal, refusal
    assert page.find_element(By.ID, "promote-moved").get_attribute("role") == "alert"
    assert service.status(second)["state"] == "Validated"
    shoot(page, "promote-refused")
    shoot_part(page, "promote-refused-dialog", "#promote-dialog")
    page.find_element(By.ID, "promote-refresh").click()
    wait(page, lambda d: not d.find_element(By.ID, "promote-moved").is_displayed(), "the refusal to go")
    wait(page, lambda d: _shown_preview(d) != stale, "the preview against today's production")
    preview = _shown_preview(page)
    assert preview == _preview_figures(_api_preview(service, second))
    touched = {
        (t, kind): n
        for t, f in preview.items()
        for kind, n in zip(("inserted", "updated"), f[1:3], strict=True)
        if n
    }
    assert touched == {("Client", "inserted"): 2, ("Client", "updated"): 1, ("Matter", "updated"): 2}
    changed = page.find_element(By.CSS_SELECTOR, "#promote-changes [data-import-id='CL-00001']").text
    assert "Name: Jack Li → Jack Li-Smith" in changed, changed
    shoot(page, "promote-preview-changes")
    shoot_part(page, "promote-preview-changes-dialog", "#promote-dialog")
    for label, (width, height) in WIDTHS.items():  # the dialog scrolled down to the changed rows
        page.set_window_size(width, height)
        page.execute_script("document.getElementById('promote-changes').scrollIntoView()")
        time.sleep(0.2)
        dialog = page.find_element(By.ID, "promote-dialog")
        dialog.screenshot(str(artifacts() / f"console-promote-preview-changed-rows-{label}.png"))
    page.set_window_size(*WIDTHS["wide"])
    page.find_element(By.ID, "promote-changes-csv").click()
    changes = list(
        csv.DictReader(io.StringIO(downloaded(downloads, f"promotion-preview-{second}.csv").read_text()))
    )
    assert {(c["table"], c["importId"], c["column"]) for c in changes} == {
        ("Matter", "MAT-00001", "Description"),
        ("Matter", "MAT-00002", "ClientId"),
        ("Client", "CL-00001", "Name"),
    }
    page.find_element(By.ID, "promote-confirm").click()
    wait_state(page, "Promoted")
    assert wait(page, lambda d: _figures(d, "#promotion-table"), "the promotion's counts") == preview

    # The first import can no longer be reverted: the console says why, as the service does.
    page.get(f"{service.url}/#/imports/{first}")
    wait_state(page, "Promoted")
    _open(page, "revert", "revert-dialog")
    page.find_element(By.ID, "revert-confirm").click()
    shown = wait(page, lambda d: text(d, "#revert-refused-message"), "the revert's refusal")
    answer = service.client.post(f"/etl/import/{first}/revert")
    assert answer.status_code == 409 and answer.json()["error"]["message"] == shown
    assert second in shown
    assert service.status(first)["state"] == "Promoted"
    shoot(page, "revert-refused")
    shoot_part(page, "revert-refused-dialog", "#revert-dialog")
    page.switch_to.active_element.send_keys(Keys.ENTER)  # the focused Cancel
    assert not page.find_element(By.ID, "revert-dialog").is_displayed()
    no_script_ran(page)


def test_a_revert_past_the_before_images_retention_shows_the_410_as_given(
    page: WebDriver, serve: Serve, settings: Settings, demo: DemoSource
) -> None:
    with serve(settings=settings.model_copy(update={"revert_days": 1e-9})) as service:
        request_id = service.import_(demo.url)
        assert service.wait(request_id)["state"] == "Validated"
        assert service.wait_promoted(request_id)["state"] == "Promoted"
        before = service.production_rows()
        sign_in(page, service)
        page.get(f"{service.url}/#/imports/{request_id}")
        wait_state(page, "Promoted")
        _open(page, "revert", "revert-dialog")
        page.find_element(By.ID, "revert-confirm").click()
        shown = wait(page, lambda d: text(d, "#revert-refused-message"), "the revert's refusal")
        answer = service.client.post(f"/etl/import/{request_id}/revert")
        assert answer.status_code == 410 and answer.json()["error"]["message"] == shown
        assert "EFIMIS_REVERT_DAYS" in shown
        assert page.switch_to.active_element.get_attribute("id") == "revert-cancel"
        assert not page.find_element(By.ID, "revert-confirm").is_enabled()
        shoot_part(page, "revert-expired-dialog", "#revert-dialog")
        page.switch_to.active_element.send_keys(Keys.ENTER)
        wait(page, lambda d: not d.find_element(By.ID, "revert-dialog").is_displayed(), "the dialog to close")
        assert page.switch_to.active_element.get_attribute("id") == "revert"
        assert state(page) == "Promoted" and service.production_rows() == before
        no_script_ran(page)


def test_firm_with_errors_findings_filter_to_one_rule_show_markup_as_text_and_download(
    page: WebDriver, service: Service, demo_with_errors: DemoSource, downloads: Path
) -> None:
    sign_in(page, service)
    request_id = new_import(page, demo_with_errors.url)
    wait_state(page, "ValidationFailed")
    assert not page.find_element(By.ID, "promote").is_enabled()
    rules = {row[0]: int(row[2]) for row in table_rows(page, "#rules-table")}
    planted: dict[str, int] = {}
    for finding in demo_with_errors.planted:
        planted[finding.rule] = planted.get(finding.rule, 0) + 1
    assert rules == planted
    # Each rule says what to do (from the rule catalogue), not only what it found.
    assert all(row[4] and row[4] != "See the findings' messages." for row in table_rows(page, "#rules-table"))
    wait(page, lambda d: d.find_elements(By.ID, "findings-table"), "the findings")
    shoot(page, "import-with-errors")

    Select(page.find_element(By.ID, "filter-rule")).select_by_value("type")
    wait(
        page,
        lambda d: text(d, "#findings-table caption") == f"{planted['type']} findings",
        "the type findings",
    )
    shown = table_rows(page, "#findings-table")
    assert {row[0] for row in shown} == {"type"} and len(shown) == planted["type"]
    # The firm's markup is shown as the literal text it is, and nothing of it became an element.
    assert MARKUP in [row[5] for row in shown]
    assert page.find_elements(By.CSS_SELECTOR, "#findings img, #view img") == []
    shoot(page, "findings-filtered")
    shoot_part(page, "findings-part", "#findings")
    shoot_part(page, "rules-part", "#validation")

    page.find_element(By.ID, "findings-csv").click()
    rows = list(csv.DictReader(io.StringIO(downloaded(downloads, f"findings-{request_id}.csv").read_text())))
    assert {row["rule"] for row in rows} == {"type"} and len(rows) == planted["type"]
    assert MARKUP in {row["value"] for row in rows}
    no_script_ran(page)


def test_a_second_firm_sees_none_of_the_first_firms_imports(
    page: WebDriver, service: Service, demo: DemoSource
) -> None:
    first = service.import_(demo.url)
    service.wait(first)
    service.app.state.issuer.register("other-firm", "other-firm-secret", "other")
    sign_in(page, service, "other-firm", "other-firm-secret")
    assert text(page, "#who") == "other-firm · firm other"
    assert page.find_elements(By.ID, "no-imports")
    assert first not in page.find_element(By.TAG_NAME, "body").text
    page.get(f"{service.url}/#/imports/{first}")
    wait(page, lambda d: "could not be read" in text(d, "#summary"), "the refusal of the other firm's import")
    page.find_element(By.LINK_TEXT, "Audit").click()
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#audit-body .empty"), "an empty audit")
    no_script_ran(page)


def test_schema_page_offers_the_ddl_and_the_reference(page: WebDriver, serve: Serve, downloads: Path) -> None:
    with serve() as service:
        sign_in(page, service)
        page.find_element(By.LINK_TEXT, "Schema").click()
        link = wait(page, lambda d: d.find_elements(By.ID, "schema-sql"), "the DDL link")[0]
        assert wait(page, lambda d: table_rows(d, "#catalogue-table"), "the rule catalogue")
        shoot(page, "schema")
        link.click()
        name = link.get_attribute("download")
        assert "CREATE TABLE" in downloaded(downloads, str(name)).read_text()
        no_script_ran(page)


# These pages are served by the service itself (no CDN): with no network but loopback they still render.


def test_docs_list_swagger_ui_operations_offline(page: WebDriver, serve: Serve) -> None:
    with serve() as service:
        page.get(f"{service.url}/docs")
        operations = wait(
            page, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"), "Swagger UI's operations", 20
        )
        paths = {
            e.get_attribute("data-path") or e.text.replace("\u200b", "")
            for e in page.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        }
        assert "/etl/import" in paths and "/etl/imports" in paths, paths
        assert len(operations) >= 10
        shoot(page, "docs")


def test_redoc_renders_offline(page: WebDriver, serve: Serve) -> None:
    with serve() as service:
        page.get(f"{service.url}/redoc")
        wait(
            page,
            lambda d: d.find_elements(By.CSS_SELECTOR, "[data-section-id*='operation/']"),
            "ReDoc's operations",
            20,
        )
        assert "Efimis ETL" in page.find_element(By.TAG_NAME, "body").text
        shoot(page, "redoc")


def test_schema_reference_renders_offline_as_html(page: WebDriver, serve: Serve) -> None:
    with serve() as service:
        page.get(f"{service.url}/etl/schema-reference")
        wait(page, lambda d: d.find_elements(By.TAG_NAME, "h1"), "the reference", 20)
        body = page.find_element(By.TAG_NAME, "body").text
        # The introduction's Markdown is rendered, not printed.
        assert "**" not in body and "`" not in body
        assert len(page.find_elements(By.TAG_NAME, "table")) > 10
        assert page.find_elements(By.CSS_SELECTOR, "ul li, ol li")
        shoot(page, "schema-reference")
        no_script_ran(page)


def test_bars_move_without_a_reload_while_the_import_runs_and_cancel_stops_it(
    page: WebDriver, serve: Serve, demo: DemoSource, pg_url: str
) -> None:
    # The source's WorkItem table is locked by the test: the import is reliably still Importing.
    copy_to_postgresql(demo.path, pg_url)
    with serve() as service:
        sign_in(page, service)
        with hold_table(pg_url, "WorkItem") as held:
            request_id = new_import(page, pg_url)
            until(held.waiting, "the import to wait for the locked WorkItem table")
            wait_state(page, "Importing")
            page.execute_script("window.__sameDocument = true")
            assert page.find_element(By.ID, "cancel-import").is_enabled()
            assert not page.find_element(By.ID, "promote").is_enabled()
            shoot(page, "import-running")
        # Released: the page follows the import to the end on its own.
        wait_state(page, "Validated")
        wait(
            page,
            lambda d: (
                {e.text.strip() for e in d.find_elements(By.CSS_SELECTOR, "#progress-bars .percent")}
                == {"100 %"}
            ),
            "every bar at 100 %",
        )
        assert page.execute_script("return window.__sameDocument") is True, "the page was reloaded"
        assert service.status(request_id)["progress"]["percent"] == 100.0

        with hold_table(pg_url, "WorkItem") as held:
            cancelled = new_import(page, pg_url)
            until(held.waiting, "the second import to wait for the locked WorkItem table")
            wait(page, lambda d: d.find_elements(By.ID, "cancel-import"), "the Cancel button")[0].click()
            wait_state(page, "Cancelled")
            assert page.find_elements(By.ID, "cancel-import") == []
            assert not page.find_element(By.ID, "promote").is_enabled()
        assert service.wait(cancelled)["state"] == "Cancelled"

        # The list refreshes itself while an import runs, and stops once none does.
        def listed(d: WebDriver) -> dict[str, str]:
            return {row[0]: row[1] for row in table_rows(d, "#imports-table")}

        with hold_table(pg_url, "WorkItem") as held:
            running = service.import_(pg_url)
            until(held.waiting, "the third import to wait for the locked WorkItem table")
            page.find_element(By.LINK_TEXT, "Imports").click()
            wait(page, lambda d: listed(d).get(running) == "Importing", "the running import in the list")
            assert listed(page) == {running: "Importing", cancelled: "Cancelled", request_id: "Validated"}
            page.execute_script("window.__sameDocument = 'list'")
            shoot(page, "imports-running")
        wait(page, lambda d: listed(d).get(running) == "Validated", "the list to show the import Validated")
        assert page.execute_script("return window.__sameDocument") == "list", "the list was reloaded"
        no_script_ran(page)


def test_a_failed_import_shows_its_reason_first(page: WebDriver, serve: Serve, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # a database without the staging tables
    with serve() as service:
        sign_in(page, service)
        request_id = new_import(page, f"sqlite:///{empty}")
        wait_state(page, "Failed")
        reason = service.status(request_id)["failure"]["reason"]
        box = page.find_element(By.ID, "failure-reason")
        assert reason in box.text and box.get_attribute("role") == "alert"
        # Right under the title, above the summary and everything else on the page.
        assert box.location["y"] < page.find_element(By.ID, "summary").location["y"]
        shoot(page, "import-failed")
        no_script_ran(page)
