// The dashboard: reads /api/v1/ and draws. No libraries, nothing from another origin.
"use strict";
const $ = (s) => document.querySelector(s);
const COLORS = ["#3b6fd4", "#e0803c", "#3aa57a", "#c4485b", "#8a62c9", "#8c7b54", "#d46fb5", "#7a8ca0"];

// Money arrives as decimal strings exact to the micro-dollar: summed as integers.
function micros(v) {
  if (v === null || v === undefined || v === "") return 0n;
  const s = String(v);
  const [i, f = ""] = s.split(".");
  return BigInt(i) * 1000000n + BigInt((f + "000000").slice(0, 6));
}
function usd(m) {
  const cents = (m + 5000n) / 10000n;
  const d = cents / 100n;
  const c = (cents % 100n).toString().padStart(2, "0");
  return "$" + d.toLocaleString("en-US") + "." + c;
}
function num(n) { return Number(n).toLocaleString("en-US"); }

function params() {
  const q = new URLSearchParams(location.search);
  const dev = location.pathname.startsWith("/developers/")
    ? decodeURIComponent(location.pathname.slice("/developers/".length)) : null;
  return { since: q.get("since") || "", until: q.get("until") || "", tz: q.get("tz") || "UTC", by: q.get("by") || "developer", developer: dev };
}

function apiUrl(path, p, extra) {
  const q = new URLSearchParams();
  if (p.since) q.set("since", p.since);
  if (p.until) q.set("until", p.until);
  if (p.tz) q.set("tz", p.tz);
  if (p.developer) q.set("developer", p.developer);
  for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
  return path + "?" + q.toString();
}

async function answer(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (r.status === 401) {
    // Off loopback without a session: the login form, then back here.
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Error("log in first");
  }
  const body = await r.json();
  if (!r.ok) throw new Error((body.error && body.error.message) || ("HTTP " + r.status));
  const w = r.headers.get("x-bedrock-usage-warnings");
  return { body, warnings: w ? JSON.parse(w) : [] };
}
async function get(url) { return (await answer(url)).body; }

// A developer's spend per day as a small line (the trend beside their total).
function sparkline(points) {
  const ns = "http://www.w3.org/2000/svg", W = 90, H = 18;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("width", W); svg.setAttribute("height", H);
  svg.setAttribute("class", "spark");
  let max = 1n; for (const v of points) if (v > max) max = v;
  const step = points.length > 1 ? W / (points.length - 1) : 0;
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.map((v, i) => `${(i * step).toFixed(1)},${(H - 1 - Number((v * BigInt(H - 2)) / max)).toFixed(1)}`).join(" "));
  svg.appendChild(line);
  return svg;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fill(table, rows, make) {
  const tb = $(table + " tbody");
  tb.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    make(tr, r);
    tb.appendChild(tr);
  }
}

function chart(rows, by) {
  // rows: {day, <by>, cost_usd}; stacked bars per day, the 7 dearest series and `other`.
  const totals = new Map();
  for (const r of rows) totals.set(r[by] || "(none)", (totals.get(r[by] || "(none)") || 0n) + micros(r.cost_usd));
  const names = [...totals.entries()].sort((a, b) => (b[1] > a[1] ? 1 : b[1] < a[1] ? -1 : 0)).map((e) => e[0]);
  const kept = names.slice(0, 7);
  const days = [...new Set(rows.map((r) => r.day))].sort();
  const stack = new Map(days.map((d) => [d, new Map()]));
  for (const r of rows) {
    const n = kept.includes(r[by] || "(none)") ? (r[by] || "(none)") : "other";
    const m = stack.get(r.day);
    m.set(n, (m.get(n) || 0n) + micros(r.cost_usd));
  }
  const series = names.length > kept.length ? kept.concat(["other"]) : kept;
  let max = 1n;
  for (const m of stack.values()) { let t = 0n; for (const v of m.values()) t += v; if (t > max) max = t; }
  const W = 900, H = 220, pad = 40, bw = Math.max(2, Math.floor((W - pad) / Math.max(1, days.length)) - 2);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 20}`);
  svg.setAttribute("width", "100%");
  svg.setAttribute("role", "img");
  days.forEach((d, i) => {
    let y = H;
    series.forEach((s, k) => {
      const v = stack.get(d).get(s) || 0n;
      const h = Number((v * BigInt(H - 10)) / max);
      if (h <= 0) return;
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", pad + i * (bw + 2)); rect.setAttribute("y", y - h);
      rect.setAttribute("width", bw); rect.setAttribute("height", h);
      rect.setAttribute("fill", COLORS[k % COLORS.length]);
      const t = document.createElementNS(ns, "title"); t.textContent = `${d} ${s}: ${usd(v)}`;
      rect.appendChild(t); svg.appendChild(rect);
      y -= h;
    });
  });
  const label = (x, y, text) => { const t = document.createElementNS(ns, "text"); t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("font-size", "11"); t.textContent = text; svg.appendChild(t); };
  label(0, 12, usd(max));
  if (days.length) { label(pad, H + 15, days[0]); label(W - 70, H + 15, days[days.length - 1]); }
  $("#chart").replaceChildren(svg);
  const legend = $("#legend"); legend.replaceChildren();
  series.forEach((s, k) => {
    const sp = document.createElement("span"); const i = document.createElement("i");
    i.style.background = COLORS[k % COLORS.length]; sp.appendChild(i); sp.appendChild(document.createTextNode(s)); legend.appendChild(sp);
  });
}

async function load() {
  const p = params();
  $("#since").value = p.since; $("#until").value = p.until; $("#tz").value = p.tz; $("#by").value = p.by;
  $("#who").textContent = p.developer ? "· " + p.developer : "";
  document.querySelectorAll(".by-name").forEach((e) => { e.textContent = "by " + p.by; });
  $("#error").hidden = true;
  try {
    const [devAnswer, models, series, perDev] = await Promise.all([
      answer(apiUrl("/api/v1/report", p, { by: "developer" })),
      get(apiUrl("/api/v1/report", p, { by: "model" })),
      get(apiUrl("/api/v1/timeseries", p, { bin: "day", by: p.by })),
      p.by === "developer" ? null : get(apiUrl("/api/v1/timeseries", p, { bin: "day", by: "developer" })),
    ]);
    const devs = devAnswer.body;
    let cost = 0n, saved = 0n, calls = 0, tokens = 0, input = 0, cached = 0;
    for (const r of devs) { cost += micros(r.cost_usd); calls += r.calls; tokens += r.total_tokens; }
    for (const r of models) { input += r.input_tokens + r.cache_read_tokens + r.cache_write_tokens; cached += r.cache_read_tokens; saved += micros(r.cache_saved_usd); }
    $("#total-cost").textContent = usd(cost); $("#total-cost").dataset.micros = cost.toString();
    $("#total-calls").textContent = num(calls);
    $("#total-tokens").textContent = num(tokens);
    $("#cache-share").textContent = input ? (100 * cached / input).toFixed(1) + "%" : "-";
    $("#cache-saved").textContent = (saved < 0n ? "-" + usd(-saved) : usd(saved)); $("#cache-saved").dataset.micros = saved.toString();
    const daily = perDev || series, allDays = [...new Set(daily.map((r) => r.day))].sort();
    const trend = new Map();
    for (const r of daily) {
      const name = r.developer || "(none)";
      if (!trend.has(name)) trend.set(name, new Map());
      trend.get(name).set(r.day, (trend.get(name).get(r.day) || 0n) + micros(r.cost_usd));
    }
    const byCost = (a, b) => (micros(b.cost_usd) > micros(a.cost_usd) ? 1 : micros(b.cost_usd) < micros(a.cost_usd) ? -1 : 0);
    fill("#developers", devs.slice().sort(byCost), (tr, r) => {
      const td = document.createElement("td"); const a = document.createElement("a");
      a.href = "/developers/" + encodeURIComponent(r.developer) + location.search; a.textContent = r.developer;
      td.appendChild(a); tr.appendChild(td);
      cell(tr, num(r.calls), "num"); cell(tr, num(r.total_tokens), "num");
      const t = trend.get(r.developer || "(none)") || new Map();
      cell(tr, "", "trend").appendChild(sparkline(allDays.map((d) => t.get(d) || 0n)));
      cell(tr, r.cost_usd === null ? "unpriced" : "$" + r.cost_usd, "num cost");
    });
    fill("#models", models.slice().sort(byCost), (tr, r) => {
      cell(tr, r.model);
      cell(tr, num(r.calls), "num");
      const side = r.input_tokens + r.cache_read_tokens + r.cache_write_tokens;
      cell(tr, side ? (100 * r.cache_read_tokens / side).toFixed(1) + "%" : "-", "num");
      const sv = micros(r.cache_saved_usd);
      cell(tr, r.cache_saved_usd === null ? "-" : (sv < 0n ? "-" + usd(-sv) : usd(sv)), "num");
      cell(tr, r.cost_usd === null ? "unpriced" : "$" + r.cost_usd, "num cost");
    });
    $("#csv-developers").href = apiUrl("/api/v1/report", p, { by: "developer", format: "csv" });
    $("#csv-models").href = apiUrl("/api/v1/report", p, { by: "model", format: "csv" });
    $("#csv-budgets").href = "/api/v1/budgets?format=csv";
    chart(series, p.by);
    const budgets = await get("/api/v1/budgets");
    fill("#budgets", budgets, (tr, b) => {
      for (const k of ["budget", "scope", "period"]) cell(tr, b[k]);
      cell(tr, "$" + b.spent_usd, "num"); cell(tr, "$" + b.amount_usd, "num"); cell(tr, b.percent, "num");
      cell(tr, b.forecast_usd === null ? "-" : "$" + b.forecast_usd, "num");
      cell(tr, b.state, "state-" + b.state);
    });
    const warnings = $("#warnings"); warnings.replaceChildren();
    const warn = (text) => { const li = document.createElement("li"); li.textContent = text; warnings.appendChild(li); };
    // Unpriced models, shared principals and conflicting metadata: the report's own warnings.
    for (const w of devAnswer.warnings) warn(w);
    if (!p.developer) {
      try {
        const st = await get("/api/v1/status");
        for (const src of st.sources) {
          if (src.seconds_since_sync > 7200) warn(`source ${src.source} is behind: last synced ${src.synced} (${Math.round(src.seconds_since_sync / 3600)} h ago)`);
        }
      } catch (e) { /* a developer's key may not read it */ }
    }
    if (!warnings.children.length) { const li = document.createElement("li"); li.textContent = "none"; warnings.appendChild(li); }
    // Milliseconds from the navigation's start to every figure drawn (bench/serve.sh reads it).
    document.body.dataset.loadedMs = Math.round(performance.now()).toString();
    document.body.dataset.loaded = "yes";
  } catch (e) {
    $("#error").textContent = e.message; $("#error").hidden = false;
    document.body.dataset.loaded = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#controls").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const k of ["since", "until", "tz", "by"]) { const v = $("#" + k).value; if (v) q.set(k, v); }
    history.pushState(null, "", location.pathname + "?" + q.toString());
    load();
  });
  window.addEventListener("popstate", load);
  load();
});
