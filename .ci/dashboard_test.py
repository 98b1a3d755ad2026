#!/usr/bin/env python3
"""The dashboard (`GET /`) in a real headless Chromium, against a running healthscore.

.ci/dashboard.sh starts the server, pushes a saturated pool (DS_POOL_SATURATED, critical) from
source app-1 and runs this. It checks what issue 17 asks: the page loads with no console error,
shows the pushed issue with its suggested action, updates within 2 s after another push without
a reload, lists entities on demand, is reachable by keyboard, fits a 360 px phone, requests
nothing outside healthscore, and shows a lost connection when the server stops (and drops the
banner once it is back). Issues 14 and 16 add: the score strips and uptime shares start from
the history, and with read tokens on the page asks for one, refuses a wrong one and forgets it.
Screenshots go to --out (target/ by default).
"""

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

SATURATED = "datasources:DS_POOL_SATURATED"
HIGH = "datasources:DS_POOL_HIGH_UTILIZATION"
SATURATED_ACTION = "Increase the pool size or find the slow or leaked connections holding it"
PAGE_LIMIT = 50 * 1024


class Failed(Exception):
    pass


def wait_for(what, predicate, timeout, interval=0.05):
    """predicate() until truthy, or Failed naming `what`; returns (value, seconds taken)."""
    start = time.monotonic()
    last = None
    while True:
        try:
            value = predicate()
        except Exception as error:  # the DOM may be mid-update; retry until the deadline
            value, last = None, error
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise Failed(f"{what}: not within {timeout} s" + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


def check(condition, message):
    if not condition:
        raise Failed(message)


class Dashboard:
    def __init__(self, args):
        self.args = args
        self.url = args.url
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(args.url))
        self.console = []  # browser log entries read so far
        self.restarted = None
        profile = tempfile.mkdtemp(prefix="dashboard-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = args.chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--disable-default-apps",
                     f"--user-data-dir={profile}", "--window-size=1280,900"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(args.chromedriver))
        self.driver.set_script_timeout(10)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def read_console(self):
        entries = self.driver.get_log("browser")
        self.console.extend(entries)
        return entries

    def assert_no_console_error(self, when):
        self.read_console()
        severe = [e for e in self.console if e.get("level") == "SEVERE"]
        check(not severe, f"console errors {when}: " + json.dumps(severe, indent=1))

    def viewport(self, width, height=900, mobile=False):
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def screenshot(self, path, width, mobile=False):
        """The whole page at `width` CSS pixels."""
        self.viewport(width, 900, mobile)
        height = self.js("return Math.max(document.documentElement.scrollHeight, 400)")
        self.viewport(width, min(height, 6000), mobile)
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as out:
            out.write(base64.b64decode(shot["data"]))
        self.viewport(width, 900, mobile)

    def text(self, selector):
        return self.driver.find_element(By.CSS_SELECTOR, selector).text

    def status(self):
        return self.js("return document.getElementById('system-status').getAttribute('data-status')")

    def issue_codes(self):
        return self.js("return Array.from(document.querySelectorAll('#issues li[data-code]'))"
                       ".map(li => li.getAttribute('data-code'))")

    def push(self, snapshot):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(snapshot, f)
        try:
            subprocess.run([self.args.bin, "push", "--addr", self.args.grpc, "--source", "app-1",
                            "--ttl", "60s", f.name], check=True, stdout=subprocess.DEVNULL)
        finally:
            os.unlink(f.name)

    def close(self):
        try:
            self.driver.quit()
        finally:
            if self.restarted and self.restarted.poll() is None:
                self.restarted.terminate()
                self.restarted.wait(10)


def http_get(url):
    """(status, headers, body) of a GET; a 503 is an answer here, not an error."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers, answer.read()


# --- the checks, in order: each leaves the page as the next one expects ---------------------

def served_page(d):
    status, headers, body = http_get(d.url)
    check(status == 200, f"GET / answered {status}")
    check(headers.get("Content-Type", "").startswith("text/html"),
          f"GET / content type is {headers.get('Content-Type')!r}")
    csp = headers.get("Content-Security-Policy", "")
    check("default-src 'self'" in csp, f"GET / has no same-origin Content-Security-Policy: {csp!r}")
    check(len(body) < PAGE_LIMIT, f"the page is {len(body)} bytes, over {PAGE_LIMIT}")
    return f"{len(body)} bytes, text/html, CSP {csp!r}"


def loads_without_console_error(d):
    d.driver.get(d.url)
    _, took = wait_for("the pushed critical state shown", lambda: d.status() == "critical", 10)
    check(d.js("return document.documentElement.lang") == "en", "no lang on <html>")
    for landmark in ("header", "main", "footer"):
        check(d.driver.find_elements(By.TAG_NAME, landmark), f"no <{landmark}> landmark")
    check(d.js("return document.querySelector('[aria-live]') !== null"), "no aria-live region")
    check(not d.driver.find_element(By.ID, "login").is_displayed(),
          "the token form is shown on a server without tokens")
    d.assert_no_console_error("on load")
    return f"critical shown {took:.2f} s after load, no token form"


def shows_the_pushed_issue(d):
    issue = d.driver.find_element(By.CSS_SELECTOR, f'#issues li[data-code="{SATURATED}"]')
    text = issue.text
    for part in (SATURATED_ACTION, "Datasource 'mainDB' pool is saturated", "DS_POOL_SATURATED",
                 "critical", "mainDB", "app-1", "utilization", "96.9", "active", "31", "max", "32"):
        check(part in text, f"the issue does not show {part!r}:\n{text}")
    # Not colour alone: a word and a shape in the badges.
    status = d.text("#system-status")
    check("critical" in status and "✖" in status, f"system status reads {status!r}")
    check("50" in d.text("#system-score"), "system score is not 50")
    card = d.driver.find_element(By.CSS_SELECTOR, '.card[data-subsystem="datasources"]')
    for part in ("Datasources", "✖ critical", "50 / 100", "1 issue"):
        check(part in card.text, f"the datasources card does not show {part!r}:\n{card.text}")
    cards = d.js("return Array.from(document.querySelectorAll('.card'))"
                 ".map(c => [c.getAttribute('data-subsystem'), c.getAttribute('data-status')])")
    check(len(cards) == 9, f"expected 9 subsystem cards, got {cards}")
    caches = d.driver.find_element(By.CSS_SELECTOR, '.card[data-subsystem="caches"]').text
    check("no data" in caches, f"a subsystem nothing reports into is not shown as such:\n{caches}")
    return "issue, suggested action, entity, source, metrics; 9 cards"


def entities_on_demand(d):
    button = d.driver.find_element(By.CSS_SELECTOR, '.card[data-subsystem="datasources"] .entities-toggle')
    check(button.get_attribute("aria-expanded") == "false", "entities open before asked")
    button.click()
    entity, took = wait_for("the mainDB entity listed", lambda: d.driver.find_element(
        By.CSS_SELECTOR, '.card[data-subsystem="datasources"] li.entity[data-entity="mainDB"]'), 5)
    text = entity.text
    for part in ("mainDB", "app-1", "critical", "stale", "no", "threadsAwaiting", "utilization"):
        check(part in text, f"the entity does not show {part!r}:\n{text}")
    check(button.get_attribute("aria-expanded") == "true", "aria-expanded not true when open")
    # A scraped target's group labels (dashboard.sh lists it in a file_sd file).
    scraped, _ = wait_for("the scraped labelledDB entity listed", lambda: d.driver.find_element(
        By.CSS_SELECTOR, '.card[data-subsystem="datasources"] li.entity[data-entity="labelledDB"]'), 5)
    check("team=payments" in scraped.text, f"the scraped entity does not show its labels:\n{scraped.text}")
    d.assert_no_console_error("after listing entities")
    return f"listed in {took:.2f} s"


def opens_on_the_subsystem_of_a_link(d):
    # An alert's generatorURL: /?subsystem=KEY opens that card's entities.
    d.driver.get(d.url.rstrip("/") + "/?subsystem=datasources")
    _, took = wait_for("the linked subsystem's entities", lambda: d.driver.find_element(
        By.CSS_SELECTOR, '.card[data-subsystem="datasources"] li.entity[data-entity="mainDB"]'), 5)
    button = d.driver.find_element(By.CSS_SELECTOR, '.card[data-subsystem="datasources"] .entities-toggle')
    check(button.get_attribute("aria-expanded") == "true", "the linked card's entities are not open")
    other = d.driver.find_element(By.CSS_SELECTOR, '.card[data-subsystem="caches"] .entities-toggle')
    check(other.get_attribute("aria-expanded") == "false", "a card the link did not name opened")
    d.assert_no_console_error("after opening a linked subsystem")
    d.driver.get(d.url)
    return f"opened in {took:.2f} s"


def keyboard_reaches_entity_buttons(d):
    d.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    d.js("document.body.setAttribute('tabindex', '-1'); document.body.focus();"
         "document.body.removeAttribute('tabindex')")
    reached = []
    for _ in range(60):
        ActionChains(d.driver).send_keys(Keys.TAB).perform()
        info = d.js("const e = document.activeElement; return e ? [e.tagName, e.className,"
                    " getComputedStyle(e).outlineStyle, e.textContent.trim()] : null")
        reached.append(info)
        if info and "entities-toggle" in (info[1] or ""):
            check(info[0] == "BUTTON", f"the entity toggle is a {info[0]}, not a button")
            check(info[2] not in ("none", ""), "no visible focus outline on the entity button")
            return f"reached after {len(reached)} tabs: {info[3]!r}"
    raise Failed(f"60 tabs never reached an entity button: {reached}")


def updates_live_without_reload(d):
    d.js("window.__dashboardMarker = 'still-here'")
    navigations = d.js("return performance.getEntriesByType('navigation').length")
    before = d.issue_codes()
    check(before == [SATURATED], f"issues before the push: {before}")
    d.push({"datasources": [{"name": "mainDB", "active": 31, "max": 32},
                            {"name": "reportDB", "active": 27, "max": 32}]})
    pushed = time.monotonic()
    codes, _ = wait_for("the second issue shown", lambda: (lambda c: c if HIGH in c else None)(
        d.issue_codes()), 2.0)
    took = time.monotonic() - pushed
    check(d.js("return window.__dashboardMarker") == "still-here", "the page reloaded (marker gone)")
    check(d.js("return performance.getEntriesByType('navigation').length") == navigations,
          "a navigation happened")
    _, _, body = http_get(d.origin + "/v1/health")
    expected = [i["code"] for i in json.loads(body)["issues"]]
    check(codes == expected, f"issues shown in order {codes}, the report's order is {expected}")
    card = d.driver.find_element(By.CSS_SELECTOR, '.card[data-subsystem="datasources"]').text
    check("2 issues" in card, f"the datasources card did not update:\n{card}")
    # The open entity list follows the change too.
    wait_for("reportDB in the open entity list", lambda: d.driver.find_element(
        By.CSS_SELECTOR, '.card[data-subsystem="datasources"] li.entity[data-entity="reportDB"]'), 2.0)
    d.assert_no_console_error("after a live update")
    return f"second issue shown {took:.2f} s after the push, no reload, order {codes}"


def fits_a_phone_and_a_wall(d):
    d.viewport(360, 800, mobile=True)
    time.sleep(0.2)
    scroll, client = d.js("return [document.documentElement.scrollWidth,"
                          " document.documentElement.clientWidth]")
    check(scroll <= client, f"horizontal scroll at 360 px: scrollWidth {scroll} > clientWidth {client}")
    d.screenshot(d.args.out + "/dashboard-360.png", 360, mobile=True)
    d.viewport(1280, 900)
    columns = d.js("return getComputedStyle(document.getElementById('cards'))"
                   ".gridTemplateColumns.split(' ').length")
    check(columns >= 3, f"only {columns} card columns at 1280 px")
    d.screenshot(d.args.out + "/dashboard-1280.png", 1280)
    # prefers-color-scheme: the dark palette differs from the light one.
    backgrounds = []
    for scheme in ("light", "dark"):
        d.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": scheme}]})
        backgrounds.append(d.js("return getComputedStyle(document.body).backgroundColor"))
    d.screenshot(d.args.out + "/dashboard-1280-dark.png", 1280)
    d.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    check(backgrounds[0] != backgrounds[1], f"same background light and dark: {backgrounds}")
    return f"360 px: scrollWidth {scroll} <= {client}; {columns} columns at 1280 px; {backgrounds}"


def requests_stay_on_healthscore(d):
    urls = d.js("return performance.getEntriesByType('resource').map(e => e.name)"
                ".concat(performance.getEntriesByType('navigation').map(e => e.name))")
    outside = [u for u in urls if "{0.scheme}://{0.netloc}".format(urlsplit(u)) != d.origin]
    check(urls, "the Performance API recorded no request")
    check(not outside, f"requests outside {d.origin}: {outside}")
    d.assert_no_console_error("in normal operation")
    return f"{len(urls)} requests, all to {d.origin}"


def shows_lost_connection_and_recovers(d):
    banner = d.driver.find_element(By.ID, "banner")
    check(not banner.is_displayed(), "the connection banner shows while connected")
    os.kill(d.args.server_pid, signal.SIGTERM)
    stopped = time.monotonic()
    wait_for("the server process gone", lambda: not alive(d.args.server_pid), 10)
    _, _ = wait_for("the lost-connection banner", lambda: banner.is_displayed()
                    and "Connection lost" in banner.text, 5)
    took = time.monotonic() - stopped
    check(d.js("return document.querySelector('#banner').getAttribute('role')") == "alert",
          "the banner is not announced (role=alert)")
    # Connection-refused retries log network errors by design; none before this point.
    d.read_console()
    if not d.args.restart:
        return f"banner {banner.text!r} {took:.2f} s after the stop"
    d.restarted = subprocess.Popen(d.args.restart, shell=True, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, back = wait_for("the banner gone once the server is back", lambda: not banner.is_displayed(), 15)
    return f"banner shown {took:.2f} s after the stop, gone {back:.2f} s after the restart"


def strips_start_from_the_history(d):
    """The saturated push came before the page opened: the strips and shares show it."""
    uptime = d.text("#system-uptime")
    check("critical" in uptime and "Last hour" in uptime, f"system uptime reads {uptime!r}")
    card = d.driver.find_element(By.CSS_SELECTOR, '[data-subsystem="datasources"] .trend-text').text
    check("Score since" in card and "page opened" not in card,
          f"the datasources strip does not start from the history: {card!r}")
    shares = d.driver.find_element(By.CSS_SELECTOR, '[data-subsystem="datasources"] .uptime').text
    check("critical" in shares, f"the datasources card's uptime reads {shares!r}")
    return f"{uptime}; datasources: {card}"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def asks_for_a_token_when_reads_need_one(d):
    """A second server with tokens: the page asks for one, refuses a wrong one, shows the
    reports live with the right one, and forgets it on request."""
    # A base64 token: its + / = must survive the cookie.
    read, push = "dashboard+read/token=0123456789==", "dashboard-push-token-0123456789"
    folder = tempfile.mkdtemp(prefix="dashboard-tokens-")
    config = os.path.join(folder, "config.toml")
    with open(config, "w") as f:
        f.write('[[auth.tokens]]\nenv = "DASH_READ_TOKEN"\nscopes = ["read"]\n'
                '[[auth.tokens]]\nenv = "DASH_PUSH_TOKEN"\nscopes = ["push"]\n')
    grpc, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = dict(os.environ, DASH_READ_TOKEN=read, DASH_PUSH_TOKEN=push, HEALTHSCORE_HTTP__LISTEN=http,
               HEALTHSCORE_HOST__ENABLED="false", HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS="0")
    server = subprocess.Popen([d.args.bin, "serve", "--listen", grpc, "--config", config], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("the token server", lambda: http_get(f"http://{http}/livez")[0] == 200, 10)
        d.driver.get(f"http://{http}/")
        form = d.driver.find_element(By.ID, "login")
        wait_for("the token form", form.is_displayed, 5)
        check(not d.driver.find_element(By.ID, "main").is_displayed(), "reports shown without a token")
        field = d.driver.find_element(By.ID, "token")
        field.send_keys("a-wrong-token-0123456789", Keys.ENTER)
        wait_for("the refusal", lambda: d.text("#login-error") != "", 5)
        check(form.is_displayed(), "the form left after a wrong token")
        refusal = d.text("#login-error")
        field.send_keys(read, Keys.ENTER)
        wait_for("the reports", lambda: d.driver.find_element(By.ID, "main").is_displayed(), 5)
        wait_for("a live status", lambda: d.status() in ("healthy", "critical"), 5)
        check(read not in d.driver.current_url, "the token is in the address")
        check(d.js("return window.localStorage.length") == 0, "something went to localStorage")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"datasources": [{"name": "mainDB", "active": 31, "max": 32}]}, f)
        subprocess.run([d.args.bin, "push", "--addr", grpc, "--source", "app-1", f.name], check=True,
                       env=dict(os.environ, HEALTHSCORE_TOKEN=push), stdout=subprocess.DEVNULL)
        os.unlink(f.name)
        wait_for("the pushed issue, live", lambda: SATURATED in d.issue_codes(), 5)
        d.driver.find_element(By.ID, "forget").click()
        wait_for("the form again", form.is_displayed, 5)
        cookie = d.js("return document.cookie")
        check("healthscore_token" not in cookie, f"the cookie stayed: {cookie!r}")
        return f"wrong token refused ({refusal!r}); the right one shows the live reports; forgotten"
    finally:
        server.terminate()
        server.wait(10)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of the shell that started it counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


CHECKS = [served_page, loads_without_console_error, shows_the_pushed_issue,
          strips_start_from_the_history, entities_on_demand, keyboard_reaches_entity_buttons,
          updates_live_without_reload, fits_a_phone_and_a_wall, requests_stay_on_healthscore,
          opens_on_the_subsystem_of_a_link,
          shows_lost_connection_and_recovers, asks_for_a_token_when_reads_need_one]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the dashboard, http://host:port/")
    parser.add_argument("--bin", required=True, help="the healthscore binary (for push)")
    parser.add_argument("--grpc", required=True, help="the server's gRPC address, host:port")
    parser.add_argument("--server-pid", type=int, required=True, help="the process to stop")
    parser.add_argument("--restart", help="shell command that starts the server again")
    parser.add_argument("--out", default="target", help="where the screenshots go")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()

    d = Dashboard(args)
    passed = failed = 0
    try:
        for test in CHECKS:
            start = time.monotonic()
            try:
                detail = test(d)
            except Exception as failure:  # Failed, or Selenium's own (no such element...)
                failed += 1
                print(f"FAIL {test.__name__}: {failure}", flush=True)
                # The later checks build on this one.
                break
            passed += 1
            print(f"ok   {test.__name__} ({time.monotonic() - start:.2f} s): {detail}", flush=True)
    finally:
        d.close()
    skipped = len(CHECKS) - passed - failed
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
