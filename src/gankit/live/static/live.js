// gankit live page: draws the frames the trainer publishes and sends the controls back.
// Plain canvas drawing, no libraries: everything ships inside the package.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { frame: null, ws: null, drawing: false, drawn: [], dSeries: [], metricSeries: {},
                records: [] };
const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
                 [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
const COLORS = ["#3182ce", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096"];

function viridis(t) {
  t = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i;
  return VIRIDIS[i].map((c, j) => Math.round(c + f * (VIRIDIS[i + 1][j] - c)));
}

function hue(i, n) { return `hsl(${Math.round(300 * i / Math.max(1, n - 1))}, 70%, 45%)`; }

// ---- connection -------------------------------------------------------------------------
function connect() {
  const url = new URL("ws", window.location.href);
  url.protocol = "ws:";
  const ws = new WebSocket(url.href);
  state.ws = ws;
  ws.onopen = () => { setStatus("live", "live"); };
  ws.onclose = () => { setStatus("closed (training ended or stopped)", "closed"); };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "frame") { onFrame(msg); } else if (msg.type === "error") { say(msg.message); }
  };
}

function send(cmd) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) { state.ws.send(JSON.stringify(cmd)); }
}

function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = "status " + cls; }
function say(text) { $("message").textContent = text; }

// ---- frames -----------------------------------------------------------------------------
function onFrame(f) {
  const first = state.frame === null;
  state.frame = f;
  $("step").textContent = f.step;
  $("steps").textContent = f.steps;
  $("dcount").textContent = f.updates.D ?? 0;
  $("gcount").textContent = f.updates.G ?? 0;
  $("objname").textContent = f.objective;
  $("play").textContent = f.paused ? "play" : "pause";
  syncControls(f, first);
  const image = f.kind === "image";
  document.querySelectorAll(".toy-only").forEach((e) => e.classList.toggle("hidden", image));
  document.querySelectorAll(".image-only").forEach((e) => e.classList.toggle("hidden", !image));
  $("legend").classList.toggle("hidden", f.kind !== "toy2d");
  if (f.kind === "toy2d") { drawPlane(f); drawLatent(f); }
  else if (f.kind === "toy1d") { drawLine(f); drawMapping(f); }
  else if (f.image) { $("samples").src = f.image; }
  if (f.d_real !== undefined) {
    const u = Object.values(f.updates).reduce((a, b) => a + b, 0);
    pushSeries(state.dSeries, [u, f.d_real, f.d_fake]);
    $("dCaption").textContent = `mean ${f.critic_label} on data (blue) and on fakes (orange), over updates`;
  }
  if (f.metrics) {
    for (const [k, v] of Object.entries(f.metrics)) {
      pushSeries(state.metricSeries[k] = state.metricSeries[k] || [], [f.step, v]);
    }
  }
  drawCharts();
}

function pushSeries(arr, pt) {
  if (arr.length && arr[arr.length - 1][0] === pt[0]) { arr[arr.length - 1] = pt; } else { arr.push(pt); }
  if (arr.length > 2000) { arr.splice(0, arr.length - 2000); }
}

function syncControls(f, first) {
  const sel = $("objective");
  if (sel.options.length !== f.objectives.length) {
    sel.innerHTML = "";
    for (const name of f.objectives) { sel.add(new Option(name, name)); }
  }
  if (document.activeElement !== sel) { sel.value = f.objective; }
  if (document.activeElement !== $("k")) { $("k").value = f.k; }
  if (first || document.activeElement !== $("slow")) { $("slow").value = String(f.slow); }
  const lrs = $("lrs");
  if (lrs.dataset.phases !== f.phases.join(",")) {
    lrs.dataset.phases = f.phases.join(",");
    lrs.innerHTML = "";
    for (const p of f.phases) {
      const label = document.createElement("label");
      label.textContent = `lr ${p} `;
      const input = document.createElement("input");
      Object.assign(input, { type: "number", id: "lr" + p, step: "any", min: "0" });
      input.addEventListener("change", () => send({ cmd: "lr", phase: p, value: Number(input.value) }));
      label.appendChild(input);
      lrs.appendChild(label);
    }
  }
  for (const p of f.phases) {
    const input = $("lr" + p);
    if (input && document.activeElement !== input) { input.value = f.lr[p]; }
  }
  $("stepD").disabled = !f.phases.includes("D");
  $("stepG").disabled = !f.phases.includes("G");
}

// ---- the 2-D plane ----------------------------------------------------------------------
function planeTransform(f, canvas) {
  const [lo, hi] = f.lims, w = canvas.width, h = canvas.height;
  return { x: (v) => (v - lo) / (hi - lo) * w, y: (v) => h - (v - lo) / (hi - lo) * h,
           inv: (px, py) => [lo + px / w * (hi - lo), lo + (h - py) / h * (hi - lo)], lo, hi };
}

function drawHeat(ctx, values, n, probability, w, h) {
  let lo = 0, hi = 1;
  if (!probability) {
    const finite = values.filter((v) => v !== null);
    lo = Math.min(...finite); hi = Math.max(...finite);
    if (hi - lo < 1e-9) { hi = lo + 1; }
  }
  const off = document.createElement("canvas");
  off.width = n; off.height = n;
  const octx = off.getContext("2d"), img = octx.createImageData(n, n);
  for (let r = 0; r < n; r++) {          // row r of the values is the r-th lowest y
    for (let c = 0; c < n; c++) {
      const v = values[r * n + c], [R, G, B] = viridis(v === null ? 0 : (v - lo) / (hi - lo));
      const k = ((n - 1 - r) * n + c) * 4;
      img.data[k] = R; img.data[k + 1] = G; img.data[k + 2] = B; img.data[k + 3] = 255;
    }
  }
  octx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, w, h);
  return [lo, hi];
}

function drawPlane(f) {
  const canvas = $("plane"), ctx = canvas.getContext("2d"), t = planeTransform(f, canvas);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  let caption = `step ${f.step}: samples over the data`;
  if (f.heat) {
    const [lo, hi] = drawHeat(ctx, f.heat, f.heat_n, f.probability, canvas.width, canvas.height);
    caption += `; background: ${f.critic_label} from ${lo.toFixed(2)} (dark) to ${hi.toFixed(2)} (yellow)`;
  }
  if (f.latent && f.latent.dims === 2) { drawWarpedGrid(ctx, f.latent, t); }
  dots(ctx, f.real, t, "rgba(49,130,206,0.75)", 2);
  dots(ctx, f.fake, t, "rgba(221,107,32,0.9)", 2.5);
  if (f.arrows) { drawArrows(ctx, f.fake, f.arrows, t); }
  for (const p of state.drawn) { cross(ctx, t.x(p[0]), t.y(p[1] ?? 0)); }
  $("planeCaption").textContent = caption;
}

function dots(ctx, pts, t, color, r) {
  ctx.fillStyle = color;
  for (const p of pts) {
    if (p[0] === null || p[1] === null) { continue; }
    ctx.beginPath(); ctx.arc(t.x(p[0]), t.y(p[1]), r, 0, 2 * Math.PI); ctx.fill();
  }
}

function cross(ctx, x, y) {
  ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.beginPath();
  ctx.moveTo(x - 5, y - 5); ctx.lineTo(x + 5, y + 5); ctx.moveTo(x + 5, y - 5); ctx.lineTo(x - 5, y + 5);
  ctx.stroke();
}

function drawArrows(ctx, pts, vecs, t) {
  let max = 1e-12;
  for (const v of vecs) { if (v[0] !== null) { max = Math.max(max, Math.hypot(v[0], v[1])); } }
  const scale = 0.08 * (t.hi - t.lo) / max;
  ctx.strokeStyle = "rgba(197,48,48,0.8)"; ctx.lineWidth = 1;
  ctx.beginPath();
  pts.forEach((p, i) => {
    const v = vecs[i];
    if (!v || v[0] === null || p[0] === null) { return; }
    ctx.moveTo(t.x(p[0]), t.y(p[1]));
    ctx.lineTo(t.x(p[0] + scale * v[0]), t.y(p[1] + scale * v[1]));
  });
  ctx.stroke();
}

function gridLines(latent) {
  // rows (constant z_2) and columns (constant z_1) of the k x k grid, as index lists
  const k = latent.k, lines = [];
  for (let r = 0; r < k; r++) { lines.push([...Array(k).keys()].map((c) => r * k + c)); }
  for (let c = 0; c < k; c++) { lines.push([...Array(k).keys()].map((r) => r * k + c)); }
  return lines;
}

function drawWarpedGrid(ctx, latent, t) {
  const lines = gridLines(latent);
  ctx.lineWidth = 1;
  lines.forEach((idx, i) => {
    ctx.strokeStyle = hue(i % latent.k, latent.k); ctx.globalAlpha = 0.55; ctx.beginPath();
    idx.forEach((j, n) => {
      const p = latent.points[j];
      if (p[0] === null) { return; }
      if (n === 0) { ctx.moveTo(t.x(p[0]), t.y(p[1])); } else { ctx.lineTo(t.x(p[0]), t.y(p[1])); }
    });
    ctx.stroke();
  });
  ctx.globalAlpha = 1;
}

function drawLatent(f) {
  const canvas = $("latent"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!f.latent) { $("latentCaption").textContent = "this model has no latent z"; return; }
  const L = f.latent, s = L.span, w = canvas.width;
  const t = { x: (v) => (v + s) / (2 * s) * w, y: (v) => w - (v + s) / (2 * s) * w };
  if (L.dims === 2) {
    const ticks = [...Array(L.k).keys()].map((i) => -s + 2 * s * i / (L.k - 1));
    const square = { k: L.k, points: ticks.flatMap((y) => ticks.map((x) => [x, y])) };
    drawWarpedGrid(ctx, square, t);
    $("latentCaption").textContent = `the latent grid z_1, z_2 in [-${s}, ${s}] (other z at 0); ` +
      "the same lines, bent by G, are drawn over the data";
  } else {
    ctx.strokeStyle = "#555"; ctx.beginPath(); ctx.moveTo(0, w / 2); ctx.lineTo(w, w / 2); ctx.stroke();
    $("latentCaption").textContent = "1-D latent: G(z) for z along the line is drawn over the data";
    const pt = $("plane").getContext("2d"), tp = planeTransform(f, $("plane"));
    pt.strokeStyle = "#2d3748"; pt.beginPath();
    L.points.forEach((p, n) => { if (n === 0) { pt.moveTo(tp.x(p[0]), tp.y(p[1])); } else { pt.lineTo(tp.x(p[0]), tp.y(p[1])); } });
    pt.stroke();
  }
}

// ---- the 1-D picture --------------------------------------------------------------------
function drawLine(f) {
  const canvas = $("plane"), ctx = canvas.getContext("2d"), d = f.density;
  const w = canvas.width, h = canvas.height, xs = d.xs, lo = xs[0], hi = xs[xs.length - 1];
  ctx.clearRect(0, 0, w, h);
  const X = (v) => (v - lo) / (hi - lo) * w;
  let top = 1.25 * Math.max(...d.pdf);
  if (d.dens) { top = Math.max(top, Math.min(1.1 * Math.max(...d.dens), 3 * top)); }
  const Y = (v) => h - 20 - v / top * (h - 40);
  if (d.dens) {
    ctx.fillStyle = "rgba(56,161,105,0.45)";
    d.dens.forEach((v, i) => { ctx.fillRect(X(d.edges[i]), Y(Math.min(v, top)), X(d.edges[i + 1]) - X(d.edges[i]), Y(0) - Y(Math.min(v, top))); });
  }
  polyline(ctx, xs, d.pdf, X, Y, "#000", [6, 4]);
  let caption = `step ${f.step}: p_data (dashed), p_g (green)`;
  if (d.d) {
    const dlo = f.probability ? 0 : Math.min(...d.d, ...d.dgz), dhi = f.probability ? 1 : Math.max(...d.d, ...d.dgz);
    const DY = (v) => h - 20 - (v - dlo) / Math.max(1e-9, dhi - dlo) * (h - 40);
    polyline(ctx, xs, d.d, X, DY, "#3182ce", []);
    ctx.fillStyle = "#c53030";
    d.gz.forEach((g, i) => { ctx.fillRect(X(g) - 3, DY(d.dgz[i]) - 3, 6, 6); });
    if (f.arrows) {
      const max = Math.max(1e-12, ...f.arrows.map((v) => Math.abs(v ?? 0)));
      ctx.strokeStyle = "#c53030"; ctx.beginPath();
      d.gz.forEach((g, i) => { const y = DY(d.dgz[i]); ctx.moveTo(X(g), y); ctx.lineTo(X(g + 0.08 * (hi - lo) * (f.arrows[i] ?? 0) / max), y); });
      ctx.stroke();
    }
    caption += `, ${f.critic_label} (blue), D(G(z)) and -grad L_G at fakes (red)`;
  }
  for (const p of state.drawn) { cross(ctx, X(p[0]), Y(0)); }
  $("planeCaption").textContent = caption;
}

function polyline(ctx, xs, ys, X, Y, color, dash) {
  ctx.strokeStyle = color; ctx.setLineDash(dash); ctx.lineWidth = 1.5; ctx.beginPath();
  xs.forEach((x, i) => { if (ys[i] === null) { return; } if (i === 0) { ctx.moveTo(X(x), Y(ys[i])); } else { ctx.lineTo(X(x), Y(ys[i])); } });
  ctx.stroke(); ctx.setLineDash([]);
}

function drawMapping(f) {
  const canvas = $("latent"), ctx = canvas.getContext("2d"), m = f.mapping;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!m) { $("latentCaption").textContent = "no G(z) map (the model has no 1-D latent z)"; return; }
  const all = [...m.gz, ...m.target].filter((v) => v !== null);
  const lo = Math.min(...all), hi = Math.max(...all), w = canvas.width, h = canvas.height;
  const X = (v) => (v - m.z[0]) / (m.z[m.z.length - 1] - m.z[0]) * w;
  const Y = (v) => h - 10 - (v - lo) / Math.max(1e-9, hi - lo) * (h - 20);
  polyline(ctx, m.z, m.target, X, Y, "#000", [6, 4]);
  polyline(ctx, m.z, m.gz, X, Y, "#38a169", []);
  $("latentCaption").textContent = "G(z) (green) against the inverse CDF F^-1(u(z)) (dashed)";
}

// ---- charts -----------------------------------------------------------------------------
function chart(canvas, series, labels) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const pts = series.flat().filter((p) => p[1] !== null && Number.isFinite(p[1]));
  if (!pts.length) { return; }
  const x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = Math.min(...pts.map((p) => p[1])), y1 = Math.max(...pts.map((p) => p[1]));
  if (y1 - y0 < 1e-9) { y1 = y0 + 1; }
  const X = (v) => 30 + (v - x0) / Math.max(1e-9, x1 - x0) * (w - 40);
  const Y = (v) => h - 15 - (v - y0) / (y1 - y0) * (h - 30);
  ctx.fillStyle = "#555"; ctx.font = "10px sans-serif";
  ctx.fillText(y1.toPrecision(3), 0, 12); ctx.fillText(y0.toPrecision(3), 0, h - 15);
  series.forEach((s, i) => {
    ctx.strokeStyle = COLORS[i % COLORS.length]; ctx.beginPath();
    s.forEach((p, n) => { if (n === 0) { ctx.moveTo(X(p[0]), Y(p[1])); } else { ctx.lineTo(X(p[0]), Y(p[1])); } });
    ctx.stroke();
    ctx.fillStyle = COLORS[i % COLORS.length]; ctx.fillText(labels[i], 40 + 90 * i, h - 2);
  });
}

function drawCharts() {
  const keys = [...new Set(state.records.flatMap((r) => Object.keys(r)))].filter((k) => k.startsWith("loss/"));
  chart($("lossChart"), keys.map((k) => state.records.filter((r) => typeof r[k] === "number").map((r) => [r.step, r[k]])), keys);
  if (state.dSeries.length) {
    chart($("dChart"), [state.dSeries.map((p) => [p[0], p[1]]), state.dSeries.map((p) => [p[0], p[2]])], ["data", "fakes"]);
  } else {                 // frames without critic means (images): the logged D(x), D(G(z))
    const logged = ["D(x)", "D(G(z))"];
    chart($("dChart"), logged.map((k) => state.records.filter((r) => typeof r[k] === "number").map((r) => [r.step, r[k]])), logged);
    $("dCaption").textContent = "D(x) (blue) and D(G(z)) (orange) as logged (metrics.jsonl), over steps";
  }
  const mk = Object.keys(state.metricSeries);
  chart($("metricChart"), mk.map((k) => state.metricSeries[k]), mk);
  $("metricCaption").textContent = mk.length ? `${mk.join(", ")} over steps (each on the shared axis)` : "no live metrics for this run";
}

async function refreshRun() {
  try {
    const r = await fetch("files/metrics.jsonl", { cache: "no-store" });
    if (r.ok) {
      state.records = (await r.text()).split("\n").filter((l) => l.trim()).map((l) => { try { return JSON.parse(l); } catch (e) { return {}; } });
    }
    const files = await (await fetch("api/files", { cache: "no-store" })).json();
    const box = $("files");
    box.innerHTML = "";
    for (const name of files.filter((n) => n.endsWith(".png")).slice(-12)) {
      const a = document.createElement("a");
      a.href = "files/" + name; a.textContent = name; a.target = "_blank";
      box.appendChild(a);
    }
  } catch (e) { /* the server is gone: the status says so */ }
  drawCharts();
}

// ---- controls ---------------------------------------------------------------------------
function wire() {
  $("play").addEventListener("click", () => send({ cmd: state.frame && state.frame.paused ? "play" : "pause" }));
  $("stepD").addEventListener("click", () => send({ cmd: "step", phase: "D" }));
  $("stepG").addEventListener("click", () => send({ cmd: "step", phase: "G" }));
  $("slow").addEventListener("change", () => send({ cmd: "slow", seconds: Number($("slow").value) }));
  $("k").addEventListener("change", () => send({ cmd: "k", value: Number($("k").value) }));
  $("objective").addEventListener("change", () => { say(""); send({ cmd: "objective", name: $("objective").value }); });
  $("drawToggle").addEventListener("click", () => {
    state.drawing = !state.drawing;
    $("plane").classList.toggle("drawing", state.drawing);
    $("drawToggle").textContent = state.drawing ? "stop drawing" : "draw a target";
  });
  $("drawClear").addEventListener("click", () => { state.drawn = []; updateDrawn(); });
  $("drawApply").addEventListener("click", () => {
    const f = state.frame, std = f && f.kind === "toy2d" ? 0.02 * (f.lims[1] - f.lims[0]) : 0.02 * spanOf1d(f);
    send({ cmd: "draw", points: state.drawn, std: Math.max(std, 1e-3) });
  });
  $("resetData").addEventListener("click", () => send({ cmd: "reset_data" }));
  $("plane").addEventListener("click", (ev) => {
    const f = state.frame;
    if (!state.drawing || !f || state.drawn.length >= 500) { return; }
    const c = $("plane"), rect = c.getBoundingClientRect();
    const px = (ev.clientX - rect.left) * c.width / rect.width, py = (ev.clientY - rect.top) * c.height / rect.height;
    if (f.kind === "toy2d") { state.drawn.push(planeTransform(f, c).inv(px, py)); }
    else { const xs = f.density.xs; state.drawn.push([xs[0] + px / c.width * (xs[xs.length - 1] - xs[0])]); }
    updateDrawn();
  });
}

function spanOf1d(f) { const xs = f.density.xs; return xs[xs.length - 1] - xs[0]; }

function updateDrawn() {
  $("drawCount").textContent = state.drawn.length;
  $("drawApply").disabled = state.drawn.length === 0;
  if (state.frame) { onFrame(state.frame); }
}

wire();
connect();
refreshRun();
setInterval(refreshRun, 2000);
