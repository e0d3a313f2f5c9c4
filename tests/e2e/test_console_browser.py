"""The central web console in a real browser (headless Chromium) on a real `posterm-central
serve` process: log in, the terminals page, find a card and adjust it, upload rules with an
error then a good file, the preview beside the current rules, publish; the audit trail shows
who did it; a report's plot (inline SVG) under the console's Content-Security-Policy.
Screenshots: POSTERM_SCREENSHOTS=docs/console keeps them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.central.helpers import REPO, CentralProcess, sqlite_dsn

from .kiosk_browser import Browser

PASSWORD = "console-demo-pass"
CARD = "7700000000026"
SIZE = (1280, 860)
GOOD_RULES = (REPO / "terminal" / "demo_data" / "rules.toml").read_text()
BAD_RULES = GOOD_RULES.replace("percent = 17", "percent = 170", 1)
CATALOG = ("sku,barcodes,name,price,categories\nfridge-x200,4006381333931,Fridge X200,1200000,appliances/fridges\n"
           "milk-1l,4600000000022,Milk 1 l,8990,grocery/dairy\n")


def cli(dsn: str, *args: str, stdin: str = "") -> str:
    done = subprocess.run([sys.executable, "-m", "central.cli", "--db", dsn, *args], input=stdin, text=True,
                          capture_output=True, cwd=REPO, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[Browser, str]]:
    dsn = sqlite_dsn(tmp_path)
    cli(dsn, "user", "add", "anna", "--role", "admin", stdin=PASSWORD + "\n")
    cli(dsn, "terminal", "add", "T01")
    cli(dsn, "terminal", "add", "T02")
    cli(dsn, "publish", "cards", str(REPO / "terminal" / "demo_data" / "cards.csv"))
    (tmp_path / "catalog.csv").write_text(CATALOG)
    cli(dsn, "publish", "catalog", str(tmp_path / "catalog.csv"), "--version", "2026-12")
    cli(dsn, "publish", "rules", str(REPO / "terminal" / "demo_data" / "rules.toml"), "--version", "demo-1")
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    browser = Browser(tmp_path / "chromium-profile", *SIZE)
    try:
        yield browser, server.url
    finally:
        browser.close()
        server.stop()


def wait_for(browser: Browser, script: str, *args: object) -> object:
    return browser.until(script, *args, shown="return document.querySelector('main')?.innerText.slice(0, 400)")


def submit(browser: Browser, form: str, fields: dict[str, str]) -> None:
    """Fill a form as a user types into it, then send it and wait for the next page."""
    from selenium.webdriver.common.by import By

    for name, value in fields.items():
        element = browser.driver.find_element(By.CSS_SELECTOR, f"{form} [name='{name}']")
        if element.get_attribute("type") != "file":
            element.clear()
        element.send_keys(value)
    browser.js("document.body.dataset.old = '1'")
    browser.driver.find_element(By.CSS_SELECTOR, f"{form} button[type='submit']").click()
    wait_for(browser, "return document.readyState === 'complete' && !document.body.dataset.old")


def test_login_card_adjust_rules_publish(console: tuple[Browser, str], tmp_path: Path) -> None:
    browser, url = console
    browser.driver.get(url + "/console/")
    wait_for(browser, "return document.getElementById('login')")
    browser.shot("1-login", tmp_path)
    submit(browser, "#login", {"name": "anna", "password": PASSWORD})
    assert browser.text("#who") == "anna (admin)"
    assert "T01" in browser.text("#terminals") and "T02" in browser.text("#terminals")
    browser.shot("2-terminals", tmp_path)

    browser.driver.get(url + "/console/cards")
    submit(browser, "#search", {"q": CARD})
    assert browser.text("#balance") == "10000"
    assert "A••• P•••" in browser.text("#card") and "Petrova" not in browser.text("main")
    submit(browser, "#adjust", {"points": "250", "reason": "goodwill: late delivery"})
    assert "adjusted by +250; balance 10250" in browser.text("#done")
    assert browser.text("#balance") == "10250"
    assert "card_adjust" in browser.text("#history") and "goodwill: late delivery" in browser.text("#history")
    browser.shot("3-card", tmp_path)

    browser.driver.get(url + "/console/rules")
    bad, good = tmp_path / "promo-bad.toml", tmp_path / "promo.toml"
    bad.write_text(BAD_RULES)
    good.write_text(GOOD_RULES.replace("\npercent = 5\n", "\npercent = 7\n", 1))
    submit(browser, "#upload", {"file": str(bad)})
    error = browser.text("#error") or browser.text("body")
    assert "promo-bad.toml" in error and "rule 'gold-17': field 'percent'" in error, error
    assert browser.text("#current-version") == "demo-1"
    browser.shot("4-rules-refused", tmp_path)
    submit(browser, "#upload", {"file": str(good)})
    assert "accepted" in browser.text("#checked")
    preview = browser.text("#preview")
    assert "current rules (demo-1)" in browser.text("main")
    # the standard card's 5 % → 7 % on the fridge and the milk (12 089.90): 604.50 off now, 846.29 new
    row = browser.js("return [...document.querySelectorAll('#preview tbody tr')].map(r => r.innerText)"
                     ".find(t => t.includes('standard card'))").replace("\u00a0", " ")
    assert "604.50" in row and "846.29" in row, preview
    browser.shot("5-rules-preview", tmp_path)
    submit(browser, "#publish", {"version": "promo-7"})
    assert "rules promo-7 published" in browser.text("#done")
    assert browser.text("#current-version") == "promo-7"

    browser.driver.get(url + "/console/audit")
    audit = browser.text("#audit")
    assert "publish_rules" in audit and "card_adjust" in audit and "anna" in audit
    browser.shot("6-audit", tmp_path)

    browser.driver.get(url + "/console/reports/liability")
    wait_for(browser, "return document.querySelector('#plot svg')")
    assert browser.js("return document.querySelector('#plot svg').getBoundingClientRect().height") > 100
    assert "never\t10500\t2" in browser.text("#rows")  # the seed cards' dateless lots: 10 250 + 250
    browser.shot("7-report-liability", tmp_path)

    # Coupons: rules with a series, published through the console, then codes issued there.
    coupon_rules = tmp_path / "promo-coupons.toml"
    coupon_rules.write_text(good.read_text() + COUPON_SERIES)
    browser.driver.get(url + "/console/rules")
    submit(browser, "#upload", {"file": str(coupon_rules)})
    assert "accepted" in browser.text("#checked")
    submit(browser, "#publish", {"version": "coupons-1"})
    browser.driver.get(url + "/console/coupons")
    assert "spring" in browser.text("#series") and "No double use booked." in browser.text("#double-uses")
    submit(browser, "#issue", {"count": "2", "valid_days": "30"})
    assert "issued 2 code(s) of spring" in browser.text("#done")
    assert browser.js("return document.querySelectorAll('#codes tbody tr').length") == 2
    browser.shot("8-coupons", tmp_path)


COUPON_SERIES = """
[[coupon_series]]
id = "spring"
single_use = true

[[rule]]
id = "spring-10"
kind = "discount"
percent = 10
when = { coupon = "spring" }
"""
