"""`make demo` end to end: landing page, chat, surge alert, playground; then Ctrl-C stops all."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

KEEL_DEMO = str(Path(sys.executable).parent / "keel-demo")
READY_PREFIX = "Keel demo is running: "


def _ports_free(ports: range) -> bool:
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            sock = socket.socket()
            sockets.append(sock)
            sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()
    return True


def _free_port_block(count: int = 4) -> int:
    """A base port such that base..base+count-1 are all free on 127.0.0.1."""
    for base in range(21000, 60000, 97):
        if _ports_free(range(base, base + count)):
            return base
    raise RuntimeError("no block of free ports")


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _screenshot(page: Any, name: str) -> None:
    """Save a README screenshot when KEEL_SCREENSHOT_DIR is set (docs/screenshots)."""
    target = os.environ.get("KEEL_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=False)


class DemoProcess:
    def __init__(self, state_dir: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        env["KEEL_REC_MAX_PAIRS"] = "64"  # a small training budget for the reranker's encoder
        # The finance monitor's Chinese heads (a me5-small preparation) are covered by
        # tests/e2e/finance_monitor/test_dashboard_chinese.py; not trained a second time here.
        env["KEEL_FM_CHINESE"] = "false"
        # Likewise the support bot's Chinese pipeline (tests/e2e/customer_service/
        # test_cs_chinese_chat.py): the demo runs it by default, this test in English only.
        env["KEEL_CS_LANGUAGES"] = "en"
        # The live upgrades (on in the demo) fine-tune in the background for minutes; the
        # support bot's has its own test (tests/integration/customer_service/test_cs_upgrade.py).
        env["KEEL_CS_UPGRADE"] = "off"
        env["KEEL_FM_UPGRADE"] = "off"
        env["KEEL_REC_UPGRADE"] = "off"  # tests/integration/recommender/test_rec_upgrade.py
        cmd = [
            KEEL_DEMO,
            "--state-dir",
            str(state_dir),
            "--port",
            str(port),
            "--rate",
            "50",
            "--time-scale",
            "20",
            "--surge-topic",
            "Earnings",
        ]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_url(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and self.lines.empty():
                break
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                continue
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()
        tail = "".join(self.output)[-4000:]
        raise AssertionError(f"the demo did not print its URL in {timeout_s}s:\n{tail}")


def _seed_finance_models(fm_models_dir: Path, state_dir: Path) -> None:
    """The finance monitor's models as the session trained them, with the same settings as
    the demo's `finance-monitor prepare` here (English heads), so that step finds them
    cached: training them again would check nothing new. The other apps prepare from
    cold, as on a fresh checkout (their test states are prepared without compression; the
    demo compresses)."""
    shutil.copytree(fm_models_dir, state_dir / "finance_monitor" / "models", copy_function=os.link)


@pytest.mark.timeout(2400)
def test_demo_runs_every_app_and_ctrl_c_stops_everything(
    tmp_path: Path, page: Any, fm_models_dir: Path
) -> None:
    state_dir = tmp_path / "var"
    _seed_finance_models(fm_models_dir, state_dir)
    demo = DemoProcess(state_dir, _free_port_block())
    try:
        url = demo.wait_for_url(timeout_s=1500)
        tracked = _descendants(demo.proc.pid)
        kafka_pid = int((state_dir / "kafka" / "kafka.pid").read_text())
        tracked.add(kafka_pid)

        # Landing page: three services, all healthy, with links to their pages.
        page.goto(url)
        page.wait_for_function(
            "document.querySelectorAll('.card .health.ok').length === 3", timeout=60_000
        )
        _screenshot(page, "landing")
        links = {a.text_content(): a.get_attribute("href") for a in page.locator(".card a").all()}
        assert {"Chat", "Agent queue", "Dashboard", "Playground"} <= set(links)

        # Chat with the bot.
        page.goto(links["Chat"])
        page.locator(".msg.bot").first.wait_for()
        bots = page.locator(".msg.bot").count()
        page.fill("#message", "How do I reset my online banking password?")
        page.click("#send")
        answer = page.locator(".msg.bot").nth(bots)
        answer.wait_for(timeout=30_000)
        assert (answer.text_content() or "").strip()
        _screenshot(page, "chat")

        # Recommender playground reranks for the selected demo user.
        page.goto(links["Playground"])
        page.wait_for_selector("#results li.result", timeout=30_000)
        assert page.locator("#results li.result").count() >= 3
        _screenshot(page, "playground")

        # The replayed stream's injected surge raises an alert on the dashboard.
        page.goto(links["Dashboard"])
        alert = page.locator("#alerts li", has_text="Earnings")
        alert.first.wait_for(timeout=400_000)
        _screenshot(page, "dashboard")

        tracked |= _descendants(demo.proc.pid)
    finally:
        if demo.proc.poll() is None:
            demo.proc.send_signal(signal.SIGINT)
        try:
            code = demo.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            demo.proc.kill()
            raise
    assert code == 0, "".join(demo.output)[-3000:]
    assert "stopped everything it started" in "".join(demo.output)
    time.sleep(1.0)
    left = sorted(pid for pid in tracked if _alive(pid))
    assert not left, f"processes left behind: {left}"
