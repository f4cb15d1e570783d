"""The live view of a big-class server: the browser polls the live feed (ae.display.feed).

Behind `ae.serve`, nginx serves the files the web process writes once per snapshot version; this
component fetches them every second and draws the progress line, the metrics, the loss chart (an
SVG) and the digits itself, so a watching session costs the web process nothing between reruns.
It asks for a rerun (a trigger) only when the shown job's state changes (the heading and the
buttons follow) or, while nothing live is shown, when a run starts; it draws that run at once,
so a room that reruns all at once still sees it move within a second.
"""
import streamlit as st

from ae.display.feed import attach_feed
from pages.session import FOLLOWED_RUN

POLL_MS = 1000

HTML = """
<div class="ae-live">
  <div class="ae-progress" hidden><div class="ae-bar"><div class="ae-fill"></div></div><div class="ae-text"></div></div>
  <div class="ae-note" hidden></div>
  <div class="ae-row" hidden>
    <div class="ae-left"><div class="ae-metrics"></div><svg class="ae-chart" viewBox="0 0 480 290" role="img"></svg></div>
    <div class="ae-right"><div class="ae-panel-title"></div><img class="ae-panel" alt="test digits and their reconstructions"><div class="ae-caption"></div></div>
  </div>
</div>
"""

CSS = """
.ae-live [hidden] { display: none !important; }
.ae-live { font-family: "Source Sans Pro", "Source Sans 3", sans-serif; color: #31333F; }
.ae-progress { margin: 0 0 0.8rem 0; }
.ae-bar { height: 0.5rem; background: #f0f2f6; border-radius: 0.25rem; overflow: hidden; }
.ae-fill { height: 100%; background: #1f77b4; width: 0; transition: width 0.4s; }
.ae-text { font-size: 0.95rem; margin-top: 0.3rem; }
.ae-note { padding: 0.8rem 1rem; border-radius: 0.5rem; margin-bottom: 0.8rem; font-size: 0.95rem; }
.ae-note.info { background: rgba(28, 131, 225, 0.1); color: #004280; }
.ae-note.error { background: rgba(255, 43, 43, 0.09); color: #7d353b; }
.ae-note.warning { background: rgba(255, 227, 18, 0.1); color: #926c05; }
.ae-row { display: flex; gap: 1.5rem; align-items: flex-start; }
.ae-left { flex: 1.35; min-width: 0; }
.ae-right { flex: 1; min-width: 0; }
.ae-metrics { display: flex; gap: 1rem; margin-bottom: 0.4rem; }
.ae-metric { flex: 1; }
.ae-metric-label { font-size: 0.875rem; color: rgba(49, 51, 63, 0.75); }
.ae-metric-value { font-size: 2.1rem; line-height: 1.2; }
.ae-chart { width: 100%; height: auto; display: block; }
.ae-chart text { font-family: inherit; fill: #31333F; }
.ae-panel-title { font-size: 1rem; margin-bottom: 0.4rem; }
.ae-panel { width: 100%; image-rendering: pixelated; display: block; }
.ae-caption { font-size: 0.875rem; color: rgba(49, 51, 63, 0.65); margin-top: 0.3rem; }
.ae-live.projector .ae-text, .ae-live.projector .ae-caption { font-size: 1.15rem; }
"""

JS = r"""
const SVG = "http://www.w3.org/2000/svg";

function niceTicks(low, high, count) {
  const span = high - low || 1;
  const raw = span / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => span / s <= count) || 10 * power;
  const ticks = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push(+t.toFixed(10));
  return ticks;
}

function el(name, attributes, parent, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  parent.appendChild(node);
  return node;
}

function drawChart(svg, chart, projector) {
  svg.replaceChildren();
  const W = 480, H = 290, left = 52, right = 8, top = 34, bottom = 40;
  const points = chart.series.flatMap((s) => s.points);
  el("text", { x: left, y: 20, "font-size": projector ? 18 : 16, "font-weight": 600 }, svg, chart.title);
  if (!points.length) return;
  const xMax = Math.max(chart.epochs, ...points.map((p) => p[0]), 0.01);
  let yMin = Math.min(...points.map((p) => p[1])), yMax = Math.max(...points.map((p) => p[1]));
  const pad = (yMax - yMin || yMax || 1) * 0.08;
  yMin -= pad; yMax += pad;
  const x = (v) => left + (v / xMax) * (W - left - right);
  const y = (v) => top + (1 - (v - yMin) / (yMax - yMin)) * (H - top - bottom);
  const font = projector ? 14 : 12.5;
  for (const t of niceTicks(yMin, yMax, 5)) {
    el("line", { x1: left, x2: W - right, y1: y(t), y2: y(t), stroke: "#e6e9ef" }, svg);
    el("text", { x: left - 6, y: y(t) + 4, "text-anchor": "end", "font-size": font }, svg, +t.toPrecision(3));
  }
  for (const t of niceTicks(0, xMax, 6)) {
    el("line", { x1: x(t), x2: x(t), y1: top, y2: H - bottom, stroke: "#f0f2f6" }, svg);
    el("text", { x: x(t), y: H - bottom + 18, "text-anchor": "middle", "font-size": font }, svg, +t.toPrecision(3));
  }
  el("text", { x: (left + W - right) / 2, y: H - 6, "text-anchor": "middle", "font-size": font }, svg, "epoch");
  el("text", { x: 12, y: (top + H - bottom) / 2, "text-anchor": "middle", "font-size": font,
               transform: `rotate(-90 12 ${(top + H - bottom) / 2})` }, svg, "loss");
  for (const s of chart.series) {
    const path = s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    el("polyline", { points: path, fill: "none", stroke: s.colour, "stroke-width": s.width || 2,
                     "stroke-dasharray": s.dash ? "4 3" : "none" }, svg);
    if (s.markers) for (const p of s.points) el("circle", { cx: x(p[0]), cy: y(p[1]), r: 4.5, fill: s.colour }, svg);
  }
  const legend = el("g", {}, svg);
  const lineHeight = projector ? 19 : 17, width = projector ? 200 : 172;
  const lx = W - right - width - 4, ly = top + 4;
  el("rect", { x: lx, y: ly, width: width, height: chart.series.length * lineHeight + 8, fill: "rgba(255,255,255,0.85)" }, legend);
  chart.series.forEach((s, i) => {
    const cy = ly + 13 + i * lineHeight;
    el("line", { x1: lx + 8, x2: lx + 30, y1: cy, y2: cy, stroke: s.colour, "stroke-width": 3,
                 "stroke-dasharray": s.dash ? "4 3" : "none" }, legend);
    el("text", { x: lx + 36, y: cy + 4, "font-size": font }, legend, s.name);
  });
}

function draw(root, doc, data) {
  const q = (selector) => root.querySelector(selector);
  q(".ae-progress").hidden = false;
  q(".ae-fill").style.width = `${Math.round(doc.progress * 100)}%`;
  q(".ae-text").textContent = doc.text;
  const note = q(".ae-note");
  const message = doc.error ? ["error", `Training failed: ${doc.error}`] : doc.warning ? ["warning", doc.warning]
    : doc.queue_note ? ["info", doc.queue_note] : null;
  note.hidden = !message;
  if (message) { note.className = `ae-note ${message[0]}`; note.textContent = message[1]; }
  const hasCurve = doc.chart.series.some((s) => s.points.length);
  q(".ae-row").hidden = doc.state === "queued" || !hasCurve;
  if (q(".ae-row").hidden) return;
  q(".ae-metrics").replaceChildren(...doc.metrics.map(([label, value]) => {
    const box = document.createElement("div");
    box.className = "ae-metric";
    box.innerHTML = `<div class="ae-metric-label"></div><div class="ae-metric-value"></div>`;
    box.children[0].textContent = label;
    box.children[1].textContent = value;
    return box;
  }));
  drawChart(q(".ae-chart"), doc.chart, data.projector);
  q(".ae-panel-title").innerHTML = doc.denoising ? "<b>Noisy input</b>, its <b>reconstruction</b>, and the <b>clean digit</b>"
    : "<b>16 test digits</b> over their <b>reconstructions</b>";
  if (doc.panel) {
    const source = data.feed + doc.panel.file;
    if (q(".ae-panel").getAttribute("src") !== source) q(".ae-panel").setAttribute("src", source);
    q(".ae-caption").textContent = doc.panel.caption;
  } else {
    q(".ae-caption").textContent = "Reconstructions appear once training starts.";
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".ae-live");
  root.classList.toggle("projector", !!data.projector);
  if (root.aeTimer) clearInterval(root.aeTimer);
  const token = (root.aeToken = (root.aeToken || 0) + 1);  // a poll still in flight from before draws nothing
  const current = () => root.aeToken === token;
  let lastVersion = null, asked = false;
  let job = data.job, live = !!(data.job && data.live);
  if (!live) for (const part of root.children) part.hidden = true;  // the page draws a finished job itself
  // One rerun for the heading and buttons; the view itself keeps moving meanwhile.
  const ask = (value) => { if (!asked) { asked = true; setTriggerValue("changed", value); } };
  async function tick() {
    try {
      if (live) {
        const answer = await fetch(`${data.feed}${job}.json`, { cache: "no-cache" });
        if (!answer.ok) return;
        const doc = await answer.json();
        if (!current()) return;
        if (doc.version !== lastVersion) { lastVersion = doc.version; draw(root, doc, data); }
        if (doc.state !== data.drawn_state) ask(`state:${doc.state}`);
      } else {
        const answer = await fetch(`${data.feed}room.json`, { cache: "no-cache" });
        if (!answer.ok) return;
        const room = await answer.json();
        if (!current()) return;
        if (room.running && room.running !== data.job && room.running !== data.running) {
          ask(`run:${room.running}`);
          job = room.running;  // a run started: show it now, before the page's rerun comes back
          live = true;
          tick();
        }
      }
    } catch (error) {
      /* a missed poll: the next one tries again */
    }
  }
  root.aeTimer = setInterval(tick, data.every_ms);
  tick();
  return () => clearInterval(root.aeTimer);
}
"""

LIVE_FEED = st.components.v2.component("ae_live_feed", html=HTML, css=CSS, js=JS)


def live_feed_view(manager, job, snapshot, feed: tuple, projector: bool) -> None:
    """The shown job, drawn by the browser from the feed while it is active; or, while nothing
    live is shown, a watcher (drawing nothing) that reruns the page when a run starts.
    `snapshot` is the one the page's heading was drawn from: a state change since reruns it."""
    folder, url = feed
    attach_feed(manager, folder)
    running = manager.running()
    result = LIVE_FEED(key="live_feed", on_changed_change=lambda: None, data={
        "feed": url, "job": job.key if job is not None else None, "live": bool(snapshot and snapshot.is_active),
        "drawn_state": snapshot.state.value if snapshot is not None else None,
        "running": running.key if running is not None else None, "every_ms": POLL_MS, "projector": projector,
    })
    changed = getattr(result, "changed", None)
    if isinstance(changed, str) and changed.startswith("run:") and manager.get(changed[4:]) is not None:
        st.session_state[FOLLOWED_RUN] = changed[4:]  # a run started while this session watched nothing live
        st.rerun()
