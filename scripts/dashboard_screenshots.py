"""The dashboard's screenshots in docs/img, taken from `clusterctl demo --keep` (its simulated
mixed fleet and its synthetic year of history) with a few jobs queued on top, in Debian's
Chromium at 1440 px, and the queue at 390 px (a phone).

Run: .venv/bin/python scripts/dashboard_screenshots.py
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"


def main() -> None:
    demo = subprocess.Popen([str(Path(sys.executable).with_name("clusterctl")), "demo", "--keep"],
                            stdout=subprocess.PIPE, text=True)
    assert demo.stdout is not None
    try:
        for line in demo.stdout:
            found = re.search(r"(http://127\.0\.0\.1:\d+)/ .* token (cct_\S+)", line)
            if found:
                break
        else:
            raise SystemExit("the demo ended without its dashboard")
        url, token = found.group(1), found.group(2)
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
        work = {"workdir": "/tmp"}
        running = api.post("/v1/jobs", json={"command": ["python", "-c", "import time\n"
                                                         "while True: sum(range(10**6))"],
                                             "gpus": 4, "gpu_type": "A100-80GB",
                                             "name": "pretrain-7b", **work}).json()["id"]
        for name, gpus in (("finetune-lora", 2), ("eval-sweep", 1), ("ablation-lr", 4)):
            api.post("/v1/jobs", json={"command": ["python", "train.py"], "gpus": gpus,
                                       "gpu_type": "A100-80GB", "name": name,
                                       "time_limit": "4h", **work})
        time.sleep(8)  # a few samples of the running job
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1440, "height": 900}, base_url=url)
            page.goto("/login")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/$"))
            for name, path in (("queue", "/"), ("gpus", "/gpus"), ("job", f"/jobs/{running}"),
                               ("usage", "/usage?since=365d"), ("admin", "/admin")):
                page.goto(path)
                for section in page.locator("[data-load]").all():
                    expect(section).to_have_attribute("data-loaded", "yes", timeout=60_000)
                page.screenshot(path=str(OUT / f"dashboard-{name}.png"), full_page=True)
                print(f"docs/img/dashboard-{name}.png")
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto("/")
            page.screenshot(path=str(OUT / "dashboard-queue-phone.png"), full_page=True)
            print("docs/img/dashboard-queue-phone.png")
            browser.close()
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)


if __name__ == "__main__":
    main()
