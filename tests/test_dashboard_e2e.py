"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real
controller on a real Ray head: signing in with a token, the queue and a GPU's reading changing
without a reload, a job's page and its cancel, what another user may not see, and the session's
cookie, anti-forgery and sign-out."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from factories import sample_batch
from harness import ControllerProcess, http

pytestmark = pytest.mark.ray
playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LIVE_S = 10_000
"""How long (ms) a page may take to show a change pushed to it: a push per second, and a loaded
two-core machine."""


@pytest.fixture(scope="module")
def ctl(ray_head: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    c = ControllerProcess(tmp_path_factory.mktemp("dash"), ray_head.address,
                          ray_head.token_file)
    c.start()
    yield c
    c.end_live_jobs()
    c.stop()


@pytest.fixture(autouse=True)
def no_jobs_left(ctl: ControllerProcess) -> Iterator[None]:
    """Each test starts on an idle node: the one before cancelled what it left running."""
    yield
    ctl.end_live_jobs()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        why = "Chromium is not installed: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why, pytrace=False)  # under CI every test runs
        pytest.skip(why)
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(autouse=True)
def pages_closed(browser: Any) -> Iterator[None]:
    """Every page a test opened is closed after it: an open page keeps its live parts'
    streams, which the controller renders every second."""
    yield
    for context in browser.contexts:
        context.close()


def signed_in(browser: Any, ctl: ControllerProcess, token: str) -> Any:
    """A fresh browser context (its own cookies) signed in through the form."""
    context = browser.new_context(base_url=f"http://127.0.0.1:{ctl.port}")
    page = context.new_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/$"))
    return page


def test_sign_in_and_the_queue_changes_without_a_reload(browser: Any,
                                                        ctl: ControllerProcess) -> None:
    page = browser.new_context(base_url=f"http://127.0.0.1:{ctl.port}").new_page()
    page.goto("/login")
    page.fill("input[name=token]", "cct_not-a-token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("invalid token")
    assert page.context.cookies() == []

    token = ctl.token()
    page = signed_in(browser, ctl, token)
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "clusterctl_session"
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    assert token not in page.url and token not in page.content()
    expect(page.locator("#pending")).to_contain_text("Nothing waits")
    page.evaluate("window.notReloaded = true")

    big = ctl.submit("--gpus", "4", "--name", "fills-node", "--", "sleep", "600")
    # its start may take longer than a push on a loaded machine (STARTING for over 10 s in a
    # clean-clone run on a slow one): what is timed here is the page, once the job runs
    ctl.wait_state(big, {"RUNNING"})
    expect(page.locator(f"#running tr[data-job='{big}']")).to_contain_text("fills-node",
                                                                           timeout=LIVE_S)
    waiting = ctl.submit("--gpus", "2", "--name", "waits", "--", "true")
    row = page.locator(f"#pending tr[data-job='{waiting}']")
    expect(row).to_contain_text("waits", timeout=LIVE_S)
    expect(row.locator("td").first).to_have_text("1", timeout=LIVE_S)  # first in line
    expect(row).to_contain_text("resources", timeout=LIVE_S)  # the reason `jobs` gives
    assert page.evaluate("window.notReloaded") is True
    typed = ctl.submit("--gpus", "simulated:2", "--name", "typed", "--", "true")
    by_type = page.context.new_page()
    by_type.goto("/?gpu_type=Simul")
    expect(by_type.locator(f"tr[data-job='{typed}']")).to_have_count(1)
    expect(by_type.locator(f"tr[data-job='{waiting}']")).to_have_count(0)  # asked for any
    by_type.close()
    assert ctl.cli("cancel", str(typed)).returncode == 0
    page.screenshot(path=str(ctl.root / "queue.png"), full_page=True)

    assert ctl.cli("cancel", str(waiting)).returncode == 0
    expect(row).to_have_count(0, timeout=LIVE_S)
    assert page.evaluate("window.notReloaded") is True


def test_a_job_page_its_cancel_and_what_others_see(browser: Any,
                                                   ctl: ControllerProcess) -> None:
    job = ctl.submit("--name", "secret-run", "--", "sh", "-c", "echo hello-from-the-job; "
                     "sleep 600")
    ctl.wait_state(job, {"RUNNING"})
    ship_samples(ctl, seq=1000, util=0.6)
    owner = signed_in(browser, ctl, ctl.token())
    expect(owner.locator(f"#running tr[data-job='{job}']")).to_contain_text("60%")
    owner.goto(f"/jobs/{job}")
    # its GPU's reading drawn: 60% of the chart's height (56 px) above its axis (60)
    expect(owner.locator("#chart circle.dot.utilization")).to_have_attribute("cy", "26.4")
    expect(owner.locator("dl.spec")).to_contain_text("echo hello-from-the-job")
    expect(owner.locator("#log")).to_contain_text("hello-from-the-job", timeout=LIVE_S * 3)
    owner.screenshot(path=str(ctl.root / "job.png"), full_page=True)

    bob = ctl.json("admin", "user", "add", "bob", "--team", "vision")["token"]
    other = signed_in(browser, ctl, bob)
    expect(other.locator(f"tr[data-job='{job}']")).to_contain_text("secret-run")
    assert "hello-from-the-job" not in other.content()  # others see it queued, not what it runs
    response = other.goto(f"/jobs/{job}")
    assert response is not None and response.status == 403
    assert "hello-from-the-job" not in other.content()

    owner.click("#cancel")
    # "cancel asked" while the job gets its SIGTERM; a job that ends within a push (a second)
    # goes straight to CANCELLED on the page (a clean-clone run saw it so).
    expect(owner.locator("#state")).to_contain_text(re.compile("cancel asked|CANCELLED"),
                                                    timeout=LIVE_S)
    ctl.wait_state(job, {"CANCELLED"}, timeout=120)  # its grace, on a loaded machine
    expect(owner.locator("#state")).to_contain_text("CANCELLED", timeout=LIVE_S)


def _first_event(c: httpx.Client, path: str, last_id: str | None) -> dict[str, str]:
    """The first event of a page's live stream: its fields (``data`` joined by lines)."""
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    fields: dict[str, str] = {}
    with c.stream("GET", path, headers=headers) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line:
                return fields
            key, _, value = line.partition(": ")
            fields[key] = fields[key] + "\n" + value if key in fields else value
    raise AssertionError("the stream ended before its first event")


def test_a_page_whose_stream_came_back_gets_what_changed_meanwhile(
        browser: Any, ctl: ControllerProcess) -> None:
    """A live part's stream that breaks (a proxy's timeout, a controller restart, a loaded
    machine) is opened again by the browser with the id of the last part it got: if the part
    changed meanwhile it comes at once (a clean-clone run showed a job page stuck at RUNNING
    "cancel asked" after its job had ended); a new page gets only the id of what it has."""
    job = ctl.submit("--gpus", "1", "--name", "streamed", "--", "true")
    ctl.wait_state(job, {"SUCCEEDED"}, timeout=120)  # ended: its part no longer changes
    page = signed_in(browser, ctl, ctl.token())
    (cookie,) = page.context.cookies()
    with httpx.Client(base_url=f"http://127.0.0.1:{ctl.port}", timeout=30,
                      cookies={"clusterctl_session": cookie["value"]}) as c:
        path = f"/events/jobs/{job}"
        fresh = _first_event(c, path, None)
        assert set(fresh) == {"id"}  # the page has the part: only its id
        assert set(_first_event(c, path, fresh["id"])) == {"id"}  # unchanged: nothing again
        missed = _first_event(c, path, "0123456789abcdef")  # it changed while away
        assert missed["id"] == fresh["id"] and "SUCCEEDED" in missed["data"]
        # a page's stream starts from what the page was rendered with: a part that changed
        # between the two (a job ending while its page loads: a CI run's page stayed at
        # "cancel asked") comes at once
        page.goto(f"/jobs/{job}")
        live = page.locator("#live").get_attribute("data-live") or ""
        assert live == f"{path}?shown={fresh['id']}"
        assert set(_first_event(c, live, None)) == {"id"}
        raced = _first_event(c, f"{path}?shown=0123456789abcdef", None)
        assert "SUCCEEDED" in raced["data"]


def test_forged_and_signed_out_requests_change_nothing(browser: Any,
                                                       ctl: ControllerProcess) -> None:
    job = ctl.submit("--gpus", "4", "--name", "kept", "--", "sleep", "600")
    page = signed_in(browser, ctl, ctl.token())
    (cookie,) = page.context.cookies()
    base = f"http://127.0.0.1:{ctl.port}"
    jar = {"clusterctl_session": cookie["value"]}
    with httpx.Client(base_url=base, cookies=jar) as c:
        assert c.post(f"/jobs/{job}/cancel", data={}).status_code == 403  # no form value
        csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/").text)
        assert csrf is not None
        forged = c.post(f"/jobs/{job}/cancel", data={"csrf": csrf.group(1)},
                        headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
    assert ctl.show(job)["state"] in ("PENDING", "STARTING", "RUNNING")

    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/login$"))
    with httpx.Client(base_url=base, cookies=jar) as c:  # the copied cookie: ended too
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert c.get("/events/queue").status_code == 401
    assert ctl.cli("cancel", str(job)).returncode == 0


def ship_samples(ctl: ControllerProcess, seq: int, util: float) -> None:
    """One read of node-a's four GPUs, as its agent ships it, stamped now."""
    url = f"http://127.0.0.1:{ctl.port}/v1/agent/samples"
    batch = sample_batch("node-a", gpus=4, reads=1, seq0=seq, t0=time.time(), util=util)
    assert http("POST", url, json={"node": "node-a", "samples": batch},
                headers={"Authorization": f"Bearer {ctl.node_token()}"}).status_code == 200


def test_a_gpus_new_reading_shows_without_a_reload(browser: Any, ctl: ControllerProcess) -> None:
    def ship(seq: int, util: float) -> None:
        ship_samples(ctl, seq, util)

    ship(1, 0.37)
    page = signed_in(browser, ctl, ctl.token())
    page.goto("/gpus")
    cell = page.locator("section[data-node='node-a'] tr[data-gpu='0'] td.util")
    expect(cell).to_have_text("37%")
    page.evaluate("window.notReloaded = true")
    ship(2, 0.81)
    expect(cell).to_have_text("81%", timeout=LIVE_S)
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(ctl.root / "gpus.png"), full_page=True)


def test_usage_and_cost_are_the_clis_figures_and_admin_is_for_admins(
        browser: Any, ctl: ControllerProcess) -> None:
    assert ctl.cli("hardware", "add", "node-a", "--gpus", "4", "--gpu-model", "A100",
                   "--price", "120000", "--purchased", "2026-01-01", "--life", "36mo",
                   "--resale", "0.2", "--monthly-fees", "800").returncode == 0
    job = ctl.submit("--gpus", "2", "--name", "priced", "--", "sleep", "1")
    assert ctl.wait_done(job)["state"] == "SUCCEEDED"
    page = signed_in(browser, ctl, ctl.token())
    page.goto("/usage?since=1h")
    for name in ("utilization", "gpu-type", "util-team", "util-user", "cost-team", "cost-user",
                 "cost-job", "waste",
                 "budgets", "amortization"):
        expect(page.locator(f"#{name} [data-load]")).to_have_attribute("data-loaded", "yes",
                                                                        timeout=LIVE_S * 3)
    cli = ctl.json("report", "cost", "--since", "1h", "--by", "user")
    total = page.locator("#cost-user tr.total td").nth(5)
    assert total.inner_text() == f"{cli['total']['total_cost']:.2f}"
    expect(page.locator("#cost-job")).to_contain_text("priced")
    expect(page.locator("#amortization")).to_contain_text("node-a")
    page.screenshot(path=str(ctl.root / "usage.png"), full_page=True)

    page.goto("/admin")
    expect(page.locator("#audit")).to_contain_text("hardware")
    ctl.json("admin", "user", "add", "carol", "--team", "nlp")
    page.reload()
    expect(page.locator("#users")).to_contain_text("carol")
    carol = ctl.json("admin", "user", "add", "dave", "--team", "nlp")["token"]
    other = signed_in(browser, ctl, carol)
    response = other.goto("/admin")
    assert response is not None and response.status == 403
    assert "carol" not in other.content()


MARKUP = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def test_the_services_page_shows_traffic_and_cost_without_a_reload(
        browser: Any, ctl: ControllerProcess) -> None:
    model = str(Path(__file__).with_name("model_server.py"))
    page = signed_in(browser, ctl, ctl.token())
    page.goto("/services")
    expect(page.locator("#live")).to_contain_text("No service is running")
    page.evaluate("window.notReloaded = true")
    r = ctl.cli("serve", "chat", "--gpus", "1", "--price-per-1k", "2", "--workdir",
                str(ctl.root), "--", sys.executable, model)
    assert r.returncode == 0, r.stderr
    row = page.locator("tr[data-service='chat']")
    expect(row.locator(".replicas")).to_contain_text("1 of 1", timeout=LIVE_S * 3)
    auth = {"Authorization": f"Bearer {ctl.token()}"}
    for _ in range(12):
        assert httpx.post(f"http://127.0.0.1:{ctl.port}/services/chat/v1/echo", content=b"q",
                          headers=auth, timeout=60).status_code == 200
    expect(row.locator(".requests")).to_have_text("12", timeout=LIVE_S)
    expect(row.locator(".per-1k")).to_contain_text("USD")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(ctl.root / "services.png"), full_page=True)
    assert ctl.cli("serve", "stop", "chat").returncode == 0
    expect(page.locator("#live")).to_contain_text("No service is running", timeout=LIVE_S)


def test_markup_shows_as_text_no_page_errs_and_it_fits_a_phone(browser: Any,
                                                                ctl: ControllerProcess) -> None:
    """A job's command and log holding markup show it as text and run none of it; no page logs an
    error (a script the Content-Security-Policy blocked would); every page fits 390 px (a
    phone) and 1440 px without the page scrolling sideways (wide tables scroll in place)."""
    # (names are letters, digits and ._- only: refused at submit; commands and logs are free)
    job = ctl.submit("--name", "markup", "--", "sh", "-c", f"echo '{MARKUP}'; sleep 600")
    ctl.wait_state(job, {"RUNNING"})
    page = signed_in(browser, ctl, ctl.token())
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"/jobs/{job}")
    expect(page.locator("#log")).to_contain_text(MARKUP, timeout=LIVE_S * 3)
    expect(page.locator("dl.spec")).to_contain_text(MARKUP)
    for width in (390, 1440):
        page.set_viewport_size({"width": width, "height": 900})
        for path in ("/", "/gpus", f"/jobs/{job}", "/usage", "/admin", "/services"):
            page.goto(path)
            for section in page.locator("[data-load]").all():
                expect(section).to_have_attribute("data-loaded", "yes", timeout=LIVE_S * 3)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (path, width)
            expect(page.get_by_role("link", name="Queue")).to_be_visible()
    assert page.evaluate("window.pwned") is None
    assert errors == []


PAGES = [("POST", "/login"), ("GET", "/"), ("GET", "/jobs/{}"), ("POST", "/jobs/{}/cancel"),
         ("POST", "/jobs/1/{}"), ("GET", "/events/queue"), ("GET", "/events/jobs/{}"),
         ("POST", "/logout"), ("GET", "/gpus"), ("GET", "/usage"), ("GET", "/usage/{}"),
         ("GET", "/admin"), ("GET", "/services"), ("GET", "/events/services")]


@pytest.mark.parametrize(("method", "path"), PAGES, ids=[f"{m} {p}" for m, p in PAGES])
def test_no_input_makes_a_page_answer_5xx(ctl: ControllerProcess, method: str,
                                          path: str) -> None:
    """Hostile forms, paths and filters, with a signed-in session: never a 5xx (a live part's
    stream is opened and let go at once)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from test_api_fuzz import url_texts

    forms = st.binary(max_size=64) | st.dictionaries(
        st.sampled_from(["token", "csrf", "x"]), url_texts, max_size=3).map(
        lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass"))
    filters = st.dictionaries(st.sampled_from(["user", "team", "state", "before", "since"]),
                              url_texts, max_size=3)
    with httpx.Client(base_url=f"http://127.0.0.1:{ctl.port}", timeout=30) as c:
        assert c.post("/login", data={"token": ctl.token()}).status_code == 303

        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(body=forms, part=url_texts | st.just("1"), query=filters)
        def probe(body: bytes, part: str, query: dict[str, str]) -> None:
            target = path.format(quote(part, safe="", errors="surrogatepass"))
            target += "?" + urlencode(query, encoding="utf-8", errors="surrogatepass")
            with c.stream(method, target, content=body if method == "POST" else None,
                          headers={
                              "Content-Type": "application/x-www-form-urlencoded"}) as r:
                assert r.status_code < 500, (method, target, body, query, r.status_code)

        probe()
        assert c.get("/").status_code == 200  # still signed in: nothing signed it out
