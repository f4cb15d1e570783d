"""The lecture-hall load benchmark: `python -m ae.loadbench [--sessions 0 5 10 20]`.

Starts the real app (`streamlit run app.py`) on loopback with a fresh model cache, trains a
small model for the result pages, then for each N: a lecturer's browser starts a training
run on the Train page and stays (for N = 0 leaves, so nobody watches, and comes back to stop);
N real Chromium sessions (Playwright, one context each, in one browser) open the app while it
trains: 2 in 5 watch Train, the others open Latent space (and switch its projection),
Reconstructions and Home. After a fixed window the lecturer presses Stop. Printed, one row
per N, side by side with N = 0:
median epoch seconds during the window, p50/p95 time until a page is ready, Stop to
"Stopped", errors, and that every Train watcher saw the same job; then server and training
process peak memory.

Loopback only; every wait is bounded and the whole run stops itself (`--limit`, default
15 minutes). The students' Chromium runs at the lowest CPU priority: in a real room the
browsers run on the students' machines, not on the server, so their rendering is not the
app's cost. The lecturer's browser is a second Chromium at normal priority (their own laptop),
so Stop measures the server, not a starved tab; the time until the stopped model is on disk
is printed beside the time until the page shows "Stopped".

`--protocol` runs a bigger room without Chromium: simulated tabs that speak Streamlit's websocket
protocol (ae.loadclient), up to 300 sessions, a fresh server per N; see `protocol_one` below.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
ROLES = ("train", "latent", "train", "reconstructions", "home")  # 2 in 5 watch Train
MAP_SWITCHES = ("t-SNE", "PCA")  # t-SNE is computed once before the runs: maps leave the web process in issue 10
WINDOW_SECONDS = 40.0  # training time measured per N, from the moment the sessions start opening
PAGE_TIMEOUT_MS = 180_000
SERVER: list = [None]  # for the time limit's clean-up


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MemoryWatch:
    """Peak RSS of the server process and of its children (the training process), sampled;
    also keeps Chromium at the lowest priority (it raises its renderers' priority itself)."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)
        self.server_peak = self.worker_peak = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.5):
            try:
                self.server_peak = max(self.server_peak, self.process.memory_info().rss)
                children = self.process.children(recursive=True)
                self.worker_peak = max([self.worker_peak] + [c.memory_info().rss for c in children])
                for browser in self.browser_processes():  # chromium resets its renderers' priority
                    lowest_priority(browser, autogroup(self.process.pid))
            except psutil.Error:
                pass

    def stop(self) -> None:
        self._stop.set()

    def browser_processes(self, lecturers: bool = False) -> list:
        """The students' Chromium processes (its renderers are re-parented away from us) and
        Playwright's driver; or, with `lecturers`, the lecturer's browser."""
        import psutil

        app = {self.process.pid, *(c.pid for c in self.process.children(recursive=True))}
        found = []
        for process in psutil.process_iter(["name", "cmdline"]):
            name, command = process.info["name"] or "", " ".join(process.info["cmdline"] or [])
            if process.pid not in app and ("chrom" in name or "playwright" in command) \
                    and is_lecturers(process) == lecturers:
                found.append(process)
        return found

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the server, the training process and all of Chromium."""
        import psutil

        def used(process) -> float:
            try:
                times = process.cpu_times()
                return times.user + times.system
            except psutil.Error:
                return 0.0

        children = self.process.children(recursive=True)
        browsers = [psutil.Process(), *self.browser_processes()]
        return {"server": used(self.process), "training": sum(used(c) for c in children),
                "browsers": sum(used(b) for b in browsers),
                "lecturer": sum(used(b) for b in self.browser_processes(lecturers=True))}


LECTURER_MARK = ("AE_LOADBENCH_BROWSER", "lecturer")


def is_lecturers(process) -> bool:
    """The lecturer's browser (and its renderers, which inherit its environment) keeps normal
    priority: in a room it runs on the lecturer's own laptop, not behind 20 students' tabs."""
    import psutil

    try:
        return process.environ().get(LECTURER_MARK[0]) == LECTURER_MARK[1]
    except (psutil.Error, OSError):
        return False


def autogroup(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/autogroup").read_text().split()[0]
    except (OSError, IndexError):
        return None


def lowest_priority(process, server_group: str | None) -> None:
    """Linux's idle scheduling class (SCHED_IDLE: a waking server or training thread takes the
    CPU from it at once), niceness 19, and, if it is not the server's, its scheduler autogroup
    at 19 too:
    with Linux's autogroups (kernel.sched_autogroup_enabled) Chromium, which starts a session of
    its own, shares the CPU equally with the server's session whatever its niceness."""
    import psutil

    try:
        # Per thread: Linux applies both to one thread, and Chromium (run as root) raises the
        # priority of some of its threads itself.
        for thread in process.threads():
            if os.sched_getscheduler(thread.id) != os.SCHED_IDLE:
                os.sched_setscheduler(thread.id, os.SCHED_IDLE, os.sched_param(0))
            if os.getpriority(os.PRIO_PROCESS, thread.id) < 19:
                os.setpriority(os.PRIO_PROCESS, thread.id, 19)
        if autogroup(process.pid) not in (None, server_group):
            Path(f"/proc/{process.pid}/autogroup").write_text("19")
    except (OSError, psutil.Error):
        pass


def start_server(cache: Path, port: int, log_path: Path, niceness: int | None = None) -> subprocess.Popen:
    """`streamlit run app.py` on loopback with this model cache and the full MNIST; with
    `niceness`, the server runs at that niceness whatever this process's own."""
    env = dict(os.environ, AE_CACHE_DIR=str(cache), AE_WARM_UMAP="0")
    env.pop("AE_DATA_PATH", None)

    def set_niceness() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
        except OSError:
            pass

    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
        preexec_fn=set_niceness if niceness is not None else None,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit(f"The server did not start; see {log_path}")


def niced_chromium(folder: Path) -> str:
    """A launcher that runs Debian's chromium at the lowest CPU priority."""
    script = folder / "chromium-niced"
    script.write_text(f'#!/bin/sh\nexec nice -n 19 {CHROMIUM} "$@"\n')
    script.chmod(0o755)
    return str(script)


def record_of(cache: Path, seed: int) -> dict | None:
    for path in cache.glob("runs/*/*/record.json"):
        record = json.loads(path.read_text())
        if record["config"]["seed"] == seed and record["config"]["code_size"] == 32:
            return record
    return None


class Run:
    """One N: counts and timings gathered by the sessions."""

    def __init__(self, sessions: int):
        self.sessions = sessions
        self.ready_seconds: list[float] = []
        self.errors: list[str] = []
        self.jobs_seen: set[str] = set()
        self.progress_seen = 0
        self.other_progress: list[str] = []  # what a Train watcher's progress line said instead


async def open_page(context, url: str, run: Run, role: str):
    page = await context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.on("pageerror", lambda error: run.errors.append(f"{role}: page error {error}"))
    started = time.perf_counter()
    await page.goto(url)
    await page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)
    ready = {"train": '[data-testid="stProgress"]', "latent": ".js-plotly-plot",
             "reconstructions": '[data-testid="stImage"]', "home": "h1"}[role]
    await page.wait_for_selector(ready, timeout=PAGE_TIMEOUT_MS)
    run.ready_seconds.append(time.perf_counter() - started)
    return page


async def check_page(page, run: Run, role: str) -> None:
    text = await page.inner_text("body")
    if "did not expect" in text or await page.locator('[data-testid="stException"]').count():
        run.errors.append(f"{role}: the page shows an error")


async def session(browser, base: str, role: str, run: Run, until: float) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        path = {"train": "/train", "latent": "/latent", "reconstructions": "/reconstructions", "home": "/"}[role]
        page = await open_page(context, base + path, run, role)
        if role == "latent":  # switch the projection back and forth while the job trains
            while time.monotonic() < until - 3:
                for method in MAP_SWITCHES:
                    option = page.get_by_text(method, exact=True)
                    if await option.count():
                        await option.first.click()
                        await page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)
                    await asyncio.sleep(2)
                    if time.monotonic() >= until - 3:
                        break
        else:
            while time.monotonic() < until - 2:
                await asyncio.sleep(1)
        if role == "train":
            described = page.get_by_text(re.compile(r"code size \d+, \d+ epoch\(s\), .* seed \d+$"))
            run.jobs_seen.add(await described.first.inner_text())
            progress = await page.locator('[data-testid="stProgress"]').first.inner_text()
            if re.search(r"Epoch \d+ of", progress):
                run.progress_seen += 1
            else:
                run.other_progress.append(progress.strip()[:80])
        await check_page(page, run, role)
    except Exception as error:  # a session that cannot do its part counts as an error
        run.errors.append(f"{role}: {type(error).__name__}: {str(error).splitlines()[0][:160]}")
    finally:
        await context.close()


async def lecturer_starts(browser, base: str, seed: int, epochs: int, leave: bool):
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    await page.goto(f"{base}/train?code=32&epochs={epochs}&seed={seed}")  # a shared link sets the config
    await page.wait_for_selector(IDLE)
    await page.get_by_role("button", name="Train", exact=True).click()
    await page.get_by_text(re.compile(r"Epoch \d+ of")).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    if leave:
        await page.goto("about:blank")  # N = 0 means nobody watches
    return context, page


async def lecturer_returns(page, base: str) -> None:
    await page.goto(base + "/train")
    await page.wait_for_selector(IDLE)
    await page.get_by_role("button", name="Stop", exact=True).wait_for()


async def lecturer_stops(page, cache: Path, seed: int) -> tuple[float, float]:
    """Seconds from pressing Stop until the stopped model is on disk (the server's part: the
    record is written before "Stopped" is published) and until the page shows "Stopped"."""
    stop = page.get_by_role("button", name="Stop", exact=True)
    await stop.wait_for(timeout=PAGE_TIMEOUT_MS)
    pressed = time.perf_counter()
    saved = [float("nan")]

    async def watch_disk() -> None:
        while record_of(cache, seed) is None:
            await asyncio.sleep(0.1)
        saved[0] = time.perf_counter() - pressed

    watcher = asyncio.create_task(watch_disk())
    try:
        await stop.click()
        await page.get_by_text(re.compile(r"Stopped after")).first.wait_for(timeout=PAGE_TIMEOUT_MS)
        return saved[0], time.perf_counter() - pressed
    finally:
        try:
            await asyncio.wait_for(watcher, timeout=30)
        except asyncio.TimeoutError:
            pass


async def one_run(browser, lecturers_browser, base: str, cache: Path, sessions: int, seed: int,
                  memory: "MemoryWatch") -> dict:
    run = Run(sessions)
    context, lecturer = await lecturer_starts(lecturers_browser, base, seed, epochs=200, leave=sessions == 0)
    cpu_before = memory.cpu_seconds()
    opened = time.monotonic()
    until = opened + WINDOW_SECONDS
    visits = asyncio.gather(*(session(browser, base, ROLES[i % len(ROLES)], run, until) for i in range(sessions)))
    await asyncio.sleep(WINDOW_SECONDS)
    window = time.monotonic() - opened
    cpu = {name: (seconds - cpu_before[name]) / window for name, seconds in memory.cpu_seconds().items()}
    if not sessions:
        await lecturer_returns(lecturer, base)
    saved_seconds = float("nan")
    try:  # while the sessions are still open
        saved_seconds, stop_seconds = await lecturer_stops(lecturer, cache, seed)
    except Exception as error:  # Playwright's timeout: reported, and the run goes on
        stop_seconds = float("nan")
        shot = Path(tempfile.gettempdir()) / f"ae-loadbench-stop-N{sessions}.png"
        await lecturer.screenshot(path=str(shot))
        run.errors.append(f"lecturer: Stopped not shown ({type(error).__name__}); the page: {shot}")
        record = record_of(cache, seed)
        if record is not None:
            run.errors.append("lecturer: (the stopped model was saved; the page did not show it in time)")
    await visits
    await context.close()
    record = None
    for _ in range(50):
        record = record_of(cache, seed)
        if record:
            break
        await asyncio.sleep(0.2)
    # Epochs inside the window (all but the compiling first and the one cut short by Stop).
    epoch_seconds = record["epoch_seconds"][1:-1] if record else []
    return {
        "sessions": sessions,
        "epoch_s": statistics.median(epoch_seconds) if epoch_seconds else float("nan"),
        "epochs": len(epoch_seconds),
        "p50": statistics.median(run.ready_seconds) if run.ready_seconds else float("nan"),
        "p95": _percentile(run.ready_seconds, 95),
        "pages": f"{len(run.ready_seconds)}/{sessions}",
        "stop_s": stop_seconds,
        "saved_s": saved_seconds,
        "errors": run.errors,
        "jobs_seen": len(run.jobs_seen),
        "train_watchers": sum(1 for i in range(sessions) if ROLES[i % len(ROLES)] == "train"),
        "progress_seen": run.progress_seen,
        "other_progress": run.other_progress,
        "cpu": cpu,
    }


def _percentile(values: list[float], percent: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(percent / 100 * (len(ordered) - 1))))]


async def main_async(counts: list[int], keep_log: Path) -> int:
    from playwright.async_api import async_playwright

    work = Path(tempfile.mkdtemp(prefix="ae-loadbench-"))
    cache = work / "cache"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = SERVER[0] = start_server(cache, port, keep_log)
    os.nice(19)  # this process, Playwright's driver and Chromium yield to the server and the training process
    memory = MemoryWatch(server.pid)
    rows = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=niced_chromium(work), args=CHROMIUM_ARGS)
            lecturers_browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=dict(os.environ, **dict([LECTURER_MARK])))
            # A trained model for Latent space and Reconstructions: the Home page's quick model.
            page = await browser.new_page()
            await page.goto(base)
            await page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)
            await page.get_by_role("button", name=re.compile(r"^Train a quick model")).click()
            await page.get_by_text("Finished:").first.wait_for(timeout=PAGE_TIMEOUT_MS * 2)
            await page.goto(base + "/latent")  # the shared t-SNE map, computed once before any run
            await page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)
            await page.get_by_text(MAP_SWITCHES[0], exact=True).first.click()
            await page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS * 2)
            await page.close()
            for index, count in enumerate(counts):
                row = await one_run(browser, lecturers_browser, base, cache, count, seed=100 + index, memory=memory)
                rows.append(row)
                print(f"  N={count}: epoch {row['epoch_s']:.3f} s over {row['epochs']} epochs, pages {row['pages']}, "
                      f"stop: saved {row['saved_s']:.2f} s, shown {row['stop_s']:.2f} s, errors {len(row['errors'])}; cores used: "
                      + ", ".join(f"{name} {value:.2f}" for name, value in row["cpu"].items()), flush=True)
            await browser.close()
            await lecturers_browser.close()
    finally:
        memory.stop()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, memory, keep_log)
    return 0 if all(not row["errors"] for row in rows) else 1


def print_table(rows: list[dict], memory: MemoryWatch, log_path: Path) -> None:
    baseline = rows[0]["epoch_s"] if rows else float("nan")
    print("\nsessions  epoch s  vs N=0   server cores  page ready p50 / p95 s  pages   Stop->saved / shown s  errors  one shared job")
    for row in rows:
        shared = ("yes" if row["jobs_seen"] == 1 and row["progress_seen"] == row["train_watchers"] else
                  f"no ({row['jobs_seen']} jobs, {row['progress_seen']}/{row['train_watchers']} saw progress)") \
            if row["train_watchers"] else "-"
        print(f"{row['sessions']:>8}  {row['epoch_s']:7.3f}  {row['epoch_s'] / baseline - 1:+6.1%}   {row['cpu']['server']:12.2f}  "
              f"{row['p50']:9.2f} / {row['p95']:6.2f}        {row['pages']:>6}  {row['saved_s']:9.2f} / {row['stop_s']:6.2f}   "
              f"{len(row['errors']):>6}  {shared}")
        for error in row["errors"][:5]:
            print(f"          error: {error}")
        for text in sorted(set(row.get("other_progress", [])))[:3]:
            print(f"          a Train watcher's progress line read: {text!r}")
    log = log_path.read_text(errors="replace")
    tracebacks = log.count("Traceback")
    print(f"\npeak memory: server {memory.server_peak / 2**20:,.0f} MiB, training process {memory.worker_peak / 2**20:,.0f} MiB")
    print(f"server log: {tracebacks} traceback(s), {log.count('WebSocketClosedError') + log.count('WebSocketDisconnect')} "
          f"websocket-closed message(s) ({log_path})")
    if rows:
        print(f"slowdown at N={rows[-1]['sessions']}: {rows[-1]['epoch_s'] / baseline - 1:+.1%}")


# -- The protocol mode: `python -m ae.loadbench --protocol --sessions 0 50 100 200` ----------------
#
# A room of simulated tabs (ae.loadclient: one Python process of websocket clients that speak
# Streamlit's protocol as the frontend does) instead of Chromium. For each N, on a fresh server:
# a lecturer opens /train?code=32&epochs=60 (the full MNIST) and presses Train; N sessions open
# /train, half before the press and half once the lecturer's page shows the job past its queue,
# and all watch until the model's record.json is on disk. A session counts as "updated every
# 5 s" when, from the job leaving the queue (or from its page being ready, if later) until the
# model was saved, no gap between two delivered updates (a fragment run that finished and drew
# something) passed 5 s.

PROTOCOL_CONFIG = {"code": 32, "epochs": 60, "seed": 0}
PROTOCOL_MAX_SESSIONS = 300
UPDATE_EVERY_S = 5.0
CLIENT_NICENESS = 10  # the client yields to the server (in a room it runs on other machines)


class ProcessWatch:
    """Peak RSS of every web process and of each other process (by module: the training
    service, the map service; or its program: nginx), sampled twice a second; the web
    processes' CPU seconds on demand. With one web process the services are its children."""

    def __init__(self, web_pids: list[int], other_pids: list[int] = ()):
        import psutil

        self.webs = [psutil.Process(pid) for pid in web_pids]
        self.others = [psutil.Process(pid) for pid in other_pids]
        self.web_peak = 0  # the largest web process
        self.children_peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def label(child) -> str:
        try:
            command = child.cmdline()
            return command[command.index("-m") + 1] if "-m" in command else child.name()
        except Exception:
            return f"pid {child.pid}"

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.5):
            for web in self.webs:
                try:
                    self.web_peak = max(self.web_peak, web.memory_info().rss)
                except psutil.Error:
                    continue
            for other in (self.others + [c for web in self.webs for c in self._children(web)]):
                try:
                    name = self.label(other)
                    self.children_peak[name] = max(self.children_peak.get(name, 0), other.memory_info().rss)
                except psutil.Error:
                    pass

    @staticmethod
    def _children(process) -> list:
        import psutil

        try:
            return process.children(recursive=True)
        except psutil.Error:
            return []

    def web_cpu(self) -> float:
        """CPU seconds of all the web processes together."""
        import psutil

        total = 0.0
        for web in self.webs:
            try:
                times = web.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                return float("nan")
        return total

    def stop(self) -> None:
        self._stop.set()


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Room:
    """What the sessions talk to: one plain `streamlit run app.py` (its services its children),
    or, for K > 1, a big-class server (`ae.serve`): K web processes sharing one training service
    and one map service behind nginx, which the sessions reach through the proxy."""

    def __init__(self, web_processes: str, cache: Path, log_path: Path):
        self.server = self.big_class = None
        if web_processes == "1":
            port = _free_port()
            self.server = start_server(cache, port, log_path, niceness=0)
            self.base = f"http://127.0.0.1:{port}"
            self.watch = ProcessWatch([self.server.pid])
        else:
            from ae.serve import BigClassServer

            self.big_class = BigClassServer(web=int(web_processes.rstrip("s")), port=_free_port(), log_folder=log_path.parent /
                                            "ae-loadbench-logs", environment={"AE_CACHE_DIR": str(cache),
                                                                             "AE_WARM_UMAP": "0"}).start()
            self.base = self.big_class.url
            others = self.big_class.services + [self.big_class.proxy_process]
            self.watch = ProcessWatch([web.process.pid for web in self.big_class.webs],
                                      [child.process.pid for child in others])

    def kill(self) -> None:
        if self.server is not None:
            self.server.kill()
        if self.big_class is not None:
            for child in [self.big_class.proxy_process] + self.big_class.webs + self.big_class.services:
                child.process.kill()

    def stop(self) -> None:
        self.watch.stop()
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
        if self.big_class is not None:
            self.big_class.stop()


async def protocol_one(count: int, deadline: float, log_path: Path, web_processes: str = "1") -> dict:
    from ae import loadclient

    work = Path(tempfile.mkdtemp(prefix="ae-loadbench-protocol-"))
    cache = work / "cache"
    room = Room(web_processes, cache, log_path)
    SERVER[0] = room
    watch = room.watch
    bases = [room.base]
    config = PROTOCOL_CONFIG
    row: dict = {"sessions": count, "web_processes": web_processes, "errors": []}
    sessions: list = []
    lecturer = loadclient.ProtocolSession(bases[0], f"/train?code={config['code']}&epochs={config['epochs']}", name="lecturer")
    try:
        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        await lecturer.open()
        if await lecturer.wait_ready(min(180.0, left())) is None:
            raise RuntimeError("the lecturer's page was not ready")
        half = count // 2
        before = loadclient.make_sessions(bases[0], ["/train"] * half, name_prefix="before-")
        after = loadclient.make_sessions(bases[0], ["/train"] * (count - half), name_prefix="after-")
        sessions = before + after
        await asyncio.wait_for(loadclient.open_sessions(before, concurrency=20, ready_timeout=min(180.0, left())), left())
        full_runs = len(lecturer.stats.full_runs)
        web_before, client_before = watch.web_cpu(), own_cpu()
        pressed = await lecturer.press("train_button")
        # "After the press" means once the lecturer's page shows the job past its queue (the
        # training process has it: starting, compiling or an epoch), as a student who walks in
        # on a running job would find it.
        if not await lecturer.wait_until(lambda: len(lecturer.stats.full_runs) > full_runs and lecturer.progress_text
                                         and not lecturer.progress_text.startswith("Waiting"), min(180.0, left())):
            row["errors"].append(f"the lecturer's page never showed the job running ({lecturer.progress_text!r})")
        trains_from = time.monotonic()
        row["after_opened_s"] = trains_from - pressed
        opening = asyncio.create_task(loadclient.open_sessions(after, concurrency=20, ready_timeout=min(180.0, left())))
        saved_at = None
        while time.monotonic() < deadline and time.monotonic() - pressed < 600:
            if record_of(cache, config["seed"]) is not None:
                saved_at = time.monotonic()
                break
            await asyncio.sleep(0.1)
        end = saved_at or time.monotonic()
        web_after, client_after = watch.web_cpu(), own_cpu()
        try:
            await asyncio.wait_for(asyncio.shield(opening), min(30.0, left()))
        except asyncio.TimeoutError:
            opening.cancel()
            row["errors"].append("some sessions opened after the press were still not ready when the model was saved")
        window = end - pressed
        delivered = 0
        watchers = []
        for session in sessions:  # while the run trained: from the job leaving the queue (or the page being ready)
            stats = session.stats
            start = max(trains_from, stats.ready_at) if stats.ready_at is not None else None
            gaps = stats.gaps(start, end) if start is not None and start < end else [window]
            delivered += len(stats.updates_between(pressed, end))
            watchers.append({"half": "before" if session in before else "after", "gaps": gaps,
                             "ok": start is not None and max(gaps) <= UPDATE_EVERY_S})
        delivered += len(lecturer.stats.updates_between(pressed, end))
        every = {half: [w["ok"] for w in watchers if w["half"] == half] for half in ("before", "after")}
        ready = [s.stats.ready_s for s in sessions if s.stats.ready_s is not None]
        all_gaps = [g for w in watchers for g in w["gaps"]]
        web_seconds = web_after - web_before
        row.update({
            "saved_s": (saved_at - pressed) if saved_at else float("nan"),
            "window_s": window,
            "every5": sum(w["ok"] for w in watchers) / len(watchers) if watchers else float("nan"),
            "every5_before": sum(every["before"]) / len(every["before"]) if every["before"] else float("nan"),
            "every5_after": sum(every["after"]) / len(every["after"]) if every["after"] else float("nan"),
            "gap_p95": _percentile(all_gaps, 95),
            "delivered": delivered,
            "lecturer_updates": len(lecturer.stats.updates_between(pressed, end)),
            "ticks": sum(s.stats.ticks_sent for s in sessions),
            "empty_runs": sum(s.stats.empty_fragment_runs for s in sessions),
            "deltas": sum(s.stats.deltas for s in sessions),
            "cut_short": sum(s.stats.cut_short for s in sessions),
            "web_cores": web_seconds / window if window > 0 else float("nan"),
            "web_cpu_per_update": web_seconds / delivered if delivered else float("nan"),
            "client_cores": (client_after - client_before) / window if window > 0 else float("nan"),
            "ready_p50": statistics.median(ready) if ready else float("nan"),
            "ready_p95": _percentile(ready, 95),
            "pages": f"{len(ready)}/{count}",
        })
        if saved_at is None:
            row["errors"].append("the model was not saved in time")
    except Exception as error:
        row["errors"].append(f"run: {type(error).__name__}: {error}")
    finally:
        await asyncio.gather(lecturer.close(), *(s.close() for s in sessions), return_exceptions=True)
        for session in [lecturer, *sessions]:
            row["errors"].extend(f"{session.stats.name}: {e}" for e in session.stats.errors)
        room.stop()
        SERVER[0] = None
        shutil.rmtree(work, ignore_errors=True)
    row["web_peak"] = watch.web_peak
    row["children_peak"] = dict(watch.children_peak)
    return row


async def protocol_main(counts: list[int], limit: float, log_path: Path, web_processes: list[str]) -> int:
    os.setpriority(os.PRIO_PROCESS, 0, CLIENT_NICENESS)  # this thread runs the client; servers reset to 0
    deadline = time.monotonic() + limit - 15
    rows = []
    for processes in web_processes:
        for count in counts:
            if time.monotonic() > deadline - 60:
                print(f"  K={processes} N={count}: skipped, too little of --limit left", flush=True)
                continue
            row = await protocol_one(count, deadline, log_path, processes)
            rows.append(row)
            print(f"  K={processes} N={count}: saved {row.get('saved_s', float('nan')):.1f} s after the click, "
                  f"{row.get('delivered', 0)} updates delivered, errors {len(row['errors'])}", flush=True)
    print_protocol_table(rows, log_path)
    return 0 if rows and all(not row["errors"] for row in rows) else 1


def print_protocol_table(rows: list[dict], log_path: Path) -> None:
    nan = float("nan")
    base = next((r for r in rows if r["sessions"] == 0 and r["web_processes"] == "1"), rows[0] if rows else None)
    baseline = base.get("saved_s", nan) if base else nan  # one web process, nobody watching
    print(f"\nprotocol load client, /train?code={PROTOCOL_CONFIG['code']}&epochs={PROTOCOL_CONFIG['epochs']} (full MNIST); "
          f"half the sessions open /train before Train is pressed, half after")
    print("K = web processes: 1 is a plain `streamlit run` (fragments poll); 1s, 2... are ae.serve behind nginx "
          "(the browser draws the live view from the feed); vs N=0: against K=1, N=0 in this run")
    print("K  sessions  click->saved s  vs N=0   every 5 s: all (before/after)  p95 gap s  updates  web cores  "
          "web ms/update  ready p50/p95 s  pages    errors  web MiB  children MiB                 client cores")
    for row in rows:
        children = ", ".join(f"{name.rsplit('.', 2)[-2] if name.count('.') >= 2 else name} {peak / 2**20:,.0f}"
                             for name, peak in sorted(row.get("children_peak", {}).items()))
        print(f"{row['web_processes']:<2} {row['sessions']:>8}  {row.get('saved_s', nan):14.1f}  {row.get('saved_s', nan) / baseline - 1:+6.1%}   "
              f"{row.get('every5', nan):5.0%} ({row.get('every5_before', nan):4.0%} / {row.get('every5_after', nan):4.0%})      "
              f"{row.get('gap_p95', nan):9.1f}  {row.get('delivered', 0):7d}  {row.get('web_cores', nan):9.2f}  "
              f"{row.get('web_cpu_per_update', nan) * 1000:13.1f}  {row.get('ready_p50', nan):6.2f} / {row.get('ready_p95', nan):5.2f}  "
              f"{row.get('pages', '-'):>7}  {len(row['errors']):>6}  {row.get('web_peak', 0) / 2**20:7,.0f}  {children:<28} "
              f"{row.get('client_cores', nan):6.2f}")
        for error in row["errors"][:5]:
            print(f"          error: {error}")
        if len(row["errors"]) > 5:
            print(f"          ... {len(row['errors']) - 5} more")
    for row in rows:
        if "ticks" in row:
            print(f"N={row['sessions']}: window {row['window_s']:.1f} s; the second half opened {row.get('after_opened_s', nan):.1f} s "
                  f"after the press; the sessions sent {row['ticks']} fragment ticks, got {row['deltas']} deltas, "
                  f"{row['empty_runs']} fragment runs that drew nothing, {row['cut_short']} runs cut short; "
                  f"the lecturer's own updates {row['lecturer_updates']}")
    print(f"(server log of the last N: {log_path})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[0, 5, 10, 20])
    parser.add_argument("--limit", type=float, default=900, help="seconds before the whole run stops itself")
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "ae-loadbench-server.log")
    parser.add_argument("--protocol", action="store_true",
                        help="simulated tabs speaking Streamlit's websocket protocol (ae.loadclient) instead of Chromium")
    parser.add_argument("--web-processes", nargs="+", default=["1"],
                        help="with --protocol: 1 is a plain `streamlit run app.py` (fragments poll); K or Ks "
                             "(e.g. 2, or 1s) is ae.serve: K web processes behind nginx, live view from the feed")
    args = parser.parse_args()
    most = PROTOCOL_MAX_SESSIONS if args.protocol else 40
    if any(count < 0 or count > most for count in args.sessions):
        parser.error(f"sessions must be between 0 and {most}")
    def valid(value: str) -> bool:
        number = value[:-1] if value.endswith("s") else value
        return number.isdigit() and 1 <= int(number) <= 16

    if not all(valid(value) for value in args.web_processes) or (args.web_processes != ["1"] and not args.protocol):
        parser.error("--web-processes takes 1 to 16 (or 1s: one web process behind ae.serve's nginx), with --protocol")
    def give_up() -> None:
        print(f"loadbench: stopped after its {args.limit:.0f} s limit", flush=True)
        if SERVER[0] is not None:
            SERVER[0].kill()
        os._exit(3)

    timer = threading.Timer(args.limit, give_up)  # bounded in time, whatever happens
    timer.daemon = True
    timer.start()
    if args.protocol:
        return asyncio.run(protocol_main(args.sessions, args.limit, args.log, args.web_processes))
    return asyncio.run(main_async(args.sessions, args.log))


if __name__ == "__main__":
    sys.exit(main())
