"""A drawing canvas for one digit, white on black, with Streamlit's own components API (v2).

Not `streamlit-drawable-canvas`: its last release imports `streamlit.elements.image.image_to_url`,
which Streamlit 1.41 moved, so it fails on our pinned Streamlit. This one is a few lines of
JavaScript served by Streamlit itself (nothing is fetched online). When a stroke ends it sends
the drawing as a PNG data URL, which the page decodes like any uploaded PNG.
"""
import base64

import streamlit as st

SIZE = 280  # pixels on screen: ten per MNIST pixel, a comfortable box for a mouse or a finger

HTML = f"""
<div class="digit-canvas">
  <canvas width="{SIZE}" height="{SIZE}" aria-label="Drawing area: draw one digit"></canvas>
  <button type="button" class="clear">Clear</button>
</div>
"""

CSS = f"""
.digit-canvas {{ display: flex; flex-direction: column; gap: 0.4rem; align-items: flex-start; }}
.digit-canvas canvas {{ width: {SIZE}px; height: {SIZE}px; background: #000; border-radius: 6px; touch-action: none; cursor: crosshair; }}
.digit-canvas button.clear {{ font: inherit; padding: 0.25rem 0.9rem; border-radius: 6px; border: 1px solid #888; background: transparent;
               color: inherit; cursor: pointer; }}
"""

JS = """
export default function(component) {
  const { parentElement, setStateValue } = component;
  const canvas = parentElement.querySelector("canvas");
  const clear = parentElement.querySelector("button.clear");
  if (canvas.dataset.ready) return;  // mounted once; reruns keep the drawing
  canvas.dataset.ready = "1";
  const context = canvas.getContext("2d");
  const blank = () => { context.fillStyle = "#000"; context.fillRect(0, 0, canvas.width, canvas.height); };
  blank();
  context.strokeStyle = "#fff";
  context.lineWidth = 22;
  context.lineCap = "round";
  context.lineJoin = "round";
  let drawing = false;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    const [x, y] = at(event);
    context.beginPath();
    context.moveTo(x, y);
    context.lineTo(x + 0.01, y);
    context.stroke();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = at(event);
    context.lineTo(x, y);
    context.stroke();
  });
  const finish = () => {
    if (!drawing) return;
    drawing = false;
    setStateValue("image", canvas.toDataURL("image/png"));
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  clear.addEventListener("click", () => { blank(); setStateValue("image", null); });
}
"""

# Not style-isolated (no shadow root), so tests and screen readers find the canvas like any
# element; the CSS is scoped by the .digit-canvas class instead.
_canvas = st.components.v2.component("autoencoder_explorer.digit_canvas", html=HTML, css=CSS, js=JS,
                                     isolate_styles=False)


def digit_canvas(key: str) -> bytes | None:
    """Draw the canvas; returns the drawing's PNG bytes once something is drawn, else None."""
    result = _canvas(key=key, on_image_change=lambda: None)
    data_url = getattr(result, "image", None)
    if not data_url or not isinstance(data_url, str) or not data_url.startswith("data:image/png;base64,"):
        return None
    try:
        return base64.b64decode(data_url.split(",", 1)[1], validate=True)
    except ValueError:
        return None
