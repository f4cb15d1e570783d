"""A server for a big class: `python -m ae.serve --web 4 --port 8501`.

One Streamlit process serves every session on one interpreter, about one core at most, so a
room of 200 needs several. This starts:

- the training service and the map service, once, listening in a private services folder
  (`ae.ipc`); every web process attaches to both, so a run started through one is seen,
  shared and stoppable through all;
- K web processes (`streamlit run app.py`) on loopback ports, with `AE_SERVICES` set;
- HAProxy in front, on the given address and port, with sticky sessions (a cookie names the
  web process: Streamlit keeps a session's uploads and media in its own process) and
  websockets passed through; a web process that fails its health check gets no new sessions.

It then supervises: a service or web process that dies is started again (the web processes
reattach by themselves). Ctrl+C or SIGTERM stops all of them and removes the folder. A plain
`streamlit run app.py` stays the default for a laptop and needs none of this.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ae import ipc

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0  # seconds for a web process to answer its health check
HAPROXY_CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    option redispatch
    retries 2
    timeout connect 5s
    timeout http-request 30s
    timeout client 1h
    timeout server 1h
    timeout tunnel 8h
frontend room
    bind {address}:{port}
    default_backend web
backend web
    balance roundrobin
    cookie AE_WEB insert indirect nocache httponly
    option httpchk GET /_stcore/health
    http-response set-header X-AE-Web %[srv_name]
{servers}
"""


def haproxy_path() -> str | None:
    """Debian puts HAProxy in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    return found if Path(found).exists() else None


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def haproxy_config(address: str, port: int, web_ports: list[int]) -> str:
    servers = "\n".join(f"    server web{i} 127.0.0.1:{web_port} cookie web{i} check inter 2s fall 2 rise 1"
                        for i, web_port in enumerate(web_ports, start=1))
    return HAPROXY_CONFIG.format(address=address, port=port, servers=servers)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@dataclass
class Child:
    """One supervised process: how to start it, and the running one."""

    name: str
    command: list[str]
    environment: dict
    log_path: Path
    process: subprocess.Popen | None = None
    restarts: int = 0

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.environment, stdin=subprocess.DEVNULL,
                                        stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        ipc.end_process(self.process)


@dataclass
class BigClassServer:
    """The services, K web processes and (unless `proxy` is False) HAProxy in front."""

    web: int = 2
    port: int = 8501
    address: str = "127.0.0.1"
    proxy: bool = True
    log_folder: Path | None = None
    environment: dict = field(default_factory=dict)  # extra variables for every process (tests)
    folder: Path | None = None
    services: list[Child] = field(default_factory=list)
    webs: list[Child] = field(default_factory=list)
    haproxy: Child | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def web_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.web_ports[index]}"

    def start(self) -> "BigClassServer":
        from ae.model.data import load_dataset
        from ae.storage.store import ModelStore

        if self.proxy and haproxy_path() is None:
            raise SystemExit("HAProxy is not installed: `apt-get install haproxy` (Debian), or run with --no-proxy.")
        base = dict(os.environ, **self.environment)
        dataset = load_dataset(base.get("AE_DATA_PATH"))  # a broken data file stops us here, in words
        cache = base.get("AE_CACHE_DIR")
        store = ModelStore.for_dataset(dataset, Path(cache) if cache else None)
        self.folder = ipc.make_services_folder()
        self.log_folder = Path(self.log_folder or self.folder)
        self.log_folder.mkdir(parents=True, exist_ok=True)
        environment = dict(base, **{ipc.SERVICES_VARIABLE: str(self.folder)})
        training = {"services_folder": str(self.folder), "data_path": str(dataset.path), "store_root": str(store.root),
                    "crash_notes": {}}
        self.services = [
            Child("training service", [sys.executable, "-m", "ae.training.process", json.dumps(training)],
                  environment, self.log_folder / "training.log"),
            Child("map service", [sys.executable, "-m", "ae.maps.process",
                                  json.dumps({"services_folder": str(self.folder)})],
                  environment, self.log_folder / "maps.log"),
        ]
        for service in self.services:
            service.start()
        self._wait_for_sockets()
        self.web_ports = [free_port() for _ in range(self.web)]
        self.webs = [Child(f"web process {i + 1}", [
            sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false"], environment, self.log_folder / f"web{i + 1}.log")
            for i, port in enumerate(self.web_ports)]
        for web in self.webs:
            web.start()
        self._wait_for_webs()
        if self.proxy:
            config = self.folder / "haproxy.cfg"
            config.write_text(haproxy_config(self.address, self.port, self.web_ports))
            self.haproxy = Child("HAProxy", [haproxy_path(), "-db", "-f", str(config)], environment,
                                 self.log_folder / "haproxy.log")
            self.haproxy.start()
            self._wait_until(lambda: healthy(self.url), "HAProxy", 15)
        return self

    def _wait_until(self, ready, what: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{what} did not start within {seconds:.0f} s; see the logs in {self.log_folder}.")
            time.sleep(0.2)

    def _wait_for_sockets(self) -> None:
        names = [self.folder / "training.sock", self.folder / "maps.sock"]
        self._wait_until(lambda: all(path.exists() for path in names), "The services", 60)

    def _wait_for_webs(self) -> None:
        self._wait_until(lambda: all(healthy(f"http://127.0.0.1:{p}") for p in self.web_ports), "The web processes",
                         START_TIMEOUT)

    def supervise_once(self) -> list[str]:
        """Start again whatever died; returns what was restarted, in words."""
        restarted = []
        for child in self.services + self.webs:
            if not child.alive():
                code = child.process.returncode if child.process is not None else None
                child.restarts += 1
                child.start()
                restarted.append(f"{child.name} stopped ({ipc.describe_exit(code)}); started again")
        if self.haproxy is not None and not self.haproxy.alive():
            raise RuntimeError(f"HAProxy stopped; see {self.haproxy.log_path}.")
        return restarted

    def stop(self) -> None:
        """Everything, front to back: the proxy, the web processes, then the services."""
        for child in ([self.haproxy] if self.haproxy else []) + self.webs + self.services:
            child.stop()
        if self.folder is not None:
            for name in ("training.sock", "maps.sock", "key", "haproxy.cfg"):
                (self.folder / name).unlink(missing_ok=True)
            if self.log_folder != self.folder:
                shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "BigClassServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--web", type=int, default=4, help="web processes (about one core each at most); default 4")
    parser.add_argument("--port", type=int, default=8501, help="the port the room opens; default 8501")
    parser.add_argument("--address", default="127.0.0.1",
                        help="the address to listen on; default loopback only. 0.0.0.0 opens it to the network")
    parser.add_argument("--no-proxy", action="store_true", help="no HAProxy: print each web process's own address")
    parser.add_argument("--logs", type=Path, default=None, help="a folder for every process's log")
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.web <= 64:
        parser.error("--web takes 1 to 64 web processes.")
    server = BigClassServer(web=arguments.web, port=arguments.port, address=arguments.address,
                            proxy=not arguments.no_proxy, log_folder=arguments.logs)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        server.start()
        print(f"Autoencoder Explorer for a big class: {server.url if server.proxy else ''} "
              f"({arguments.web} web processes, one training service, one map service). Logs: {server.log_folder}. "
              "Ctrl+C stops all of them.", flush=True)
        if not server.proxy:
            for index in range(arguments.web):
                print(f"  web process {index + 1}: {server.web_url(index)}", flush=True)
        while not stopping:
            for line in server.supervise_once():
                print(line, flush=True)
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    except RuntimeError as problem:  # something did not start: said in words, everything stopped
        print(problem, file=sys.stderr, flush=True)
        return 1
    finally:
        server.stop()
        print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
