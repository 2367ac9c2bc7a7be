// kpiwatch backtest report: reads the JSON in #data (see src/backtest/html.rs,
// `Page`), builds the tables and draws charts on canvases, only those on
// screen (IntersectionObserver). Nothing is fetched. Text from the data is
// always set with textContent, never parsed as HTML.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const SPAN_COLOURS = { alert: "rgba(214,39,40,0.18)", incident: "rgba(31,119,180,0.20)", quiet: "rgba(120,120,120,0.16)", calendar: "rgba(44,160,44,0.16)", muted: "rgba(148,103,189,0.22)" };
  const SPAN_EDGES = { alert: "rgba(214,39,40,0.8)", incident: "rgba(31,119,180,0.8)", quiet: "rgba(90,90,90,0.6)", calendar: "rgba(44,160,44,0.8)", muted: "rgba(148,103,189,0.9)" };
  // Charts switch to full-resolution figures (where kept) below this span.
  const FULL_BELOW = 3 * 86400;
  const PAGE_ALERTS = 200, PAGE_CHARTS = 40;
  // The setting each KPI is shown at (0: as configured).
  const chosen = D.kpis.map(() => 0);

  // ---- small helpers ----
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const pad = (n) => String(n).padStart(2, "0");
  function utc(t) { const d = new Date(t * 1000); return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`; }
  function day(t) { const d = new Date(t * 1000); return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`; }
  function dur(s) {
    s = Math.max(0, Math.round(s)); const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return d ? (h ? `${d} d ${h} h` : `${d} d`) : h ? (m ? `${h} h ${m} min` : `${h} h`) : `${m} min`;
  }
  function num(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    return a >= 1000 ? Math.round(v).toLocaleString("en") : a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  const pct = (v) => (v === null || v === undefined) ? "–" : `${Math.round(v * 100)} %`;
  function b64(s) { const bin = atob(s); const out = new Uint8Array(bin.length); for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i); return out; }

  // ---- header ----
  document.getElementById("title").textContent = `kpiwatch backtest: ${D.topic}`;
  document.getElementById("period").textContent = D.from === null ? "No events." :
    `${utc(D.from)} to ${utc(D.to)} UTC (${D.weeks.toFixed(1)} weeks), ${D.events.toLocaleString("en")} events` +
    (D.rejected ? `, ${D.rejected.toLocaleString("en")} rejected` : "") + (D.late ? `, ${D.late.toLocaleString("en")} late` : "") +
    `, ${D.series.length.toLocaleString("en")} series` + (D.labelled ? "" : "; no labels file: every alert counts as unlabelled") + ".";

  function overallLine() {
    const o = D.overall[0];
    const parts = [`As configured: ${o.fired} alerts`];
    if (D.labelled) parts.push(`recall ${pct(o.recall)} (${o.detected} of ${o.incidents} incidents)`, `${o.false} false (${num(o.false_per_kpi_week)} per KPI-week)`);
    else parts.push(`${num(o.alerts_per_kpi_week)} per KPI-week`);
    parts.push(`${o.still_firing_at_end} still firing at the end`);
    if (D.violations) parts.push(`${D.violations} message consistency violations`);
    document.getElementById("overall").textContent = parts.join(", ") + ".";
  }
  overallLine();

  // ---- overview: one row per KPI, one cell per setting ----
  function settingCell(k, s) {
    const r = D.kpis[k].rows[s];
    const words = [`${r.fired} alert${r.fired === 1 ? "" : "s"}`];
    if (r.critical) words.push(`${r.critical} critical`);
    const cell = el("td", { class: "setting" + (chosen[k] === s ? " chosen" : ""), "data-kpi": k, "data-setting": s, title: "Show this KPI's alerts at this setting", onclick: () => choose(k, s) },
      words.join(", "));
    if (D.labelled) {
      cell.append(el("br"), el("span", { class: r.false ? "false" : "ok" }, `${r.false} false`));
      if (r.incidents) cell.append(`, recall ${pct(r.recall)}`);
      if (r.median_delay !== null) cell.append(el("br"), `median delay ${num(r.median_delay)} min`);
    }
    return cell;
  }
  function buildKpis() {
    const t = document.getElementById("kpis"); t.textContent = "";
    const head = el("tr", {}, el("th", {}, "KPI"), el("th", { class: "num" }, "series"), el("th", {}, "bucket"), el("th", {}, "level"));
    D.settings.forEach((s, i) => head.append(el("th", {}, i === 0 ? "as configured" : `at ${s}`)));
    t.append(head);
    D.kpis.forEach((k, i) => {
      const row = el("tr", {}, el("td", {}, k.name), el("td", { class: "num" }, k.rows[0].series.toLocaleString("en")), el("td", {}, dur(k.bucket)), el("td", {}, k.level));
      D.settings.forEach((_, s) => row.append(settingCell(i, s)));
      t.append(row);
    });
  }
  const all = document.querySelector(".all-settings");
  D.settings.forEach((s, i) => all.append(el("button", { type: "button", onclick: () => { D.kpis.forEach((_, k) => { chosen[k] = i; }); refresh(); } }, i === 0 ? "as configured" : s)));
  function choose(k, s) { chosen[k] = s; refresh(); }

  // ---- incidents: one column per setting ----
  function buildIncidents() {
    const sec = document.getElementById("incidents-section");
    if (!D.incidents[0] || !D.incidents[0].length) { sec.hidden = true; return; }
    const t = document.getElementById("incidents"); t.textContent = "";
    const head = el("tr", {}, el("th", {}, "incident"), el("th", {}, "start (UTC)"), el("th", {}, "lasted"));
    D.settings.forEach((s, i) => head.append(el("th", {}, i === 0 ? "as configured" : `at ${s}`)));
    head.append(el("th", {}, "first alert (as configured)"));
    t.append(head);
    D.incidents[0].forEach((inc, i) => {
      const name = el("td", {}, inc.id);
      if (inc.kind) name.append(el("br"), el("span", { class: "hint" }, inc.kind));
      if (inc.note) name.title = inc.note;
      const row = el("tr", {}, name, el("td", {}, utc(inc.start)), el("td", {}, dur(inc.end - inc.start)));
      D.incidents.forEach((per) => {
        const x = per[i];
        const target = x.target_delay_buckets === null ? "" : ` (target ${x.target_delay_buckets})`;
        row.append(x.detected ? el("td", { class: "ok" }, `after ${num(x.delay_minutes)} min, ${x.delay_buckets} bucket${x.delay_buckets === 1 ? "" : "s"}${target}`) : el("td", { class: "missed" }, "missed"));
      });
      row.append(el("td", {}, inc.first || "–"));
      t.append(row);
    });
  }

  // ---- alerts at each KPI's chosen setting ----
  let alertLimit = PAGE_ALERTS;
  function shownAlerts() {
    const out = [];
    D.kpis.forEach((_, k) => { for (const a of D.alerts[chosen[k]]) if (a.kpi === k) out.push([chosen[k], a]); });
    out.sort((x, y) => x[1].fired - y[1].fired);
    return out;
  }
  function buildAlerts() {
    const t = document.getElementById("alerts"); t.textContent = "";
    const list = shownAlerts();
    t.append(el("tr", {}, el("th", {}, "severity"), el("th", {}, "fired (UTC)"), el("th", {}, "lasted"), el("th", {}, "incident"), el("th", {}, "setting"), el("th", {}, "what happened")));
    if (!list.length) t.append(el("tr", {}, el("td", { colspan: 6 }, "No alerts at the chosen settings.")));
    for (const [s, a] of list.slice(0, alertLimit)) {
      const words = el("td", { class: "words" }, el("strong", {}, a.summary), el("br"), a.evidence);
      if (a.rarity) words.append(el("span", { class: "rarity" }, `; ${a.rarity}`));
      const lasted = a.resolved === null ? "still firing" : dur(a.resolved - a.started);
      const matched = D.labelled ? (a.matched ? el("td", { class: "ok" }, a.matched) : el("td", { class: "false" }, "false")) : el("td", {}, "–");
      t.append(el("tr", { class: "alert-row", title: "Show its chart", onclick: () => openSeries(a.series, a.started, a.resolved === null ? D.to : a.resolved) },
        el("td", { class: a.severity }, a.severity), el("td", {}, utc(a.fired)), el("td", {}, lasted), matched, el("td", {}, D.settings[s]), words));
    }
    const more = document.getElementById("more-alerts");
    more.hidden = list.length <= alertLimit;
    more.textContent = `Show more alerts (${list.length - alertLimit} more)`;
  }
  document.getElementById("more-alerts").addEventListener("click", () => { alertLimit += PAGE_ALERTS; buildAlerts(); });

  // ---- series data, decoded on first draw ----
  const decoded = new Map();
  function seriesData(i) {
    if (decoded.has(i)) return decoded.get(i);
    const s = D.series[i], scale = (c, max) => c > max ? NaN : s.lo + c / max * (s.hi - s.lo);
    const h = b64(s.h), width = s.agg * s.step, hourly = [];
    for (let j = 0; j * 6 < h.length; j++) {
      const o = j * 6, t = s.t0 + j * width;
      hourly.push({ t, w: width, min: scale(h[o], 254), max: scale(h[o + 1], 254), v: scale(h[o + 2], 254), e: scale(h[o + 3], 254), lo: scale(h[o + 4], 254), hi: scale(h[o + 5], 254) });
    }
    // Full resolution where kept; hourly elsewhere.
    const covered = new Set(), full = [];
    for (const f of s.full) {
      const d = b64(f.d), view = new DataView(d.buffer);
      const n = d.length / 8;
      for (let j = 0; j < n; j++) {
        const c = (q) => scale(view.getUint16(j * 8 + q * 2, true), 65534);
        const i2 = f.i + j, v = c(0);
        full.push({ t: s.t0 + i2 * s.step, w: s.step, min: v, max: v, v, e: c(1), lo: c(2), hi: c(3), full: true });
        covered.add(Math.floor(i2 / s.agg));
      }
    }
    const mixed = hourly.filter((p, j) => !covered.has(j)).concat(full).sort((a, b) => a.t - b.t);
    const out = { hourly, mixed, start: s.t0, end: s.t0 + s.n * s.step };
    decoded.set(i, out);
    return out;
  }

  // Spans that apply to series i at the KPI's chosen setting.
  function spansOf(i) {
    const s = D.series[i];
    return D.spans.filter((sp) => {
      if (sp.kind === "alert") return sp.series === i && sp.setting === chosen[s.kpi];
      if (sp.series !== null) return sp.series === i;
      if (sp.kpis.length && !sp.kpis.includes(s.kpi)) return false;
      return Object.entries(sp.labels).every(([k, v]) => !(k in s.labels) || s.labels[k] === v);
    });
  }

  // ---- charts ----
  const charts = [];
  const observer = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
    for (const e of entries) { const c = e.target.chart; c.visible = e.isIntersecting; if (c.visible && c.dirty) draw(c); }
  }, { rootMargin: "300px" }) : null;

  function makeChart(i, from, to) {
    const s = D.series[i], data = seriesData(i);
    const canvas = el("canvas", { "data-series": i, role: "img", "aria-label": `chart of ${s.name}` });
    const c = { i, canvas, data, view: [data.start, data.end], visible: !observer, dirty: true };
    const box = el("div", { class: "chart", "data-series": i },
      el("h3", {}, s.name, el("span", { class: "sub" }, `${s.alerts[0]} alert${s.alerts[0] === 1 ? "" : "s"} as configured, ${s.n.toLocaleString("en")} buckets of ${dur(s.step)}`),
        el("span", { class: "tools" },
          el("button", { type: "button", title: "earlier", onclick: () => pan(c, -0.5) }, "◀"),
          el("button", { type: "button", title: "later", onclick: () => pan(c, 0.5) }, "▶"),
          el("button", { type: "button", onclick: () => zoomTo(c, 86400) }, "day"),
          el("button", { type: "button", onclick: () => zoomTo(c, 7 * 86400) }, "week"),
          el("button", { type: "button", onclick: () => setView(c, data.start, data.end) }, "all"))),
      canvas);
    box.chart = c; c.box = box;
    if (from !== undefined) { const pad = Math.max(6 * 3600, (to - from) * 0.5); setView(c, from - pad, to + pad, true); }
    interact(c);
    charts.push(c);
    if (observer) observer.observe(box);
    return box;
  }
  function setView(c, a, b, quiet) {
    const min = c.data.start, max = c.data.end, span = Math.max(b - a, D.series[c.i].step * 6);
    a = Math.max(min, Math.min(a, max - span)); b = Math.min(max, a + span);
    c.view = [a, b]; c.dirty = true; if (!quiet && c.visible) draw(c);
  }
  function zoomTo(c, span) { const mid = (c.view[0] + c.view[1]) / 2; setView(c, mid - span / 2, mid + span / 2); }
  function pan(c, f) { const w = c.view[1] - c.view[0]; setView(c, c.view[0] + w * f, c.view[1] + w * f); }

  const M = { l: 56, r: 8, t: 8, b: 22 };
  function geometry(c) {
    const rect = c.canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    const w = Math.max(200, rect.width), h = Math.max(120, rect.height);
    return { w, h, dpr, x: (t) => M.l + (t - c.view[0]) / (c.view[1] - c.view[0]) * (w - M.l - M.r) };
  }
  function niceStep(range, n) { const raw = range / n, p = Math.pow(10, Math.floor(Math.log10(raw))); const f = raw / p; return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p; }
  function lowerBound(pts, t) { let a = 0, b = pts.length; while (a < b) { const m = (a + b) >> 1; if (pts[m].t + pts[m].w <= t) a = m + 1; else b = m; } return a; }
  function visiblePoints(c) {
    const pts = (c.view[1] - c.view[0] <= FULL_BELOW) ? c.data.mixed : c.data.hourly;
    const a = lowerBound(pts, c.view[0]); let b = a;
    while (b < pts.length && pts[b].t <= c.view[1]) b++;
    return pts.slice(a, b);
  }
  function draw(c) {
    c.dirty = false;
    const g = geometry(c), ctx = c.canvas.getContext("2d");
    c.canvas.width = Math.round(g.w * g.dpr); c.canvas.height = Math.round(g.h * g.dpr);
    ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
    ctx.clearRect(0, 0, g.w, g.h);
    const pts = visiblePoints(c); c.points = pts;
    // The y range holds observed and expected; the band widens it by at
    // most that range again (a band of a warming-up series or a ratio of
    // a few events can be a hundred times wider, and would flatten all).
    let lo = Infinity, hi = -Infinity, blo = Infinity, bhi = -Infinity;
    for (const p of pts) {
      for (const v of [p.min, p.max, p.e]) if (isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
      if (isFinite(p.lo) && p.lo < blo) blo = p.lo;
      if (isFinite(p.hi) && p.hi > bhi) bhi = p.hi;
    }
    if (!isFinite(lo)) { lo = isFinite(blo) ? blo : 0; hi = isFinite(bhi) ? bhi : 1; }
    const reach = Math.max(hi - lo, Math.abs(hi) * 0.1, 1e-9);
    if (isFinite(blo)) lo = Math.min(lo, Math.max(blo, lo - reach));
    if (isFinite(bhi)) hi = Math.max(hi, Math.min(bhi, hi + reach));
    if (hi - lo < 1e-9) { hi = lo + 1; }
    const padY = (hi - lo) * 0.05; lo -= padY; hi += padY;
    const y = (v) => M.t + (1 - (v - lo) / (hi - lo)) * (g.h - M.t - M.b);
    c.y = y; c.g = g;
    const x0 = M.l, x1 = g.w - M.r;
    // Spans first, under everything.
    for (const sp of spansOf(c.i)) {
      if (sp.end < c.view[0] || sp.start > c.view[1]) continue;
      const a = Math.max(x0, g.x(sp.start)), b = Math.min(x1, g.x(sp.end));
      ctx.fillStyle = SPAN_COLOURS[sp.kind] || SPAN_COLOURS.calendar;
      ctx.fillRect(a, M.t, Math.max(1, b - a), g.h - M.t - M.b);
      ctx.fillStyle = SPAN_EDGES[sp.kind] || SPAN_EDGES.calendar;
      ctx.fillRect(a, M.t, Math.max(1, b - a), 2);
      ctx.font = "11px system-ui, sans-serif"; ctx.fillText(sp.text, a + 2, M.t + 12, Math.max(20, b - a - 4));
    }
    // Axes.
    ctx.strokeStyle = "#d9dee4"; ctx.fillStyle = "#5b6470"; ctx.lineWidth = 1; ctx.font = "11px system-ui, sans-serif";
    const ys = niceStep(hi - lo, 4);
    for (let v = Math.ceil(lo / ys) * ys; v <= hi; v += ys) {
      ctx.beginPath(); ctx.moveTo(x0, y(v)); ctx.lineTo(x1, y(v)); ctx.stroke();
      ctx.textAlign = "right"; ctx.fillText(num(v), x0 - 4, y(v) + 4);
    }
    const span = c.view[1] - c.view[0];
    const xs = [3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400].find((s) => span / s <= 10) || 14 * 86400;
    ctx.textAlign = "center";
    for (let t = Math.ceil(c.view[0] / xs) * xs; t <= c.view[1]; t += xs) {
      const px = g.x(t); ctx.beginPath(); ctx.moveTo(px, M.t); ctx.lineTo(px, g.h - M.b); ctx.stroke();
      const d = new Date(t * 1000);
      ctx.fillText(xs >= 86400 ? day(t).slice(5) : `${d.getUTCHours() === 0 ? day(t).slice(5) + " " : ""}${pad(d.getUTCHours())}:00`, px, g.h - 6);
    }
    ctx.textAlign = "left";
    // Runs of points without a gap, so that missing buckets break lines.
    const runs = []; let run = [];
    for (const p of pts) {
      const prev = run[run.length - 1];
      if (prev && p.t - prev.t > Math.max(prev.w, p.w) * 1.5) { runs.push(run); run = []; }
      run.push(p);
    }
    if (run.length) runs.push(run);
    const mid = (p) => g.x(p.t + p.w / 2);
    const area = (r, a, b, fill) => {
      const ok = r.filter((p) => isFinite(p[a]) && isFinite(p[b])); if (ok.length < 1) return;
      ctx.beginPath(); ok.forEach((p, k) => k ? ctx.lineTo(mid(p), y(p[b])) : ctx.moveTo(mid(p), y(p[b])));
      for (let k = ok.length - 1; k >= 0; k--) ctx.lineTo(mid(ok[k]), y(ok[k][a]));
      ctx.closePath(); ctx.fillStyle = fill; ctx.fill();
    };
    const line = (r, f, stroke, dash, width) => {
      ctx.beginPath(); let on = false;
      for (const p of r) { if (!isFinite(p[f])) { on = false; continue; } if (on) ctx.lineTo(mid(p), y(p[f])); else { ctx.moveTo(mid(p), y(p[f])); on = true; } }
      ctx.setLineDash(dash); ctx.strokeStyle = stroke; ctx.lineWidth = width; ctx.stroke(); ctx.setLineDash([]);
    };
    ctx.save(); ctx.beginPath(); ctx.rect(x0, M.t, x1 - x0, g.h - M.t - M.b); ctx.clip();
    for (const r of runs) area(r, "lo", "hi", "rgba(120,130,140,0.22)");
    for (const r of runs) area(r, "min", "max", "rgba(31,119,180,0.22)");
    for (const r of runs) line(r, "e", "#3d4650", [5, 3], 1.2);
    for (const r of runs) line(r, "v", "#1f77b4", [], 1.6);
    ctx.restore();
    c.canvas.dataset.drawn = String(pts.length);
    if (!c.canvas.dataset.drawnAt) c.canvas.dataset.drawnAt = performance.now().toFixed(1);
  }

  // Drag to zoom, double-click for everything, hover for figures.
  const tip = document.getElementById("tip");
  function interact(c) {
    let from = null;
    const tOf = (ev) => { const r = c.canvas.getBoundingClientRect(); const w = r.width - M.l - M.r; return c.view[0] + (ev.clientX - r.left - M.l) / w * (c.view[1] - c.view[0]); };
    c.canvas.addEventListener("mousedown", (ev) => { from = tOf(ev); });
    c.canvas.addEventListener("mouseup", (ev) => {
      if (from === null) return; const to = tOf(ev); const a = Math.min(from, to), b = Math.max(from, to); from = null;
      if (b - a > D.series[c.i].step * 3) setView(c, a, b);
    });
    c.canvas.addEventListener("dblclick", () => setView(c, c.data.start, c.data.end));
    c.canvas.addEventListener("mouseleave", () => { tip.hidden = true; from = null; });
    c.canvas.addEventListener("mousemove", (ev) => {
      if (!c.points || !c.points.length) return;
      const t = tOf(ev); let best = null;
      for (const p of c.points) if (!best || Math.abs(p.t + p.w / 2 - t) < Math.abs(best.t + best.w / 2 - t)) best = p;
      if (!best) return;
      const res = best.full ? "" : ` (${dur(best.w)}: mean; range ${num(best.min)} – ${num(best.max)})`;
      tip.textContent = `${utc(best.t)} UTC\nobserved ${num(best.v)}${res}\nexpected ${num(best.e)}\nnormal ${num(best.lo)} – ${num(best.hi)}`;
      tip.hidden = false; tip.style.left = `${ev.clientX + 14}px`; tip.style.top = `${ev.clientY + 14}px`;
    });
  }
  window.addEventListener("resize", () => { for (const c of charts) { c.dirty = true; if (c.visible) draw(c); } });

  // ---- the alerted series, and the ones picked by search ----
  let chartLimit = PAGE_CHARTS;
  function alertedSeries() {
    const seen = new Set(), out = [];
    for (const [, a] of shownAlerts()) if (a.series !== null && !seen.has(a.series)) { seen.add(a.series); out.push(a.series); }
    return out;
  }
  function buildCharts() {
    const box = document.getElementById("charts");
    for (const c of charts.splice(0)) if (observer) observer.unobserve(c.box);
    box.textContent = "";
    const list = alertedSeries();
    if (!list.length) box.append(el("p", { class: "hint" }, "No series alerted at the chosen settings; find one above."));
    for (const i of list.slice(0, chartLimit)) box.append(makeChart(i));
    for (const p of document.getElementById("picked").children) if (p.chart) { charts.push(p.chart); if (observer) observer.observe(p); }
    const more = document.getElementById("more-charts");
    more.hidden = list.length <= chartLimit; more.textContent = `Show more charts (${list.length - chartLimit} more)`;
  }
  document.getElementById("more-charts").addEventListener("click", () => { chartLimit += PAGE_CHARTS; buildCharts(); });

  function openSeries(i, from, to) {
    if (i === null || i === undefined) return;
    const picked = document.getElementById("picked");
    for (const p of [...picked.children]) if (p.chart && p.chart.i === i) {
      picked.removeChild(p); if (observer) observer.unobserve(p);
      const k = charts.indexOf(p.chart); if (k >= 0) charts.splice(k, 1);
    }
    const box = makeChart(i, from, to);
    picked.prepend(box);
    box.scrollIntoView({ block: "center" });
  }

  // Search: every word must appear in the series name (KPI and labels).
  const names = D.series.map((s) => s.name.toLowerCase());
  const search = document.getElementById("search"), results = document.getElementById("results");
  function found() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return [];
    const out = [];
    for (let i = 0; i < names.length && out.length < 30; i++) if (words.every((w) => names[i].includes(w))) out.push(i);
    return out;
  }
  search.addEventListener("input", () => {
    results.textContent = "";
    const hits = found();
    if (search.value.trim() && !hits.length) results.append(el("li", { class: "hint" }, "No series matches."));
    for (const i of hits) results.append(el("li", {}, el("button", { type: "button", "data-series": i, onclick: () => openSeries(i) }, D.series[i].name)));
  });
  search.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { const hits = found(); if (hits.length) openSeries(hits[0]); } });

  function refresh() {
    buildKpis(); buildAlerts(); buildCharts();
    for (const c of charts) { c.dirty = true; if (c.visible) draw(c); }
  }
  buildIncidents();
  refresh();
  document.body.dataset.readyAt = performance.now().toFixed(1);
  document.body.dataset.ready = "true";
})();
