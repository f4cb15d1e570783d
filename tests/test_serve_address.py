"""Loopback unless asked: what `streamlit run` and `python -m ae.serve` listen on, checked from
the config and the arguments they build, without starting a server."""
from __future__ import annotations

import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest

from ae.serve import (LOOPBACK, BigClassServer, local_url, nginx_config, nginx_path, server_from_arguments,
                      web_command)
from tests.conftest import ROOT


def write_config(folder: Path, address: str, port: int = 8501, web_ports=(40001, 40002)) -> Path:
    path = folder / "nginx.conf"
    path.write_text(nginx_config(address, port, list(web_ports), folder, folder, folder / "nginx.log"))
    return path


def listen_lines(address: str, port: int = 8501) -> tuple[list[str], list[str]]:
    """nginx's `listen` lines, and its upstream `server` lines (the web processes)."""
    with tempfile.TemporaryDirectory() as folder:
        lines = [line.strip() for line in write_config(Path(folder), address, port).read_text().splitlines()]
    return ([line for line in lines if line.startswith("listen ")],
            [line for line in lines if line.startswith("server ") and line != "server {"])


def test_streamlit_run_listens_on_loopback_unless_told():
    from streamlit import config

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["server"]["address"] == "127.0.0.1"
    assert "server.address" in config._config_options_template  # still the option's name


def test_ae_serve_defaults_to_loopback():
    server = server_from_arguments([])
    assert server.address == LOOPBACK and server.port == 8501 and server.proxy
    assert server.url == "http://127.0.0.1:8501"
    assert listen_lines(server.address)[0] == ["listen 127.0.0.1:8501;"]


@pytest.mark.parametrize("address, listen, url", [
    ("0.0.0.0", "listen 0.0.0.0:8600;", "http://127.0.0.1:8600"),
    ("192.168.1.20", "listen 192.168.1.20:8600;", "http://192.168.1.20:8600"),
    ("::", "listen [::]:8600;", "http://[::1]:8600"),
])
def test_a_classroom_address_moves_only_the_front(address, listen, url):
    server = server_from_arguments(["--address", address, "--port", "8600"])
    assert server.url == url == local_url(address, 8600)
    listens, upstreams = listen_lines(server.address, 8600)
    assert listens == [listen]
    assert upstreams == [f"server {LOOPBACK}:40001 max_fails=1 fail_timeout=5s;",
                         f"server {LOOPBACK}:40002 max_fails=1 fail_timeout=5s;"]
    command = web_command(40001)
    assert command[command.index("--server.address") + 1] == LOOPBACK


@pytest.mark.parametrize("argv", [["--address", "lecture-hall.example.org"], ["--address", "0.0.0.0:8501"],
                                  ["--address", "0.0.0.0", "--no-proxy"]])
def test_a_wrong_address_stops_at_the_command_line(argv, capsys):
    with pytest.raises(SystemExit):
        server_from_arguments(argv)
    assert "--address" in capsys.readouterr().err


def test_the_server_refuses_a_host_name_in_code_too():
    with pytest.raises(ValueError, match="IP address"):
        BigClassServer(address="localhost")


@pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed")
@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0", "::"])
def test_nginx_accepts_the_config_it_is_given(address, tmp_path):
    config = write_config(tmp_path, address)
    checked = subprocess.run([nginx_path(), "-t", "-q", "-c", str(config), "-p", str(tmp_path)],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
