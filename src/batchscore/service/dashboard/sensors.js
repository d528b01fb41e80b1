// batchscore sensors page: one chart per (Device, Sensor) of a tabular job's output, the
// readings its model flagged as anomalies (prediction -1) in red. Uses the REST API only.
//
// sensors.html?job=ID                     that job (a unique prefix is enough)
// sensors.html?endpoint=NAME              the latest succeeded job of endpoint NAME
//                                         (default: sensor-anomaly)
// &group=Device,Sensor&time=TS&value=Value&prediction=prediction&anomaly=-1   column names
"use strict";

const PAGE = 10000;  // rows per request (the API allows up to 50,000)
const NS = "http://www.w3.org/2000/svg";

const params = new URLSearchParams(location.search);
const cfg = {
  job: params.get("job"),
  endpoint: params.get("endpoint") || "sensor-anomaly",
  group: (params.get("group") || "Device,Sensor").split(",").map((s) => s.trim()).filter(Boolean),
  time: params.get("time") || "TS",
  value: params.get("value") || "Value",
  prediction: params.get("prediction") || "prediction",
  anomaly: params.get("anomaly") || "-1",
};

bindToken(load);

function svg(tag, attrs) {
  const node = document.createElementNS(NS, tag);
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
  return node;
}

async function chooseJob() {
  if (cfg.job) return cfg.job;
  const jobs = await get(`${API}/jobs?state=succeeded&limit=1000`);
  const found = jobs.find((j) => j.name === cfg.endpoint && j.kind === "tabular");
  if (!found) {
    throw new Error(`no succeeded job of endpoint ${cfg.endpoint} yet; invoke it ` +
                    `(batchscore endpoint invoke ${cfg.endpoint} ...) or open sensors.html?job=ID`);
  }
  return found.id;
}

async function fetchRows(jobId) {
  const columns = [cfg.time, ...cfg.group, cfg.value, cfg.prediction];
  const names = encodeURIComponent(columns.join(","));
  let offset = 0;
  let rows = [];
  for (;;) {
    const page = await get(`${API}/jobs/${encodeURIComponent(jobId)}/output/rows` +
                           `?limit=${PAGE}&offset=${offset}&columns=${names}`);
    rows = rows.concat(page.rows);
    $("#status").textContent = `loaded ${rows.length} of ${page.total} rows`;
    offset += page.rows.length;
    if (!page.truncated || page.rows.length === 0) return { columns: page.columns, rows };
  }
}

function parseTime(value, fallback) {
  if (typeof value === "number") return value;
  if (typeof value === "string") {
    // "2018-08-28 23:00:05.000" (CSV) or ISO 8601 (timestamps): both read as the same clock
    const t = Date.parse(value.includes("T") ? value : value.replace(" ", "T"));
    if (!Number.isNaN(t)) return t;
  }
  return fallback;
}

function groupSeries(columns, rows) {
  const idx = (name) => columns.indexOf(name);
  const ti = idx(cfg.time), vi = idx(cfg.value), pi = idx(cfg.prediction);
  const gi = cfg.group.map(idx);
  const groups = new Map();
  rows.forEach((row, n) => {
    const key = gi.map((i) => row[i]);
    const id = JSON.stringify(key);
    if (!groups.has(id)) groups.set(id, { key, points: [] });
    const value = row[vi];
    if (value === null || value === undefined || Number.isNaN(Number(value))) return;
    groups.get(id).points.push({
      t: parseTime(row[ti], n), label: row[ti], v: Number(value),
      anomaly: String(row[pi]) === cfg.anomaly,
    });
  });
  const list = [...groups.values()];
  list.forEach((g) => g.points.sort((a, b) => a.t - b.t));
  const cmp = (a, b) => {
    for (let i = 0; i < a.key.length; i += 1) {
      const x = a.key[i], y = b.key[i];
      if (x === y) continue;
      if (typeof x === "number" && typeof y === "number") return x - y;
      return String(x).localeCompare(String(y), undefined, { numeric: true });
    }
    return 0;
  };
  return list.sort(cmp);
}

function label(key) { return cfg.group.map((name, i) => `${name} ${key[i]}`).join(" · "); }

function chart(series) {
  const width = 440, height = 150, padL = 40, padR = 8, padT = 8, padB = 18;
  const points = series.points;
  const node = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%",
                            class: "sensor-chart", role: "img",
                            "aria-label": `${label(series.key)} values over time` });
  if (!points.length) return node;
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  let vmin = Math.min(...points.map((p) => p.v)), vmax = Math.max(...points.map((p) => p.v));
  if (vmin === vmax) { vmin -= 1; vmax += 1; }
  const x = (t) => padL + (t1 > t0 ? ((t - t0) / (t1 - t0)) : 0.5) * (width - padL - padR);
  const y = (v) => padT + (1 - (v - vmin) / (vmax - vmin)) * (height - padT - padB);
  node.appendChild(svg("rect", { x: padL, y: padT, width: width - padL - padR,
                                 height: height - padT - padB, class: "plot" }));
  [vmin, vmax].forEach((v) => {
    const text = svg("text", { x: padL - 4, y: y(v) + 4, "text-anchor": "end", class: "axis" });
    text.textContent = String(Math.round(v * 100) / 100);
    node.appendChild(text);
  });
  [[points[0], "start"], [points[points.length - 1], "end"]].forEach(([p, anchor]) => {
    const text = svg("text", { x: anchor === "start" ? padL : width - padR, y: height - 4,
                               "text-anchor": anchor, class: "axis" });
    text.textContent = String(p.label).replace("T", " ").slice(0, 19);
    node.appendChild(text);
  });
  const line = points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  node.appendChild(svg("polyline", { points: line, class: "values" }));
  points.filter((p) => p.anomaly).forEach((p) => {
    const mark = svg("circle", { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 3,
                                 class: "anomaly", fill: "#d32f2f" });
    const title = svg("title");
    title.textContent = `${p.label}: ${p.v} (anomaly)`;
    mark.appendChild(title);
    node.appendChild(mark);
  });
  return node;
}

function render(jobId, all, rows) {
  const anomalies = (s) => s.points.filter((p) => p.anomaly).length;
  const total = all.reduce((n, s) => n + anomalies(s), 0);
  $("#job-id").textContent = `job ${jobId}`;
  $("#summary").textContent = `${rows.length} readings of ${all.length} sensor(s); ` +
    `${total} flagged as anomalies`;
  $("#counts tbody").replaceChildren(...all.map((s) => {
    const tr = el("tr");
    tr.dataset.sensor = JSON.stringify(s.key);
    const n = anomalies(s);
    tr.appendChild(el("td", label(s.key)));
    tr.appendChild(el("td", s.points.length));
    tr.appendChild(el("td", n, n ? "anomalies" : ""));
    tr.appendChild(el("td", s.points.length ? `${((100 * n) / s.points.length).toFixed(1)}%` : ""));
    return tr;
  }));
  $("#charts").replaceChildren(...all.map((s) => {
    const figure = el("figure", null, "sensor");
    figure.dataset.sensor = JSON.stringify(s.key);
    figure.dataset.anomalies = String(anomalies(s));
    figure.appendChild(el("figcaption", `${label(s.key)}: ${anomalies(s)} anomalies of ` +
                                        `${s.points.length} readings`));
    figure.appendChild(chart(s));
    return figure;
  }));
}

async function load() {
  $("#error").hidden = true;
  try {
    const jobId = await chooseJob();
    $("#job-id").textContent = `job ${jobId}`;
    const { columns, rows } = await fetchRows(jobId);
    render(jobId, groupSeries(columns, rows), rows);
    $("#status").textContent = `${rows.length} rows`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    $("#error").textContent = error.message;
    $("#error").hidden = false;
    $("#status").textContent = "error";
    document.body.dataset.loaded = "error";
  }
}

load();
