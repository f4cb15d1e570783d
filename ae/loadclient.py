"""A protocol-level load client: simulated browser tabs that speak Streamlit's websocket protocol.

One Python process drives many `ProtocolSession`s (asyncio), each behaving as Streamlit's
frontend does for the page it opened, without rendering anything, so a room of 200 sessions
fits on a machine where 200 Chromium tabs never would. Streamlit 1.67 (Starlette/uvicorn
server); the websocket is `websockets` (a direct dependency of streamlit 1.67, which no longer
ships tornado), the messages Streamlit's own protobufs.

What a session copies from the frontend (see /work/shared/notes/streamlit-room-notes.md):

- connects to `ws://HOST:PORT/_stcore/stream` with the subprotocols `streamlit` and a
  placeholder auth token; only binary frames carry BackMsg / ForwardMsg (a text frame is an
  error); pings are answered by `websockets` itself;
- the server runs nothing on connect: the session sends `rerun_script` with a ClientState
  (query string, page name from the URL path, empty page script hash); the real hash comes in
  `navigation` and goes with every later rerun; `page_info_changed` rewrites the query string;
- run identity (`metadata.run`: script_run_id, fragment_ids) comes on `new_session` and
  `script_finished`; a full run's `new_session` clears all fragment timers, and each
  `auto_rerun` (fragment id, interval) then starts one fixed-rate timer per fragment (the same
  interval again changes nothing; `stop_auto_rerun` stops the named ones); ticks fire even while
  a run is in flight, each a `rerun_script` with `fragment_id`, `is_auto_rerun`, the page
  script hash, the query string and the widget states;
- widget states: the value each widget element shows (`value`/`raw_value` when the server set
  it, else its default; a widget the user changed keeps its value) is sent with every rerun,
  except query-bound widgets whose parameter is in the URL (the server seeded those from the
  URL; the frontend reads them from there too). Pressing a button adds its `trigger_value`
  for that one rerun (a button drawn inside a fragment reruns that fragment);
- the message cache (optional, on by default): messages the server marks `cacheable`
  (new_element deltas of 10 KB or more) are kept by hash and listed in
  `cached_message_hashes`; a `ref_hash` message is replaced by the cached one; entries expire
  after `max_cached_message_age` full runs without use, as the frontend's cache does.

- the live-feed component of a big-class server (`pages/live_feed.py`): a `bidi_component`
  element whose data names a feed; like its JavaScript, one fixed-rate HTTP poll (keep-alive,
  same host) of the shown job's document while it is live (a new version is one delivered
  update) or of room.json, and a trigger rerun when the job's state changes or a run starts.

Recorded per session (`SessionStats`): seconds until the first full run finished (page ready),
the time of every fragment run that finished successfully and drew something (one delivered
update; fragment runs that drew nothing are counted apart), and of every
full run, deltas (all, and inside fragment runs), fragment ticks sent, runs cut short, bytes,
and errors: exception elements, the app's own "did not expect" error messages, disconnects,
compile errors, page-not-found, cache misses, server-side errors, timeouts.

Loopback only: a URL whose host is not localhost or in 127.0.0.0/8 is refused. Every wait is
bounded; `run_sessions` adds a total time limit and always closes its sessions.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable, Sequence
from urllib.parse import parse_qsl, urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

STREAM_PATH = "/_stcore/stream"
AUTH_PLACEHOLDER = "PLACEHOLDER_AUTH_TOKEN"  # the frontend's second subprotocol without a token
FINISHED = ForwardMsg.ScriptFinishedStatus
APP_ERROR_TEXT = "did not expect"  # the app's own guard (app.py, pages/error_guard.py)
DEFAULT_CACHE_AGE = 2


TRIGGER_ID = "$$STREAMLIT_INTERNAL_KEY_{component}__events"  # where a v2 component's triggers go


class NotLoopback(ValueError):
    """The load client only talks to servers on this machine."""


def loopback_base(url: str) -> tuple[str, str]:
    """(http base, ws base) of a loopback URL like http://127.0.0.1:8501; else NotLoopback."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "ws"):
        raise NotLoopback(f"{url}: only plain http/ws on loopback")
    host = parts.hostname or ""
    if host != "localhost":
        try:
            if ipaddress.ip_address(host) not in ipaddress.ip_network("127.0.0.0/8"):
                raise NotLoopback(f"{url}: {host} is not a loopback address (127.0.0.0/8 or localhost)")
        except ValueError as error:
            if isinstance(error, NotLoopback):
                raise
            raise NotLoopback(f"{url}: {host!r} is not a loopback address (127.0.0.0/8 or localhost)") from None
    if parts.port is None:
        raise NotLoopback(f"{url}: give the port")
    netloc = f"{host}:{parts.port}"
    return f"http://{netloc}", f"ws://{netloc}"


@dataclass
class SessionStats:
    name: str
    path: str
    opened: float = 0.0  # monotonic, when the connection was asked for
    ready_s: float | None = None  # until the first full run finished successfully
    ready_at: float | None = None
    full_runs: list[float] = field(default_factory=list)  # monotonic end of each full run
    updates: list[float] = field(default_factory=list)  # monotonic end of each fragment run that finished and drew something
    empty_fragment_runs: int = 0  # fragment runs that finished without a delta (a fragment that only watches)
    deltas: int = 0
    fragment_deltas: int = 0
    ticks_sent: int = 0
    reruns_sent: int = 0
    cut_short: int = 0  # runs that ended FINISHED_EARLY_FOR_RERUN
    messages: int = 0
    bytes_received: int = 0
    cache_hits: int = 0
    feed_polls: int = 0  # live-feed files fetched over HTTP (a big-class server's live view)
    feed_misses: int = 0  # polls that failed (the browser tries again a second later)
    errors: list[str] = field(default_factory=list)

    def updates_between(self, start: float, end: float) -> list[float]:
        return [t for t in self.updates if start <= t <= end]

    def gaps(self, start: float, end: float) -> list[float]:
        """Seconds between consecutive updates in [start, end], counting from start and to end."""
        marks = [start, *self.updates_between(start, end), end]
        return [b - a for a, b in zip(marks, marks[1:])]


@dataclass
class _Widget:
    id: str
    kind: str
    fragment_id: str
    query_key: str
    state: WidgetState | None  # None: a value this client does not model (never sent)


class ProtocolSession:
    """One simulated browser tab on one page of a Streamlit app."""

    def __init__(self, base_url: str, path: str = "/", *, name: str = "", cache_messages: bool = True,
                 follow_timers: bool = True, connect_timeout: float = 30.0, cookie: str | None = None):
        self.http_base, self.ws_base = loopback_base(base_url)
        self.cookie = cookie  # e.g. the proxy's sticky cookie: this tab's web process
        split = urlsplit(path if path.startswith("/") else "/" + path)
        self.page_name = split.path.strip("/")
        self.query_string = split.query
        self.page_script_hash = ""
        self.stats = SessionStats(name or split.path, path)
        self.cache_messages = cache_messages
        self.follow_timers = follow_timers
        self.connect_timeout = connect_timeout
        self.session_id = ""
        self.widgets: dict[str, _Widget] = {}
        self.timers: dict[str, tuple[float, asyncio.Task]] = {}
        self.running_run = ""  # script_run_id of the run in flight ("" when idle)
        self.running_fragments: tuple[str, ...] = ()
        self.run_deltas = 0  # deltas of the run in flight
        self.progress_text = ""  # the text of the last progress bar drawn (what the page says it is doing)
        self.max_cache_age = DEFAULT_CACHE_AGE
        self._cache: dict[str, tuple[ForwardMsg, int]] = {}  # hash -> (message, full run count when last used)
        self._run_widgets: set[str] = set()
        self._full_run_count = 0
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._closing = False
        self._ready = asyncio.Event()
        self._changed = asyncio.Event()  # set on every finished run
        self._feed: asyncio.Task | None = None  # the live-feed component's poller, when the page drew one
        self._http: tuple | None = None  # its keep-alive connection

    # -- life cycle ----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and ask for the first run, as a page load does."""
        from websockets.asyncio.client import connect

        self.stats.opened = time.monotonic()
        try:
            self._ws = await asyncio.wait_for(
                connect(self.ws_base + STREAM_PATH, subprotocols=["streamlit", AUTH_PLACEHOLDER],
                        additional_headers={"Cookie": self.cookie} if self.cookie else None, max_size=None, ping_interval=None, open_timeout=self.connect_timeout,
                        close_timeout=5, max_queue=None),
                self.connect_timeout + 5)
        except Exception as error:
            self._error(f"connect: {type(error).__name__}: {error}")
            raise
        self._reader = asyncio.create_task(self._read(), name=f"read {self.stats.name}")
        await self._send_rerun(first=True)

    async def wait_ready(self, timeout: float = 120.0) -> float | None:
        """Seconds until the first full run finished; None (and an error) after `timeout`."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except asyncio.TimeoutError:
            self._error(f"page not ready after {timeout:.0f} s")
        return self.stats.ready_s

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Waits (bounded) until predicate() holds after some run finished."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0 or self._reader is None or self._reader.done():
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass
        return True

    async def close(self) -> None:
        self._closing = True
        self._stop_timers()
        self._stop_feed()
        if self._ws is not None:
            try:
                await asyncio.wait_for(self._ws.close(), 6)
            except Exception:
                pass
        if self._reader is not None:
            self._reader.cancel()
            try:
                await asyncio.wait_for(self._reader, 5)
            except BaseException:
                pass

    # -- what a user does ----------------------------------------------------------------

    def widget_id(self, key: str) -> str | None:
        """The widget id Streamlit built for a keyed widget: `$$ID-<hash>-<key>`."""
        for widget_id in self.widgets:
            if widget_id.endswith("-" + key):
                return widget_id
        return None

    async def press(self, key: str, timeout: float = 60.0) -> float:
        """Presses the button with this key (waiting, bounded, until the page drew it); returns
        the monotonic time of the press."""
        if not await self.wait_until(lambda: self.widget_id(key) is not None, timeout):
            raise LookupError(f"{self.stats.name}: no button with key {key!r} on the page")
        widget = self.widgets[self.widget_id(key)]
        trigger = WidgetState(id=widget.id, trigger_value=True)
        pressed = time.monotonic()
        await self._send_rerun(extra=[trigger], fragment_id=widget.fragment_id)
        return pressed

    # -- sending -------------------------------------------------------------------------

    def _widget_states(self, extra: Iterable[WidgetState] = ()) -> list[WidgetState]:
        query = dict(parse_qsl(self.query_string, keep_blank_values=True))
        extra = list(extra)
        skip = {state.id for state in extra}
        states = [w.state for w in self.widgets.values()
                  if w.state is not None and w.id not in skip and not (w.query_key and w.query_key in query)]
        return states + extra

    async def _send_rerun(self, *, first: bool = False, fragment_id: str = "", auto: bool = False,
                          extra: Iterable[WidgetState] = ()) -> None:
        state = ClientState(query_string=self.query_string, page_script_hash=self.page_script_hash,
                            fragment_id=fragment_id, is_auto_rerun=auto)
        if first:
            state.page_name = self.page_name
            state.context_info.timezone = "UTC"
            state.context_info.timezone_offset = 0
            state.context_info.locale = "en-US"
            state.context_info.url = f"{self.http_base}/{self.page_name}" + (f"?{self.query_string}" if self.query_string else "")
            state.context_info.is_embedded = False
            state.context_info.color_scheme = "light"
        state.widget_states.widgets.extend(self._widget_states(extra))
        if self.cache_messages:
            state.cached_message_hashes.extend(self._cache)
        message = BackMsg()
        message.rerun_script.CopyFrom(state)
        if auto:
            self.stats.ticks_sent += 1
        else:
            self.stats.reruns_sent += 1
        try:
            await asyncio.wait_for(self._ws.send(message.SerializeToString()), 10)
        except Exception as error:
            if not self._closing:
                self._error(f"send: {type(error).__name__}: {error}")

    # -- fragment timers -----------------------------------------------------------------

    def _stop_timers(self, fragment_ids: Iterable[str] | None = None) -> None:
        for fragment_id in list(self.timers if fragment_ids is None else fragment_ids):
            entry = self.timers.pop(fragment_id, None)
            if entry is not None:
                entry[1].cancel()

    def _start_timer(self, fragment_id: str, interval: float) -> None:
        if not self.follow_timers or interval <= 0:
            return
        current = self.timers.get(fragment_id)
        if current is not None and current[0] == interval and not current[1].done():
            return  # the same interval again changes nothing
        self._stop_timers([fragment_id])
        self.timers[fragment_id] = (interval, asyncio.create_task(self._tick(fragment_id, interval)))

    async def _tick(self, fragment_id: str, interval: float) -> None:
        """A fixed-rate timer (setInterval): fires whether or not a run is in flight."""
        start = time.monotonic()
        count = 0
        while not self._closing:
            count += 1
            await asyncio.sleep(max(0.0, start + count * interval - time.monotonic()))
            if self._closing:
                return
            await self._send_rerun(fragment_id=fragment_id, auto=True)

    # -- the live-feed component (pages/live_feed.py), as its JavaScript behaves ----------


    def _mount_component(self, body) -> None:
        """A live-feed component was drawn (again): like its JavaScript, restart its poller."""
        try:
            data = json.loads(body.json) if body.json else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or "feed" not in data:
            return
        self._stop_feed()
        if not self._closing:
            self._feed = asyncio.get_running_loop().create_task(self._poll_feed(body.id, data))


    def _stop_feed(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
            self._feed = None


    async def _poll_feed(self, component_id: str, data: dict) -> None:
        """Every `every_ms`: the shown job's document while it is live (a new version is one
        delivered update), else room.json; a state change or a new run is sent once as the
        component's trigger, which reruns the page; a new run is polled at once, as the
        JavaScript does."""
        job, live = data.get("job"), bool(data.get("job")) and bool(data.get("live"))
        last_version, asked = None, False
        interval = max(0.1, float(data.get("every_ms", 1000)) / 1000)
        start, count = time.monotonic(), 0
        while not self._closing:
            document = await self._get_json(data["feed"] + (f"{job}.json" if live else "room.json"))
            trigger = None
            if document is not None and live:
                if document.get("version") != last_version:
                    last_version = document.get("version")
                    self.progress_text = document.get("text", "")
                    self.stats.updates.append(time.monotonic())
                    self._changed.set()
                if document.get("state") != data.get("drawn_state"):
                    trigger = f"state:{document.get('state')}"
            elif document is not None and document.get("running") not in (None, data.get("job"), data.get("running")):
                trigger = f"run:{document['running']}"
                job, live = document["running"], True  # drawn at once, before the rerun comes back
            if trigger is not None and not asked:  # one rerun; the view keeps moving meanwhile
                asked = True
                state = WidgetState(id=TRIGGER_ID.format(component=component_id),
                                    json_trigger_value=json.dumps([{"event": "changed", "value": trigger}]))
                await self._send_rerun(extra=[state])
                if live and last_version is None:
                    continue  # the new run's document now, not a second later
            count += 1
            await asyncio.sleep(max(0.0, start + count * interval - time.monotonic()))

    async def _get_json(self, path: str) -> dict | None:
        """One GET over a keep-alive connection to the same host (loopback); None if it failed."""
        split = urlsplit(self.http_base)
        for attempt in range(2):  # a keep-alive connection the server closed: reconnect once
            try:
                if self._http is None:
                    self._http = await asyncio.wait_for(asyncio.open_connection(split.hostname, split.port), 10)
                reader, writer = self._http
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {split.netloc}\r\nCache-Control: no-cache\r\n\r\n".encode())
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ")[1])
                headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
                body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    self._http = None
                self.stats.feed_polls += 1
                if status != 200:
                    self.stats.feed_misses += 1
                    return None
                return json.loads(body)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._http is not None:
                    self._http[1].close()
                self._http = None
        self.stats.feed_misses += 1
        return None

    # -- receiving -----------------------------------------------------------------------

    def _error(self, text: str) -> None:
        self.stats.errors.append(text[:300])

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for frame in self._ws:
                if isinstance(frame, str):
                    self._error("a text frame (the protocol is binary only)")
                    continue
                self.stats.messages += 1
                self.stats.bytes_received += len(frame)
                message = ForwardMsg()
                message.ParseFromString(frame)
                self._handle(message)
            if not self._closing:
                self._error(f"disconnected by the server ({self._ws.close_code} {self._ws.close_reason})")
        except ConnectionClosed as closed:
            if not self._closing:
                self._error(f"disconnected: {closed}")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug here must show up as an error, not a silent stop
            if not self._closing:
                self._error(f"client: {type(error).__name__}: {error}")
        finally:
            self._stop_timers()
            self._changed.set()

    def _handle(self, message: ForwardMsg) -> None:
        kind = message.WhichOneof("type")
        if kind == "ref_hash":
            cached = self._cache.get(message.ref_hash)
            if cached is None:
                self._error(f"ref_hash {message.ref_hash[:12]} not in the client's cache")
                return
            self.stats.cache_hits += 1
            self._cache[message.ref_hash] = (cached[0], self._full_run_count)
            replaced = ForwardMsg()
            replaced.CopyFrom(cached[0])
            replaced.metadata.CopyFrom(message.metadata)
            message, kind = replaced, replaced.WhichOneof("type")
        elif self.cache_messages and message.metadata.cacheable and message.hash:
            self._cache[message.hash] = (message, self._full_run_count)

        if kind == "new_session":
            self._new_session(message)
        elif kind == "delta":
            self._delta(message)
        elif kind == "navigation":
            if message.navigation.page_script_hash:
                self.page_script_hash = message.navigation.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = message.page_info_changed.query_string
        elif kind == "auto_rerun":
            self._start_timer(message.auto_rerun.fragment_id, message.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            self._stop_timers(message.stop_auto_rerun.fragment_ids)
        elif kind == "script_finished":
            self._finished(message)
        elif kind == "session_event":
            event = message.session_event
            if event.WhichOneof("type") == "script_compilation_exception":
                self._error(f"compile error: {event.script_compilation_exception.message}")
        elif kind == "page_not_found":
            self._error(f"page not found: {message.page_not_found.page_name!r}")

    def _new_session(self, message: ForwardMsg) -> None:
        run = message.metadata.run
        self.running_run = run.script_run_id
        self.running_fragments = tuple(run.fragment_ids)
        self.run_deltas = 0
        new = message.new_session
        if new.initialize.session_id:
            self.session_id = new.initialize.session_id
        if new.config.max_cached_message_age:
            self.max_cache_age = new.config.max_cached_message_age
        if new.page_script_hash and not self.page_script_hash:
            self.page_script_hash = new.page_script_hash
        if not self.running_fragments:  # a full run: the frontend clears every fragment timer
            self._stop_timers()
            self._run_widgets = set()

    def _delta(self, message: ForwardMsg) -> None:
        delta = message.delta
        self.stats.deltas += 1
        self.run_deltas += 1
        if self.running_fragments:
            self.stats.fragment_deltas += 1
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind == "exception":
            self._error(f"exception element: {element.exception.type}: {element.exception.message[:200]}")
            return
        if kind == "alert" and APP_ERROR_TEXT in element.alert.body:
            self._error(f"the app's error message: {element.alert.body[:200]}")
            return
        if kind == "progress":
            self.progress_text = element.progress.text
        if kind == "bidi_component":
            self._mount_component(element.bidi_component)
        body = getattr(element, kind) if kind else None
        widget_id = getattr(body, "id", "") if body is not None else ""
        if not widget_id.startswith("$$ID"):
            return
        self._run_widgets.add(widget_id)
        known = self.widgets.get(widget_id)
        state = _widget_state(kind, body, widget_id)
        if known is not None and known.state is not None and not getattr(body, "set_value", False):
            state = known.state  # the frontend keeps the value it shows; only set_value overrides
        self.widgets[widget_id] = _Widget(widget_id, kind, delta.fragment_id, getattr(body, "query_param_key", ""), state)

    def _finished(self, message: ForwardMsg) -> None:
        status = message.script_finished
        now = time.monotonic()
        fragment_run = bool(self.running_fragments) or bool(message.metadata.run.fragment_ids)
        self.running_run, self.running_fragments = "", ()
        if status == FINISHED.FINISHED_SUCCESSFULLY and not fragment_run:
            self.stats.full_runs.append(now)
            self._full_run_count += 1
            # The frontend drops the widgets no longer on the page, and ages its cache.
            for widget_id in [w for w in self.widgets if w not in self._run_widgets]:
                del self.widgets[widget_id]
            self._cache = {h: (m, used) for h, (m, used) in self._cache.items()
                           if self._full_run_count - used <= self.max_cache_age}
            if self.stats.ready_s is None:
                self.stats.ready_at = now
                self.stats.ready_s = now - self.stats.opened
                self._ready.set()
        elif status == FINISHED.FINISHED_FRAGMENT_RUN_SUCCESSFULLY or (status == FINISHED.FINISHED_SUCCESSFULLY and fragment_run):
            if self.run_deltas:
                self.stats.updates.append(now)
            else:
                self.stats.empty_fragment_runs += 1
        elif status == FINISHED.FINISHED_EARLY_FOR_RERUN:
            self.stats.cut_short += 1
        elif status == FINISHED.FINISHED_WITH_COMPILE_ERROR:
            self._error("the script finished with a compile error")
        self._changed.set()


def _widget_state(kind: str, body, widget_id: str) -> WidgetState | None:
    """The value the frontend holds for a freshly drawn widget element (None: not modelled,
    or a button: a trigger is only sent when pressed)."""
    set_value = getattr(body, "set_value", False)
    if kind == "number_input":
        return WidgetState(id=widget_id, double_value=body.value if set_value else body.default)
    if kind == "checkbox":
        return WidgetState(id=widget_id, bool_value=body.value if set_value else body.default)
    if kind in ("selectbox", "radio"):
        if set_value and body.raw_value:
            return WidgetState(id=widget_id, string_value=body.raw_value)
        if not _optional(body, "default") or body.HasField("default"):
            index = int(body.default)
            if 0 <= index < len(body.options):
                return WidgetState(id=widget_id, string_value=body.options[index])
        return None
    if kind == "slider":
        state = WidgetState(id=widget_id)
        if body.options:  # select_slider: the labels
            labels = list(body.raw_value) if set_value and body.raw_value else \
                [body.options[int(i)] for i in body.default if 0 <= int(i) < len(body.options)]
            state.string_array_value.data.extend(labels)
        else:
            state.double_array_value.data.extend(list(body.value) if set_value else list(body.default))
        return state
    return None


def _optional(body, name: str) -> bool:
    descriptor = body.DESCRIPTOR.fields_by_name.get(name)
    return bool(descriptor is not None and descriptor.has_presence)


def make_sessions(base_url: str, paths: Sequence[str], *, name_prefix: str = "s",
                  cache_messages: bool = True) -> list[ProtocolSession]:
    return [ProtocolSession(base_url, path, name=f"{name_prefix}{i}", cache_messages=cache_messages)
            for i, path in enumerate(paths)]


async def open_sessions(sessions: Sequence[ProtocolSession], *, concurrency: int = 20,
                        ready_timeout: float = 120.0) -> list[ProtocolSession]:
    """Opens the sessions, at most `concurrency` connecting at once; each waits (bounded)
    until its page is ready. A session that fails keeps its errors."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(session: ProtocolSession) -> None:
        async with gate:
            try:
                await session.open()
            except Exception:
                return
            await session.wait_ready(ready_timeout)

    await asyncio.gather(*(one(s) for s in sessions))
    return list(sessions)


async def run_sessions(base_url: str, paths: Sequence[str], *, watch_seconds: float = 0.0,
                       stop: Callable[[], bool] | None = None,
                       during: Callable[[list[ProtocolSession]], Awaitable[None]] | None = None,
                       limit: float = 300.0, concurrency: int = 20, ready_timeout: float = 120.0,
                       cache_messages: bool = True) -> list[ProtocolSession]:
    """Opens len(paths) sessions concurrently, lets them follow their pages until
    `watch_seconds` passed after all were ready, or `stop()` holds (polled), or `during(sessions)`
    returned, then closes them all; everything within `limit` seconds. Returns the sessions
    (their `stats`). Loopback only (NotLoopback before anything connects)."""
    loopback_base(base_url)
    deadline = time.monotonic() + limit
    sessions = make_sessions(base_url, paths, cache_messages=cache_messages)

    async def body() -> None:
        await open_sessions(sessions, concurrency=concurrency,
                            ready_timeout=min(ready_timeout, max(1.0, deadline - time.monotonic())))
        if during is not None:
            await during(sessions)
        until = time.monotonic() + watch_seconds
        while time.monotonic() < until and not (stop is not None and stop()):
            await asyncio.sleep(0.2)

    try:
        await asyncio.wait_for(body(), max(1.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        for session in sessions:
            session.stats.errors.append(f"run_sessions stopped at its {limit:.0f} s limit")
    finally:
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return sessions
