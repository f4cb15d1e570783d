"""A server for a big class: `python -m ae.serve --web 4 --port 8501`.

One Streamlit process serves every session on one interpreter, about one core at most, so a
room of 200 needs several. This starts:

- the training service and the map service, once, listening in a private services folder
  (`ae.ipc`); every web process attaches to both, so a run started through one is seen,
  shared and stoppable through all;
- K web processes (`streamlit run app.py`) on loopback ports, with `AE_SERVICES` set;
- nginx in front, on `--address` (loopback unless asked: a classroom gives 0.0.0.0 or the
  room's interface) and `--port`, with sticky sessions (a cookie picks the web process:
  Streamlit keeps a session's uploads and media in its own process) and websockets passed
  through; a web process that stops answering gets no new sessions. nginx also serves the
  live feed (`/live/`): the files the web processes write once per snapshot version
  (`ae.display.feed`), which every watching browser polls without costing Python anything.

Only nginx listens on `--address`: whatever it is, the web processes stay on loopback and the
services on sockets in the private folder. It then supervises: a service or web process that
dies is started again (the web processes reattach by themselves). Ctrl+C or SIGTERM stops all
of them and removes the folder. A plain `streamlit run app.py` stays the default for a laptop
and needs none of this.
"""
from __future__ import annotations

import argparse
import ipaddress
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
from ae.cluster import ADDRESS_VARIABLE
from ae.display.feed import FEED_FOLDER_VARIABLE, FEED_URL_VARIABLE

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"  # the web processes' address, whatever nginx listens on
START_TIMEOUT = 90.0  # seconds for a web process to answer its health check
NGINX_CONFIG = """\
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {log} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/nginx-body;
    proxy_temp_path {folder}/nginx-proxy;
    fastcgi_temp_path {folder}/nginx-fastcgi;
    uwsgi_temp_path {folder}/nginx-uwsgi;
    scgi_temp_path {folder}/nginx-scgi;
    types {{ application/json json; image/png png; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    # A visitor without the cookie gets a random one: the hash spreads new visitors and then
    # keeps each on its web process.
    map $cookie_AE_WEB $ae_web {{ "" $request_id; default $cookie_AE_WEB; }}
    upstream web {{
        hash $ae_web consistent;
{servers}
    }}
    server {{
        listen {listen};
        client_max_body_size 12m;
        location /live/ {{
            alias {feed}/;
            add_header Cache-Control "no-cache";
        }}
        location / {{
            proxy_pass http://web;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 8h;
            proxy_send_timeout 8h;
            proxy_next_upstream error timeout;
            add_header Set-Cookie "AE_WEB=$ae_web; Path=/; HttpOnly; SameSite=Lax" always;
            add_header X-AE-Web $upstream_addr always;
        }}
    }}
}}
"""


def nginx_path() -> str | None:
    """Debian puts nginx in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if Path(found).exists() else None


def check_address(address: str) -> str:
    """The address to listen on, as an IP literal: a host name could resolve anywhere."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise ValueError(f"--address takes an IP address (127.0.0.1, 0.0.0.0, ::, or this machine's own); "
                         f"got {address!r}.") from None


def host_port(address: str, port: int) -> str:
    """`address:port`, with an IPv6 address in brackets as nginx and URLs want it."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def local_url(address: str, port: int) -> str:
    """How this machine reaches a server listening on `address`: a wildcard through loopback."""
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        address = "::1" if ip.version == 6 else LOOPBACK
    return f"http://{host_port(address, port)}"


def nginx_config(address: str, port: int, web_ports: list[int], folder: Path, feed: Path, log: Path) -> str:
    """nginx listens on `address`; its upstreams, the web processes, are on loopback."""
    servers = "\n".join(f"        server {LOOPBACK}:{web_port} max_fails=1 fail_timeout=5s;" for web_port in web_ports)
    return NGINX_CONFIG.format(listen=host_port(check_address(address), port), servers=servers, folder=folder,
                               feed=feed, log=log)


def web_command(port: int) -> list[str]:
    """One web process: Streamlit on loopback only, whatever the room's address."""
    return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
            "--server.address", LOOPBACK, "--server.headless", "true", "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false"]


def free_port(address: str = LOOPBACK) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


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
    """The services, K web processes and (unless `proxy` is False) nginx in front."""

    web: int = 2
    port: int = 8501
    address: str = "127.0.0.1"
    proxy: bool = True
    log_folder: Path | None = None
    environment: dict = field(default_factory=dict)  # extra variables for every process (tests)
    folder: Path | None = None
    services: list[Child] = field(default_factory=list)
    webs: list[Child] = field(default_factory=list)
    proxy_process: Child | None = None
    on_cluster: bool = False  # AE_RAY_ADDRESS set: no local training service

    def __post_init__(self) -> None:
        self.address = check_address(self.address)

    @property
    def url(self) -> str:
        """The front as this machine reaches it (the health check, the tests)."""
        return local_url(self.address, self.port)

    def web_url(self, index: int) -> str:
        return f"http://{LOOPBACK}:{self.web_ports[index]}"

    def start(self) -> "BigClassServer":
        from ae.model.data import load_dataset
        from ae.storage.store import ModelStore

        if self.proxy and nginx_path() is None:
            raise RuntimeError("nginx is not installed: `apt-get install nginx` (Debian), or run with --no-proxy.")
        base = dict(os.environ, **self.environment)
        dataset = load_dataset(base.get("AE_DATA_PATH"))  # a broken data file stops us here, in words
        cache = base.get("AE_CACHE_DIR")
        store = ModelStore.for_dataset(dataset, Path(cache) if cache else None)
        self.folder = ipc.make_services_folder()
        self.log_folder = Path(self.log_folder or self.folder)
        self.log_folder.mkdir(parents=True, exist_ok=True)
        self.feed = self.folder / "live"
        self.feed.mkdir(mode=0o755)
        self.folder.chmod(0o711)  # nginx's workers may pass through to the feed, and see nothing else
        (self.folder / "key").chmod(0o600)
        environment = dict(base, **{ipc.SERVICES_VARIABLE: str(self.folder)})
        if self.proxy:
            environment.update({FEED_FOLDER_VARIABLE: str(self.feed), FEED_URL_VARIABLE: "/live/"})
        training = {"services_folder": str(self.folder), "data_path": str(dataset.path), "store_root": str(store.root),
                    "crash_notes": {}}
        self.services = [
            Child("map service", [sys.executable, "-m", "ae.maps.process",
                                  json.dumps({"services_folder": str(self.folder)})],
                  environment, self.log_folder / "maps.log"),
        ]
        self.on_cluster = bool(base.get(ADDRESS_VARIABLE))
        if not self.on_cluster:  # on a Ray cluster the training service is the cluster's actor
            self.services.insert(0, Child("training service", [sys.executable, "-m", "ae.training.process",
                                                                json.dumps(training)],
                                          environment, self.log_folder / "training.log"))
        for service in self.services:
            service.start()
        self._wait_for_sockets()
        self.web_ports = [free_port() for _ in range(self.web)]
        self.webs = [Child(f"web process {i + 1}", web_command(port), environment, self.log_folder / f"web{i + 1}.log")
                     for i, port in enumerate(self.web_ports)]
        for web in self.webs:
            web.start()
        self._wait_for_webs()
        if self.proxy:
            config = self.folder / "nginx.conf"
            config.write_text(nginx_config(self.address, self.port, self.web_ports, self.folder, self.feed,
                                           self.log_folder / "nginx.log"))
            self.proxy_process = Child("nginx", [nginx_path(), "-c", str(config), "-p", str(self.folder)], environment,
                                       self.log_folder / "nginx.log")
            self.proxy_process.start()
            self._wait_until(lambda: healthy(self.url), "nginx", 15)
        return self

    def _wait_until(self, ready, what: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{what} did not start within {seconds:.0f} s; see the logs in {self.log_folder}.")
            time.sleep(0.2)

    def _wait_for_sockets(self) -> None:
        names = [self.folder / "maps.sock"] + ([] if self.on_cluster else [self.folder / "training.sock"])
        self._wait_until(lambda: all(path.exists() for path in names), "The services", 60)

    def _wait_for_webs(self) -> None:
        self._wait_until(lambda: all(healthy(f"http://{LOOPBACK}:{p}") for p in self.web_ports), "The web processes",
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
        if self.proxy_process is not None and not self.proxy_process.alive():
            raise RuntimeError(f"nginx stopped; see {self.proxy_process.log_path}.")
        return restarted

    def stop(self) -> None:
        """Everything, front to back: the proxy, the web processes, then the services."""
        for child in ([self.proxy_process] if self.proxy_process else []) + self.webs + self.services:
            child.stop()
        if self.folder is not None:
            for name in ("training.sock", "maps.sock", "key", "nginx.conf", "nginx.pid"):
                (self.folder / name).unlink(missing_ok=True)
            for name in ("live", "nginx-body", "nginx-proxy", "nginx-fastcgi", "nginx-uwsgi", "nginx-scgi"):
                shutil.rmtree(self.folder / name, ignore_errors=True)
            if self.log_folder != self.folder:
                shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "BigClassServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def server_from_arguments(argv: list[str] | None = None) -> BigClassServer:
    """The server the command line asks for, not yet started; a wrong argument exits in words."""
    parser = argparse.ArgumentParser(prog="python -m ae.serve", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--web", type=int, default=4, help="web processes (about one core each at most); default 4")
    parser.add_argument("--port", type=int, default=8501, help="the port the room opens; default 8501")
    parser.add_argument("--address", default=LOOPBACK,
                        help="the address nginx listens on; default 127.0.0.1, loopback only. A classroom: 0.0.0.0 "
                             "(every interface) or the room's interface's address. The web processes stay on loopback")
    parser.add_argument("--no-proxy", action="store_true", help="no nginx: print each web process's own address")
    parser.add_argument("--logs", type=Path, default=None, help="a folder for every process's log")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="train and map on this Ray cluster ('auto' on a node of it); sets AE_RAY_ADDRESS")
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.web <= 64:
        parser.error("--web takes 1 to 64 web processes.")
    try:
        address = check_address(arguments.address)
    except ValueError as problem:
        parser.error(str(problem))
    if arguments.no_proxy and not ipaddress.ip_address(address).is_loopback:
        parser.error("--no-proxy serves the web processes on loopback only; --address needs nginx in front.")
    return BigClassServer(web=arguments.web, port=arguments.port, address=address, proxy=not arguments.no_proxy,
                          log_folder=arguments.logs,
                          environment={ADDRESS_VARIABLE: arguments.ray} if arguments.ray else {})


def main(argv: list[str] | None = None) -> int:
    server = server_from_arguments(argv)
    ray = server.environment.get(ADDRESS_VARIABLE)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        server.start()
        trainer = f"the Ray cluster's ({ray})" if ray else "one"
        where = f"{server.url} (listening on {host_port(server.address, server.port)})" if server.proxy else ""
        print(f"Autoencoder Explorer for a big class: {where} "
              f"({server.web} web processes, {trainer} training service, one map service). Logs: {server.log_folder}. "
              "Ctrl+C stops all of them.", flush=True)
        if not server.proxy:
            for index in range(server.web):
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
