// Just enough SVG to draw lines, areas and axes; no charting library.

const NS = "http://www.w3.org/2000/svg";

export function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

export function clear(svg) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
}

export function scale(d0, d1, r0, r1) {
  const f = (v) => r0 + ((v - d0) / (d1 - d0 || 1)) * (r1 - r0);
  f.domain = [d0, d1];
  return f;
}

export function path(xs, ys) {
  return xs.map((x, i) => `${i ? "L" : "M"}${x.toFixed(2)},${ys[i].toFixed(2)}`).join("");
}

export function text(parent, x, y, content, cls = "label", anchor = "middle") {
  const t = el("text", { x, y, class: cls, "text-anchor": anchor }, parent);
  t.textContent = content;
  return t;
}

// A line of values 0..n-1 scaled into a w x h box (gallery previews).
export function sparkline(values, w, h, lo, hi) {
  const svg = el("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, "aria-hidden": "true" });
  const x = scale(0, values.length - 1, 1, w - 1), y = scale(lo, hi, h - 1, 1);
  el("path", { d: path(values.map((_, i) => x(i)), values.map(y)), class: "spark" }, svg);
  return svg;
}
