"""The management web page in headless Chromium (Debian's), driven by selenium
through Debian's chromedriver. run.sh starts the broker and sets:

WARREN_URL, WARREN_AMQP_PORT, BROWSER_PROFILE, BROWSER_SCREENSHOTS, CHROMIUM,
CHROMEDRIVER. Arguments: the names of the tests to run (default: all).

Prints one line per test and ends with `browser: N passed, M failed`.
"""

import base64
import concurrent.futures
import json
import os
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import pika
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["WARREN_URL"]
AMQP_PORT = int(os.environ["WARREN_AMQP_PORT"])
SHOTS = os.environ["BROWSER_SCREENSHOTS"]
DOWNLOADS = os.path.join(os.environ["BROWSER_PROFILE"] + "-downloads")
WAIT = 15  # seconds for anything the page shows (it refreshes every 5 s)


# --- the API, for setting up and checking -------------------------------------

def api(method, path, body=None, user="guest", password="guest"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        if method in ("DELETE",) and e.code == 404:
            return None
        raise AssertionError(f"{method} {path}: {e.code} {e.read()!r}") from e


def q(vhost_or_name):
    return urllib.parse.quote(vhost_or_name, safe="")


def amqp():
    params = pika.ConnectionParameters(
        host="127.0.0.1", port=AMQP_PORT, credentials=pika.PlainCredentials("guest", "guest"),
        client_properties={"connection_name": "browser-test"}, heartbeat=0,
    )
    return pika.BlockingConnection(params)


# --- the browser ------------------------------------------------------------------

def make_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ["CHROMIUM"]
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--user-data-dir=" + os.environ["BROWSER_PROFILE"]]:
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": DOWNLOADS, "download.prompt_for_download": False})
    service = Service(executable_path=os.environ["CHROMEDRIVER"])
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


class Page:
    def __init__(self, driver):
        self.d = driver

    def wait(self, cond, what, timeout=WAIT):
        def attempt(_):
            try:
                return cond()
            except (StaleElementReferenceException, WebDriverException):
                return False
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.2).until(attempt)
        except Exception as e:
            raise AssertionError(f"timed out waiting for {what}") from e

    def css(self, selector):
        return self.d.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector):
        return self.d.find_elements(By.CSS_SELECTOR, selector)

    def visible(self, selector):
        els = self.all(selector)
        return els[0] if els and els[0].is_displayed() else None

    def go(self, hash_):
        old = self.all("#page")
        self.d.get(f"{URL}/#{hash_}")
        if old:  # the page redraws into a new #page: wait for the old one to go
            def gone():
                try:
                    old[0].tag_name
                    return False
                except StaleElementReferenceException:
                    return True
            try:
                WebDriverWait(self.d, 3, poll_frequency=0.1).until(lambda _: gone())
            except Exception:
                pass
        self.wait(lambda: self.visible("#page h1"), f"the page at #{hash_}")

    def logout_now(self, start="/"):
        self.d.get(URL + "/")
        self.d.execute_script("sessionStorage.clear()")
        self.d.get(f"{URL}/#{start}")
        self.wait(lambda: self.visible("#login-user"), "the login form")

    def login(self, user="guest", password="guest", expect_ok=True, start="/"):
        self.logout_now(start)
        self.css("#login-user").send_keys(user)
        self.css("#login-pass").send_keys(password)
        self.css("#login-submit").click()
        if expect_ok:
            self.wait(lambda: self.visible("#nav") and self.visible("#page h1"), "the page after login")

    def field(self, form, label):
        """The control labelled `label` inside `form` (a CSS selector)."""
        def find():
            for lab in self.all(f"{form} label"):
                if lab.text.strip() == label:
                    return self.css("#" + lab.get_attribute("for"))
            return None
        return self.wait(find, f"the field {label!r} in {form}")

    def text(self, selector):
        # The page redraws its tables every 5 s: read again when one went stale.
        for _ in range(5):
            try:
                return self.css(selector).text
            except StaleElementReferenceException:
                time.sleep(0.1)
        return self.css(selector).text

    def click(self, selector):
        def attempt():
            self.css(selector).click()
            return True
        self.wait(attempt, f"clicking {selector}")

    def click_button(self, text, scope="#page"):
        def attempt():
            for b in self.all(f"{scope} button"):
                if b.text.strip() == text and b.is_displayed() and b.is_enabled():
                    b.click()
                    return True
            return False
        self.wait(attempt, f"the button {text!r}")

    def flash(self, contains):
        self.wait(lambda: any(contains in e.text for e in self.all("#flash div")), f"the message {contains!r}")

    def shot(self, name):
        self.d.save_screenshot(os.path.join(SHOTS, f"{name}.png"))

    def no_alert(self):
        try:
            alert = self.d.switch_to.alert
            text = alert.text
            alert.dismiss()
            raise AssertionError(f"an alert opened: {text!r}")
        except WebDriverException:
            pass


# --- the tests --------------------------------------------------------------------

QUEUE = "browser.orders"
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def failed_login(p):
    p.login("guest", "wrong", expect_ok=False)
    p.wait(lambda: "Login failed" in p.text("#login-error"), "the login error")
    assert not p.visible("#nav"), "the navigation shows after a failed login"
    # A user without a management tag is refused as the API refuses it.
    api("PUT", "/api/users/plain-user", {"password": "plain-pass", "tags": ""})
    api("PUT", "/api/permissions/%2F/plain-user", {"configure": ".*", "write": ".*", "read": ".*"})
    p.login("plain-user", "plain-pass", expect_ok=False)
    p.wait(lambda: "no management tag" in p.text("#login-error"), "the refusal of a user without tags")
    assert not p.visible("#nav")
    api("DELETE", "/api/users/plain-user")


@test
def login_and_logout(p):
    p.login()
    p.wait(lambda: p.visible("#totals"), "the overview totals")
    assert "guest" in p.text("#who-name")
    labels = [e.text for e in p.all("#totals dt")]
    for want in ["Connections", "Channels", "Queues", "Consumers", "Ready", "Unacked"]:
        assert want in labels, f"{want} missing from the totals: {labels}"
    assert len(p.all("figure.chart svg")) == 2, "the overview has two charts"
    p.click("#logout")
    p.wait(lambda: p.visible("#login-user"), "the login form after logging out")
    assert p.d.execute_script("return sessionStorage.getItem('warren.auth')") is None


@test
def keyboard_navigation(p):
    p.login()
    p.d.get(URL + "/#/")
    p.wait(lambda: p.visible("#totals"), "the overview")
    p.d.execute_script("document.activeElement && document.activeElement.blur(); window.focus();")
    body = p.css("body")
    body.send_keys(Keys.TAB)
    reached = []
    for _ in range(12):
        el = p.d.switch_to.active_element
        reached.append(el.text.strip())
        if el.text.strip() == "Queues" and el.tag_name == "a":
            break
        el.send_keys(Keys.TAB)
    assert reached[0] == "Skip to content", f"the skip link is not first: {reached}"
    for link in ["Overview", "Connections", "Channels", "Exchanges", "Queues"]:
        assert link in reached, f"Tab did not reach {link}: {reached}"
    # The focused link has a visible outline.
    outline = p.d.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), f"no visible focus (outline {outline})"
    p.d.switch_to.active_element.send_keys(Keys.ENTER)
    p.wait(lambda: p.text("#page h1") == "Queues", "the queues page after Enter")
    p.wait(lambda: p.d.switch_to.active_element.text == "Queues" and p.d.switch_to.active_element.tag_name == "h1",
           "the focus on the new page's heading")
    # The skip link jumps to the content without changing the page.
    p.d.execute_script("document.querySelector('.skip').focus()")
    assert p.d.switch_to.active_element.text == "Skip to content"
    p.d.switch_to.active_element.send_keys(Keys.ENTER)
    p.wait(lambda: p.d.switch_to.active_element.text == "Queues", "the focus on the heading after the skip link")
    assert p.d.current_url.endswith("#/queues"), p.d.current_url


@test
def create_queue(p):
    api("DELETE", f"/api/queues/%2F/{q(QUEUE)}")
    p.login()
    p.go("/queues")
    p.field("#add-queue", "Name").send_keys(QUEUE)
    Select(p.field("#add-queue", "Virtual host")).select_by_visible_text("/")
    p.field("#add-queue", "Arguments (JSON object)").send_keys('{"x-max-length": 1000}')
    p.click_button("Add queue")
    p.flash(f"Queue {QUEUE} added")
    p.field("#page", "Filter by name").send_keys("browser.orders")
    p.wait(lambda: any(a.text == QUEUE for a in p.all("#queues-table a")), "the new queue in the list")
    got = api("GET", f"/api/queues/%2F/{q(QUEUE)}")
    assert got["arguments"].get("x-max-length") == 1000, got["arguments"]


def ensure_queue():
    api("DELETE", f"/api/queues/%2F/{q(QUEUE)}")
    api("PUT", f"/api/queues/%2F/{q(QUEUE)}", {"durable": True, "arguments": {}})


def ready_on_page(p):
    return p.text("[data-field=messages_ready]")


@test
def publish_depth_and_rate(p):
    ensure_queue()
    api("DELETE", f"/api/queues/%2F/{q(QUEUE)}/contents")
    p.login()
    p.go(f"/queues/%2F/{q(QUEUE)}")
    p.wait(lambda: ready_on_page(p) == "0", "an empty queue")
    # Through the page's publish form.
    p.field("#publish-form", "Payload").send_keys("hello from the browser")
    p.click_button("Publish message")
    p.flash("Message published")
    p.wait(lambda: ready_on_page(p) == "1", "the depth to become 1")
    # Over AMQP with pika, spread over 5 s so a rate has something to measure.
    conn = amqp()
    ch = conn.channel()
    for i in range(50):
        ch.basic_publish("", QUEUE, f"pika {i}".encode())
        time.sleep(0.1)
    conn.close()
    p.wait(lambda: ready_on_page(p) == "51", "the depth to become 51 (the page refreshes)")
    p.go("/queues")
    p.wait(lambda: any(QUEUE in r.text and "51" in r.text for r in p.all("#queues-table tbody tr")),
           "the queue list showing 51 messages")
    # The publish rate, once the API reports message_stats.
    stats = api("GET", f"/api/queues/%2F/{q(QUEUE)}").get("message_stats") or {}
    if "publish_details" in stats:
        p.go(f"/queues/%2F/{q(QUEUE)}")
        conn = amqp()
        ch = conn.channel()
        stop = threading.Event()

        def publish():
            while not stop.is_set():
                ch.basic_publish("", QUEUE, b"rate")
                time.sleep(0.05)
        t = threading.Thread(target=publish)
        t.start()
        try:
            p.wait(lambda: p.text("[data-field=publish_rate]") not in ("\u2013", "0.0/s"),
                   "the publish rate to move above 0", timeout=25)
        finally:
            stop.set()
            t.join()
            conn.close()
        print("   (message_stats present: checked the publish rate moved above 0)")
    else:
        print("   (the API reports no message_stats yet: the publish-rate check was skipped)")


# Fields as RabbitMQ's API names them, added to the broker's answers inside the
# page (a wrapped fetch), so the page's reading of them is checked whether or
# not this broker reports them yet.
FAKE_STATS = """
const realFetch = window.fetch;
window.fetch = async (...args) => {
  const r = await realFetch(...args);
  if (!/\\/api\\/(overview|queues)/.test(String(args[0])) || !r.ok) return r;
  const data = await r.json();
  const add = (o) => {
    o.message_stats = {publish: 1000, publish_details: {rate: 12.5}, deliver_get: 500,
                       deliver_get_details: {rate: 7.25}, ack: 400, ack_details: {rate: 3}};
    if (String(args[0]).includes('msg_rates_age')) {  // samples, newest first
      const now = Date.now();
      o.message_stats.publish_details.samples = [0, 1, 2, 3].map((i) => ({sample: 1000 - 50 * i, timestamp: now - 5000 * i}));
    }
    o.messages_details = {rate: 5.25};
    if ('messages_ready' in o) o.head_message_age_seconds = 75;
  };
  if (Array.isArray(data.items)) data.items.forEach(add); else if (data && !Array.isArray(data)) add(data);
  return new Response(JSON.stringify(data), {status: r.status, headers: r.headers});
};
"""


@test
def rates_and_age_shown(p):
    ensure_queue()
    api("POST", "/api/exchanges/%2F/amq.default/publish",
        {"properties": {}, "routing_key": QUEUE, "payload": "waiting", "payload_encoding": "string"})
    p.login(start="/queues")  # the overview's first load comes after the fake
    p.d.execute_script(FAKE_STATS)
    p.d.execute_script("location.hash = '#/'")
    p.wait(lambda: p.visible("#totals"), "the overview")
    assert p.text("[data-series=publish]") == "12.5/s", p.text("[data-series=publish]")
    assert p.text("[data-rate=deliver_get]") == "7.3/s"
    lines = p.all("polyline.s-publish")
    assert lines, "no publish line in the rates chart"
    # Three rates from the four samples, then the current one.
    points = lines[0].get_attribute("points").split()
    assert len(points) >= 4, f"the chart did not start from the API's samples: {points}"
    p.d.execute_script("location.hash = '#/queues'")
    p.wait(lambda: p.text("#page h1") == "Queues", "the queue list")
    p.wait(lambda: any(QUEUE in r.text for r in p.all("#queues-table tbody tr")), "the queue row")
    row = next(r.text for r in p.all("#queues-table tbody tr") if QUEUE in r.text)
    for want in ["12.5/s", "7.3/s", "3.0/s", "1 min 15 s"]:
        assert want in row, f"{want!r} missing from the queue row {row!r}"
    api("DELETE", f"/api/queues/%2F/{q(QUEUE)}")


@test
def get_purge_delete(p):
    ensure_queue()
    api("DELETE", f"/api/queues/%2F/{q(QUEUE)}/contents")
    api("POST", "/api/exchanges/%2F/amq.default/publish",
        {"properties": {}, "routing_key": QUEUE, "payload": "get me <b>back</b>", "payload_encoding": "string"})
    p.login()
    p.go(f"/queues/%2F/{q(QUEUE)}")
    p.wait(lambda: ready_on_page(p) == "1", "one message")
    Select(p.field("#get-form", "Ack mode")).select_by_value("ack_requeue_true")
    p.click_button("Get messages")
    p.wait(lambda: "get me <b>back</b>" in p.text("#got-messages"), "the message's payload, as text")
    assert ready_on_page(p) == "1", "a requeued get removed the message"
    # Purge, confirmed in place.
    p.click("[data-action=purge]")
    p.click("[data-confirm=yes]")
    p.flash(f"Queue {QUEUE} purged")
    p.wait(lambda: ready_on_page(p) == "0", "the depth after purging")
    # Delete.
    p.click("[data-action=delete]")
    p.click("[data-confirm=yes]")
    p.wait(lambda: p.text("#page h1") == "Queues", "the queue list after deleting")
    p.flash(f"Queue {QUEUE} deleted")
    names = [x["name"] for x in api("GET", "/api/queues/%2F")]
    assert QUEUE not in names, names


@test
def names_are_escaped(p):
    evil = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    api("PUT", f"/api/queues/%2F/{q(evil)}", {"durable": False, "auto_delete": False, "arguments": {}})
    try:
        p.login()
        p.go("/queues")
        p.field("#page", "Filter by name").send_keys("<script>")
        p.wait(lambda: any(a.text == evil for a in p.all("#queues-table a")), "the name shown as text")
        p.click("#queues-table tbody a")
        p.wait(lambda: p.text("#page h1") == f"Queue {evil}", "the detail page of the odd name")
        assert p.d.execute_script("return window.pwned") is None, "a queue name ran as HTML"
        p.no_alert()
    finally:
        api("DELETE", f"/api/queues/%2F/{q(evil)}")


@test
def exchange_bindings_and_route_explain(p):
    api("PUT", "/api/exchanges/%2F/browser.topic", {"type": "topic", "durable": True})
    api("PUT", "/api/queues/%2F/browser.eu", {"durable": True})
    try:
        p.login()
        p.go("/exchanges/%2F/browser.topic")
        p.field("#add-binding", "Destination").send_keys("browser.eu")
        p.field("#add-binding", "Routing key").send_keys("order.eu.*")
        p.click_button("Bind")
        p.flash("Binding added")
        p.wait(lambda: "order.eu.*" in p.text("#exchange-bindings"), "the new binding")
        p.field("#route-explain", "Routing key").send_keys("order.eu.paris")
        p.click_button("Explain")
        p.wait(lambda: "browser.eu" in p.text("#route-result"), "route explain naming the queue")
        assert "Routed to 1 queue" in p.text("#route-result"), p.text("#route-result")
        p.field("#route-explain", "Routing key").clear()
        p.field("#route-explain", "Routing key").send_keys("order.us.nyc")
        p.click_button("Explain")
        p.wait(lambda: "Not routed" in p.text("#route-result"), "route explain finding no queue")
        p.click("#exchange-bindings button.danger")
        p.click("[data-confirm=yes]")
        p.flash("Binding removed")
    finally:
        api("DELETE", "/api/exchanges/%2F/browser.topic")
        api("DELETE", "/api/queues/%2F/browser.eu")


@test
def close_connection(p):
    conn = amqp()
    conn.channel()
    try:
        p.login()
        p.go("/connections")
        p.wait(lambda: len(p.all("#connections-table tbody a")) >= 1, "the pika connection in the list")
        p.click("#connections-table tbody a")
        p.wait(lambda: p.text("#page h1").startswith("Connection "), "the connection page")
        assert "browser-test" in p.text("#page pre"), "client properties show the connection name"
        p.click("[data-action=close]")
        p.click("[data-confirm=yes]")
        p.wait(lambda: p.text("#page h1") == "Connections", "the list after closing")
        deadline = time.time() + 10
        closed = False
        while time.time() < deadline:
            try:
                conn.process_data_events(time_limit=0.2)
            except Exception:  # pika raises ConnectionClosedByBroker
                closed = True
                break
            if conn.is_closed:
                closed = True
                break
        assert closed, "the broker did not close the pika connection"
        p.wait(lambda: api("GET", "/api/connections") == [], "the connection gone from the API")
    finally:
        if conn.is_open:
            conn.close()


@test
def admin_users_and_policies(p):
    p.login()
    p.go("/admin/users")
    p.field("#add-user", "Username").send_keys("browser-admin")
    p.field("#add-user", "Password").send_keys("s3cret")
    p.field("#add-user", "Tags (comma-separated)").send_keys("monitoring")
    p.click_button("Save user")
    p.flash("User browser-admin saved")
    p.wait(lambda: "browser-admin" in p.text("#users-table"), "the new user")
    assert api("GET", "/api/users/browser-admin")["tags"] in (["monitoring"], "monitoring")
    p.go("/admin/policies")
    p.field("#add-policies", "Name").send_keys("browser-ttl")
    p.field("#add-policies", "Pattern (regexp)").clear()
    p.field("#add-policies", "Pattern (regexp)").send_keys("^browser\\.")
    p.field("#add-policies", "Definition (JSON object)").send_keys('{"message-ttl": 60000}')
    p.click_button("Save policy")
    p.flash("Policy browser-ttl saved")
    p.wait(lambda: "browser-ttl" in p.text("#policies-table"), "the new policy")
    api("DELETE", "/api/policies/%2F/browser-ttl")
    api("DELETE", "/api/users/browser-admin")


@test
def definitions_export_import(p):
    os.makedirs(DOWNLOADS, exist_ok=True)
    p.login()
    p.go("/admin/definitions")
    p.click_button("Download definitions")
    path = os.path.join(DOWNLOADS, "warren-definitions.json")
    p.wait(lambda: os.path.exists(path) and os.path.getsize(path) > 0, "the downloaded definitions")
    with open(path) as f:
        exported = json.load(f)
    assert any(u["name"] == "guest" for u in exported["users"]), exported.get("users")
    upload = os.path.join(DOWNLOADS, "import.json")
    with open(upload, "w") as f:
        json.dump({"queues": [{"name": "defs.imported", "vhost": "/", "durable": True,
                               "auto_delete": False, "arguments": {}}]}, f)
    p.css("[data-test=definitions-file]").send_keys(upload)
    p.click_button("Upload definitions")
    p.flash("Definitions imported")
    assert api("GET", "/api/queues/%2F/defs.imported")["name"] == "defs.imported"
    api("DELETE", "/api/queues/%2F/defs.imported")


@test
def ten_thousand_queues(p):
    """The queue list with 10,000 queues: one page from the server, fast."""
    api("PUT", "/api/vhosts/many", {})
    api("PUT", "/api/permissions/many/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    try:
        def put(i):
            api("PUT", f"/api/queues/many/load.q{i:05d}", {"durable": False})
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(put, range(10000)))
        p.login()
        p.go("/queues")
        started = time.time()
        Select(p.field("#page", "Virtual host")).select_by_visible_text("many")
        p.wait(lambda: "10,000 shown of 10,000" in p.text("#queues-table caption"), "the 10,000-queue list")
        elapsed = time.time() - started
        rows = p.all("#queues-table tbody tr")
        assert len(rows) == 50, f"{len(rows)} rows on a 50-row page"
        assert elapsed < 5, f"the list took {elapsed:.1f} s"
        p.click_button("Next page")
        p.wait(lambda: "page 2 of 200" in p.text("#queues-table caption"), "page 2")
        assert "load.q00050" in p.text("#queues-table tbody tr:first-child")
        # Sorting by the server: name, descending.
        p.click_button("Name")
        p.wait(lambda: "page 1 of 200" in p.text("#queues-table caption"), "the sorted list")
        p.click_button("Name")
        p.wait(lambda: "load.q09999" in p.text("#queues-table tbody tr:first-child"), "the name sorted descending")
        p.field("#page", "Filter by name").send_keys("q0999")
        p.wait(lambda: "10 shown of 10,000" in p.text("#queues-table caption"), "the filtered list")
        print(f"   (10,000 queues: first page shown in {elapsed:.2f} s)")
    finally:
        api("DELETE", "/api/vhosts/many")


@test
def screenshots(p):
    api("PUT", "/api/queues/%2F/orders", {"durable": True, "arguments": {"x-max-length": 10000}})
    api("PUT", "/api/queues/%2F/billing.retry", {"durable": True, "arguments": {"x-message-ttl": 60000}})
    api("PUT", "/api/exchanges/%2F/orders", {"type": "topic", "durable": True})
    api("POST", "/api/bindings/%2F/e/orders/q/orders", {"routing_key": "order.#", "arguments": {}})
    for i in range(3):
        api("POST", "/api/exchanges/%2F/orders/publish",
            {"properties": {"delivery_mode": 2}, "routing_key": "order.eu", "payload": f'{{"order": {i}}}',
             "payload_encoding": "string"})
    api("PUT", "/api/queues/%2F/work", {"durable": True, "arguments": {}})
    conn = amqp()
    ch = conn.channel()
    ch.basic_consume("billing.retry", lambda *a: None)
    stop = threading.Event()

    def load():
        """A steady publisher and consumer on `work`, so the charts have rates."""
        c = amqp()
        lch = c.channel()
        lch.basic_qos(prefetch_count=20)
        lch.basic_consume("work", lambda chan, m, _p, _b: chan.basic_ack(m.delivery_tag))
        while not stop.is_set():
            lch.basic_publish("", "work", b'{"job": 1}')
            c.process_data_events(time_limit=0)
            time.sleep(0.02)  # about 50 messages a second
        c.close()
    loader = threading.Thread(target=load)
    loader.start()
    try:
        p.login()
        # Three overview samples (the broker samples every 5 s) so the charts draw lines.
        p.go("/")
        p.wait(lambda: p.visible("#totals"), "the overview")
        time.sleep(10.5)
        pages = [
            ("overview", "/"), ("queues", "/queues"), ("queue-detail", "/queues/%2F/orders"),
            ("exchanges", "/exchanges"), ("exchange-detail", "/exchanges/%2F/orders"),
            ("connections", "/connections"), ("channels", "/channels"), ("admin", "/admin/users"),
            ("admin-limits", "/admin/limits"),
        ]
        for name, path in pages:
            if name != "overview":
                p.go(path)
            p.wait(lambda: not p.all("#page h1") or p.all("#page table, #page dl"), f"{name} content")
            time.sleep(0.3)
            p.shot(name)
            assert os.path.getsize(os.path.join(SHOTS, f"{name}.png")) > 5000, f"{name}.png is empty"
        print(f"   (screenshots in {SHOTS})")
    finally:
        stop.set()
        loader.join()
        conn.close()


def main():
    wanted = sys.argv[1:]
    tests = [t for t in TESTS if not wanted or t.__name__ in wanted]
    passed = failed = 0
    try:
        driver = make_driver()
    except Exception:
        traceback.print_exc()
        print("!! could not start Chromium through chromedriver", file=sys.stderr)
        print(f"browser: 0 passed, {len(tests)} failed")
        return 1
    page = Page(driver)
    try:
        for t in tests:
            started = time.time()
            try:
                t(page)
                passed += 1
                print(f"ok   {t.__name__} ({time.time() - started:.1f} s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {t.__name__} ({time.time() - started:.1f} s)", flush=True)
                traceback.print_exc(limit=4)
                try:
                    page.shot(f"FAILED-{t.__name__}")
                    logs = driver.get_log("browser")
                    for entry in logs[-10:]:
                        print(f"   console: {entry.get('level')} {entry.get('message')}")
                except Exception:
                    pass
    finally:
        driver.quit()
    print(f"browser: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
