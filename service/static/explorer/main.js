// The explorer page: gallery of test beats, one beat scored by POST /predict, the
// threshold explorer, a drawing pad and the model card. Data comes only from this origin.

import { auc, histogram, metricsAt, rocCurve } from "./metrics.js";
import { BeatPad, LENGTH } from "./draw.js";
import { clear, el, path, scale, sparkline, text } from "./svg.js";

const $ = (id) => document.getElementById(id);
const MODEL = document.querySelector('meta[name="ecg-model"]').content;
const fmt = (v, d = 4) => (Number.isFinite(v) ? v.toFixed(d) : String(v));
const sci = (v) => (Number.isFinite(v) ? v.toPrecision(4) : String(v));

const state = {
  split: null,       // GET /v1/models/<name>/test-split
  beats: [],         // flat list of test beats: {row, class, mse, values, abnormal}
  scores: [], labels: [],
  threshold: null,   // the chosen one
  modelThreshold: null,
  logLo: -5, logHi: 0,
  selected: null,    // the beat shown: {values, source, cls, row}
  roc: null,
};

function status(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

// With API keys on (README, Security), the page asks for a key once per tab and sends it
// with every request it makes; the key never leaves this tab's sessionStorage.
const KEY_STORE = "ecg-api-key";

class Unauthorized extends Error {}

function askForKey(code) {
  const had = sessionStorage.getItem(KEY_STORE) !== null;
  $("key-message").textContent = had && code === "invalid_api_key"
    ? "This server refused that API key; enter another."
    : "This server needs an API key.";
  $("key-form").hidden = false;
  $("key-input").focus();
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("key-input").value.trim());
  location.reload();
});

async function getJson(url, init = {}) {
  const key = sessionStorage.getItem(KEY_STORE);
  const headers = { ...(init.headers || {}), ...(key ? { Authorization: `Bearer ${key}` } : {}) };
  const response = await fetch(url, { ...init, headers });
  const body = await response.json();
  if (response.status === 401) {
    const code = (body.error && body.error.code) || body.code;
    askForKey(code);
    throw new Unauthorized(`401 ${code}: an API key is needed`);
  }
  if (!response.ok) {
    const err = body.error || {};
    throw new Error(`${response.status} ${err.code || ""}: ${err.message || JSON.stringify(body)}`);
  }
  return body;
}

// --- scoring one beat -------------------------------------------------------------------

function requestBody(values, withReconstruction) {
  const body = { beats: [values] };
  if (state.threshold !== null && state.threshold !== state.modelThreshold) body.threshold = state.threshold;
  if (withReconstruction) body.return_reconstruction = true;
  return body;
}

let scoreSeq = 0;
async function scoreBeat(beat) {
  state.selected = beat;
  const seq = ++scoreSeq;
  const result = await getJson("/predict", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(requestBody(beat.values, true)),
  });
  if (seq !== scoreSeq) return null; // a newer beat was chosen meanwhile
  drawBeat(beat, result);
  renderRequest();
  return result;
}

function drawBeat(beat, result) {
  const p = result.predictions[0];
  const svg = $("beat-plot");
  clear(svg);
  const W = 640, H = 280, m = { l: 44, r: 10, t: 10, b: 26 };
  const all = beat.values.concat(p.reconstruction);
  const lo = Math.min(...all), hi = Math.max(...all);
  const x = scale(0, LENGTH - 1, m.l, W - m.r), y = scale(lo, hi, H - m.b, m.t);
  const xs = beat.values.map((_, i) => x(i));
  const maxErr = Math.max(...p.point_errors) || 1;
  const g = el("g", { class: p.is_anomaly ? "err flagged" : "err passed" }, svg);
  for (let i = 0; i < LENGTH - 1; i++) {
    const pts = [[xs[i], y(beat.values[i])], [xs[i + 1], y(beat.values[i + 1])],
      [xs[i + 1], y(p.reconstruction[i + 1])], [xs[i], y(p.reconstruction[i])]];
    const share = (p.point_errors[i] + p.point_errors[i + 1]) / 2 / maxErr;
    el("polygon", { points: pts.map((q) => q.join(",")).join(" "), "fill-opacity": (0.15 + 0.75 * share).toFixed(3) }, g);
  }
  axes(svg, x, y, W, H, m, "sample", "raw ECG units");
  el("path", { d: path(xs, beat.values.map(y)), class: "line input" }, svg);
  el("path", { d: path(xs, p.reconstruction.map(y)), class: "line recon" }, svg);

  const verdict = p.is_anomaly ? "abnormal (flagged)" : "normal (not flagged)";
  const cls = beat.cls ? `class ${beat.cls}, ${state.split.classes[beat.cls - 1].name}` : "unknown (drawn)";
  $("beat-caption").textContent = beat.source === "drawn"
    ? "A drawn beat: input and its reconstruction."
    : `Test beat at pool row ${beat.row}: input and its reconstruction.`;
  facts($("verdict"), [
    ["verdict", verdict, "verdict-value"],
    ["MSE", `${sci(p.mse)} ${p.mse > result.threshold ? ">" : "≤"} threshold ${sci(result.threshold)}`, "mse-value"],
    ["out of range", p.out_of_range ? "yes: outside the training data's range" : "no", "oor-value"],
    ["true class", cls, "class-value"],
  ]);
  $("verdict").dataset.isAnomaly = String(p.is_anomaly);
  $("verdict").dataset.mse = String(p.mse);
}

function facts(dl, rows) {
  dl.replaceChildren();
  for (const [k, v, id] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    if (id) dd.id = id;
    dl.append(dt, dd);
  }
}

function axes(svg, x, y, W, H, m, xLabel, yLabel, yTicks = 5, xTicks = 7, xFmt = (v) => v.toFixed(0)) {
  const g = el("g", { class: "axis" }, svg);
  el("line", { x1: m.l, y1: H - m.b, x2: W - m.r, y2: H - m.b }, g);
  el("line", { x1: m.l, y1: m.t, x2: m.l, y2: H - m.b }, g);
  const [y0, y1] = y.domain, [x0, x1] = x.domain;
  for (let k = 0; k <= yTicks; k++) {
    const v = y0 + ((y1 - y0) * k) / yTicks;
    text(g, m.l - 4, y(v) + 3, v.toFixed(Math.abs(y1 - y0) < 5 ? 2 : 1), "tick", "end");
  }
  for (let k = 0; k <= xTicks; k++) {
    const v = x0 + ((x1 - x0) * k) / xTicks;
    text(g, x(v), H - m.b + 12, xFmt(v), "tick");
  }
  text(g, (m.l + W - m.r) / 2, H - 2, xLabel, "label");
  const t = text(g, 10, (m.t + H - m.b) / 2, yLabel, "label");
  t.setAttribute("transform", `rotate(-90 10 ${(m.t + H - m.b) / 2})`);
}

// --- gallery ------------------------------------------------------------------------------

function renderGallery() {
  const cls = $("class-filter").value, verdict = $("verdict-filter").value;
  const gallery = $("gallery");
  gallery.replaceChildren();
  const { data_min: lo, data_max: hi } = state.split.scaler;
  let shown = 0;
  for (const group of state.split.classes) {
    if (cls !== "all" && String(group.class) !== cls) continue;
    const beats = group.beats.filter((b) => {
      const flagged = b.mse > state.threshold;
      if (verdict === "flagged") return flagged;
      if (verdict === "passed") return !flagged;
      if (verdict === "wrong") return flagged !== group.abnormal;
      return true;
    });
    const section = document.createElement("section");
    section.className = "class-group";
    const h = document.createElement("h3");
    h.textContent = `Class ${group.class}: ${group.name} (${beats.length} of ${group.beats.length})`;
    const list = document.createElement("ul");
    list.className = "beats";
    list.setAttribute("aria-label", `Class ${group.class} beats`);
    for (const b of beats) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.tabIndex = -1;
      button.className = b.mse > state.threshold ? "beat flagged" : "beat passed";
      button.dataset.row = b.row;
      button.dataset.mse = String(b.mse);
      button.dataset.cls = group.class;
      button.setAttribute("aria-label", `Row ${b.row}, class ${group.class}, MSE ${sci(b.mse)}`);
      button.title = `row ${b.row}, MSE ${sci(b.mse)}`;
      button.append(sparkline(b.values, 72, 32, lo, hi));
      button.addEventListener("click", () => select({ values: b.values, cls: group.class, row: b.row, source: "test" }));
      li.append(button);
      list.append(li);
    }
    section.append(h, list);
    gallery.append(section);
    shown += beats.length;
  }
  $("gallery-count").textContent = `${shown} beats shown`;
  const first = gallery.querySelector("button.beat");
  if (first) first.tabIndex = 0; // one tab stop for the whole gallery; arrows move inside it
}

// Roving focus: Tab enters and leaves the gallery in one step; arrow keys, Home and End
// move between beats (up and down by a row), Enter or Space chooses one.
function galleryKeys(e) {
  const buttons = [...$("gallery").querySelectorAll("button.beat")];
  const at = buttons.indexOf(document.activeElement);
  if (at < 0) return;
  const perRow = Math.max(1, Math.round($("gallery").clientWidth / (buttons[0].offsetWidth + 4)));
  const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: perRow, ArrowUp: -perRow, Home: -at, End: buttons.length };
  if (!(e.key in moves)) return;
  e.preventDefault();
  const to = Math.min(buttons.length - 1, Math.max(0, at + moves[e.key]));
  buttons[at].tabIndex = -1;
  buttons[to].tabIndex = 0;
  buttons[to].focus();
}

async function select(beat) {
  try {
    await scoreBeat(beat);
  } catch (e) {
    status(`Scoring failed: ${e.message}`, true);
  }
}

// --- threshold explorer ----------------------------------------------------------------------

const METRICS = ["precision", "recall", "f1", "fpr", "fnr", "accuracy"];

function sliderToThreshold(v) {
  return 10 ** (state.logLo + ((state.logHi - state.logLo) * v) / 1000);
}
function thresholdToSlider(t) {
  return Math.round(((Math.log10(t) - state.logLo) / (state.logHi - state.logLo)) * 1000);
}

function setThreshold(t, from) {
  if (!(Number.isFinite(t) && t > 0)) {
    $("threshold-error").textContent = "The threshold must be a number greater than 0.";
    return;
  }
  $("threshold-error").textContent = "";
  state.threshold = t;
  if (from !== "slider") $("threshold-slider").value = String(thresholdToSlider(t));
  if (from !== "number") $("threshold-number").value = String(t);
  $("threshold-slider").setAttribute("aria-valuetext", sci(t));
  renderThreshold();
  if ($("verdict-filter").value === "all") recolourGallery(); // same beats, new borders
  else renderGallery();
}

function recolourGallery() {
  for (const button of $("gallery").querySelectorAll("button.beat")) {
    const flagged = Number(button.dataset.mse) > state.threshold;
    button.classList.toggle("flagged", flagged);
    button.classList.toggle("passed", !flagged);
  }
}

function renderThreshold() {
  const chosen = metricsAt(state.scores, state.labels, state.threshold);
  const model = metricsAt(state.scores, state.labels, state.modelThreshold);
  const tbody = $("metrics-table").tBodies[0];
  tbody.replaceChildren();
  for (const name of METRICS) {
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.scope = "row"; th.textContent = name;
    const a = document.createElement("td"); a.textContent = fmt(chosen[name]); a.id = `metric-${name}`;
    a.dataset.value = String(chosen[name]);
    const b = document.createElement("td"); b.textContent = fmt(model[name]);
    tr.append(th, a, b);
    tbody.append(tr);
  }
  for (const k of ["tp", "fp", "tn", "fn"]) $(`cm-${k}`).textContent = String(chosen.confusion[k]);
  drawHistogram();
  drawRoc(chosen);
  renderRequest();
}

function drawHistogram() {
  const svg = $("histogram");
  clear(svg);
  const W = 480, H = 240, m = { l: 40, r: 10, t: 10, b: 30 }, bins = 60;
  const h = histogram(state.scores, state.labels, state.logLo, state.logHi, bins);
  const top = Math.max(...h.normal, ...h.abnormal, 1);
  const x = scale(state.logLo, state.logHi, m.l, W - m.r), y = scale(0, top, H - m.b, m.t);
  for (const [counts, cls] of [[h.normal, "bar normal"], [h.abnormal, "bar abnormal"]]) {
    counts.forEach((c, b) => {
      if (!c) return;
      const x0 = x(h.lo + b * h.width);
      el("rect", { x: x0, y: y(c), width: Math.max(1, x(h.lo + (b + 1) * h.width) - x0 - 0.5), height: y(0) - y(c), class: cls }, svg);
    });
  }
  axes(svg, x, y, W, H, m, "log10 MSE", "beats", 4, 5, (v) => v.toFixed(1));
  const mt = x(Math.log10(state.modelThreshold)), ct = x(Math.log10(state.threshold));
  el("line", { x1: mt, x2: mt, y1: m.t, y2: H - m.b, class: "model-threshold" }, svg);
  el("line", { x1: ct, x2: ct, y1: m.t, y2: H - m.b, class: "threshold", id: "histogram-threshold" }, svg);
}

function drawRoc(chosen) {
  const svg = $("roc");
  clear(svg);
  const S = 260, m = { l: 36, r: 8, t: 8, b: 30 };
  const x = scale(0, 1, m.l, S - m.r), y = scale(0, 1, S - m.b, m.t);
  axes(svg, x, y, S, S, m, "false positive rate", "true positive rate", 4, 4, (v) => v.toFixed(2));
  el("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(1), class: "chance" }, svg);
  el("path", { d: path(state.roc.map((p) => x(p.fpr)), state.roc.map((p) => y(p.tpr))), class: "line roc" }, svg);
  const model = metricsAt(state.scores, state.labels, state.modelThreshold);
  el("circle", { cx: x(model.fpr), cy: y(model.recall), r: 5, class: "model-point" }, svg);
  el("circle", { cx: x(chosen.fpr), cy: y(chosen.recall), r: 4, class: "point", id: "roc-point" }, svg);
  $("roc-caption").textContent = `ROC curve, AUC ${fmt(auc(state.roc))}; filled dot: chosen threshold (FPR ${fmt(chosen.fpr, 3)}, TPR ${fmt(chosen.recall, 3)}), ring: the model's`;
}

function renderRequest() {
  const values = state.selected ? state.selected.values : state.beats.length ? state.beats[0].values : new Array(LENGTH).fill(0);
  const body = { beats: [values.map((v) => Number(v))] };
  if (state.threshold !== null) body.threshold = state.threshold;
  $("request-body").textContent = `POST /predict\nContent-Type: application/json\n\n${JSON.stringify(body)}`;
  $("request-body").dataset.body = JSON.stringify(body);
}

async function copyRequest() {
  const body = $("request-body").dataset.body || "";
  try {
    await navigator.clipboard.writeText(body);
    $("copy-status").textContent = "Copied the JSON body.";
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("request-body"));
    const sel = window.getSelection();
    sel.removeAllRanges(); sel.addRange(range);
    $("copy-status").textContent = "Selected: press Ctrl+C (the clipboard is not available here).";
  }
}

// --- model card ---------------------------------------------------------------------------

function renderCard(meta) {
  const m = meta.metrics, c = m.confusion_matrix, t = meta.threshold, cfg = meta.training_config || {};
  facts($("card"), [
    ["model", `${meta.model_name} version ${meta.version}`],
    ["created", meta.created_at],
    ["architecture", `dense autoencoder ${JSON.stringify(cfg.hidden_layers ?? "?")}, latent ${cfg.latent_size ?? "?"}, ${cfg.activation ?? ""}`],
    ["trained on", `normal beats of the training split (${meta.split.train_indices.length} rows of ${meta.split.pool_size}); abnormal share ${meta.split.abnormal_fraction_in_training}`],
    ["scaler", `${meta.scaler.kind} [${meta.scaler.data_min.toFixed(3)}, ${meta.scaler.data_max.toFixed(3)}], fitted on ${meta.scaler.fitted_on}`],
    ["threshold", `${sci(t.value)} (${t.strategy}${t.parameter !== null ? " " + t.parameter : ""}, chosen on ${t.chosen_on})`],
    ["test split", `${m.n_test} beats, ${m.n_abnormal} abnormal`],
    ["ROC AUC, average precision", `${fmt(m.roc_auc)}, ${fmt(m.average_precision)}`],
    ["precision, recall, F1", `${fmt(m.precision)}, ${fmt(m.recall)}, ${fmt(m.f1)}`],
    ["confusion (tp fp tn fn)", `${c.tp} ${c.fp} ${c.tn} ${c.fn}`],
    ["recall by class", Object.entries(m.recall_by_class).map(([k, v]) => `${k}: ${fmt(v, 3)}`).join(", ")],
    ["data", Object.entries(meta.data_sha256).map(([k, v]) => `${k} sha256 ${v.slice(0, 12)}…`).join("; ")],
    ["libraries", Object.entries(meta.versions || {}).map(([k, v]) => `${k} ${v}`).join(", ")],
  ]);
}

// --- start ----------------------------------------------------------------------------------

async function start() {
  const scaler = { low: -7, high: 8 };
  try {
    const meta = await getJson(`/v1/models/${encodeURIComponent(MODEL)}/metadata`);
    renderCard(meta);
    state.modelThreshold = meta.threshold.value;
    state.threshold = meta.threshold.value;
    scaler.low = meta.scaler.data_min; scaler.high = meta.scaler.data_max;
  } catch (e) {
    status(e instanceof Unauthorized ? "Enter an API key to use the explorer." : `Model metadata unavailable: ${e.message}`, true);
    return;
  }
  const pad = new BeatPad($("pad"), scaler.low, scaler.high, (values) => {
    if (!values) { $("draw-result").textContent = ""; return; }
    scheduleDrawn(values);
  });
  $("clear-pad").addEventListener("click", () => pad.clear());
  $("copy-request").addEventListener("click", copyRequest);
  renderRequest();
  try {
    state.split = await getJson(`/v1/models/${encodeURIComponent(MODEL)}/test-split`);
  } catch (e) {
    status(`The test split is not available on this server (${e.message}); drawing still works.`, true);
    $("gallery-section").hidden = true;
    $("threshold-section").hidden = true;
    return;
  }
  for (const group of state.split.classes) {
    const option = document.createElement("option");
    option.value = String(group.class);
    option.textContent = `${group.class}: ${group.name} (${group.beats.length})`;
    $("class-filter").append(option);
    for (const b of group.beats) state.beats.push({ ...b, cls: group.class, abnormal: group.abnormal });
  }
  state.scores = state.beats.map((b) => b.mse);
  state.labels = state.beats.map((b) => (b.abnormal ? 1 : 0));
  state.roc = rocCurve(state.scores, state.labels);
  const logs = state.scores.map(Math.log10);
  state.logLo = Math.floor(Math.min(...logs) * 10) / 10;
  state.logHi = Math.ceil(Math.max(...logs) * 10) / 10;
  $("class-filter").addEventListener("change", renderGallery);
  $("gallery").addEventListener("keydown", galleryKeys);
  $("verdict-filter").addEventListener("change", renderGallery);
  $("threshold-slider").addEventListener("input", (e) => setThreshold(sliderToThreshold(Number(e.target.value)), "slider"));
  $("threshold-number").addEventListener("change", (e) => setThreshold(Number(e.target.value), "number"));
  $("threshold-reset").addEventListener("click", () => setThreshold(state.modelThreshold, "reset"));
  renderGallery();
  setThreshold(state.modelThreshold, "start");
  status(`${state.split.n} test beats of ${state.split.model_name} version ${state.split.model_version}, scored in ${(state.split.scored_in_seconds * 1000).toFixed(0)} ms on the server.`);
  document.body.dataset.ready = "true";
}

let drawTimer = null;
function scheduleDrawn(values) {
  clearTimeout(drawTimer);
  drawTimer = setTimeout(async () => {
    try {
      const result = await scoreBeat({ values, source: "drawn", cls: null, row: null });
      if (result) {
        const p = result.predictions[0];
        $("draw-result").textContent = `Drawn beat: MSE ${sci(p.mse)}, ${p.is_anomaly ? "flagged abnormal" : "not flagged"}.`;
        $("draw-result").dataset.mse = String(p.mse);
      }
    } catch (e) {
      $("draw-result").textContent = `Scoring failed: ${e.message}`;
    }
  }, 120);
}

start().finally(() => { document.body.dataset.started = "true"; });
