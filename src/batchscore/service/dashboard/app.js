// batchscore dashboard: polls the REST API (/api/v1) every 2 seconds; no build step.
"use strict";

let selectedJob = null;
let logs = null;
let lastRuns = [];
let shownQuality = null;  // the run whose quality report is on the page

bindToken(refresh);

function stateCell(state) { return el("td", state, `state state-${state}`); }

function bar(done, total) {
  const td = el("td");
  const outer = el("span", null, "bar");
  const inner = el("span");
  inner.style.width = `${total ? Math.round((100 * done) / total) : 0}%`;
  outer.appendChild(inner);
  td.appendChild(outer);
  td.appendChild(document.createTextNode(` ${done}/${total}`));
  return td;
}

function when(t) { return t ? new Date(t * 1000).toLocaleTimeString() : ""; }

function fill(table, rows) {
  const body = $(table + " tbody");
  body.replaceChildren(...rows);
}

function renderRuns(runs) {
  lastRuns = runs;
  fill("#runs", runs.map((run) => {
    const tr = el("tr", null, run.job_id ? "clickable" : "");
    tr.dataset.run = run.id;
    tr.appendChild(el("td", run.id));
    tr.appendChild(el("td", run.pipeline));
    tr.appendChild(el("td", run.params.input || ""));
    tr.appendChild(stateCell(run.state));
    const job = run.job;
    tr.appendChild(job ? bar(job.items_succeeded + (job.items_in_progress || 0), job.items_total) : el("td", run.reason || "", "error"));
    tr.appendChild(el("td", run.created_by || ""));
    tr.appendChild(el("td", when(run.created_at)));
    if (run.job_id) tr.addEventListener("click", () => select(run.job_id));
    return tr;
  }));
}

function renderJobs(jobs) {
  fill("#jobs", jobs.map((job) => {
    const tr = el("tr", null, "clickable");
    tr.dataset.job = job.id;
    tr.appendChild(el("td", job.id));
    tr.appendChild(el("td", job.name));
    tr.appendChild(stateCell(job.display_state));
    tr.appendChild(bar(job.items_succeeded + job.items_failed + (job.items_in_progress || 0), job.items_total));
    tr.appendChild(el("td", `${job.items_succeeded} ok, ${job.items_failed} failed`));
    tr.appendChild(el("td", when(job.created_at)));
    tr.addEventListener("click", () => select(job.id));
    return tr;
  }));
}

function renderTriggers(triggers) {
  fill("#triggers", triggers.map((t) => {
    const tr = el("tr");
    tr.appendChild(el("td", t.name));
    tr.appendChild(el("td", t.kind));
    tr.appendChild(el("td", t.kind === "schedule" ? t.cron : `${t.prefix}${t.pattern}`));
    tr.appendChild(el("td", t.pipeline));
    tr.appendChild(el("td", t.last_error || "ok", t.last_error ? "error" : ""));
    tr.appendChild(el("td", t.runs.map((r) => `${r.input || r.id} (${r.state})`).join(", ")));
    return tr;
  }));
}

// Batch endpoints: one row per deployment, the default marked; its own errors stay here.
async function refreshEndpoints() {
  try {
    const endpoints = await get(`${API}/endpoints`);
    const rows = [];
    for (const ep of endpoints) {
      const deployments = await get(`${API}/endpoints/${encodeURIComponent(ep.name)}/deployments`);
      if (!deployments.length) {
        const tr = el("tr");
        tr.dataset.endpoint = ep.name;
        tr.appendChild(el("td", ep.name));
        tr.appendChild(el("td", "(no deployments yet)", "muted"));
        for (let i = 0; i < 4; i++) tr.appendChild(el("td", ""));
        rows.push(tr);
      }
      for (const d of deployments) {
        const jobs = await get(`${API}/endpoints/${encodeURIComponent(ep.name)}/deployments/${encodeURIComponent(d.name)}/jobs`);
        const tr = el("tr");
        tr.dataset.endpoint = ep.name;
        tr.dataset.deployment = d.name;
        tr.appendChild(el("td", ep.name));
        tr.appendChild(el("td", d.name));
        tr.appendChild(el("td", d.is_default ? "default" : ""));
        tr.appendChild(el("td", d.kind));
        tr.appendChild(el("td", d.model || ""));
        tr.appendChild(el("td", jobs.map((r) => `${r.job_id || r.id} (${(r.job && r.job.state) || r.state})`).join(", ")));
        rows.push(tr);
      }
    }
    fill("#endpoints", rows);
  } catch (error) {
    fill("#endpoints", [el("tr", `error: ${error.message}`, "error")]);
  }
}

// Events: anomalies of the scoring services; the ones going on are listed on top, in red.
function renderEvents(events, ongoing) {
  const open = ongoing.length;
  $("#events-summary").textContent = open ? `${open} anomal${open === 1 ? "y" : "ies"} going on`
    : (events.length ? "nothing going on" : "none yet");
  $("#events-summary").className = open ? "alert-count" : "muted";
  $("#ongoing").replaceChildren(...ongoing.map((e) => {
    const li = el("li", null, `sev-${e.severity}`);
    li.dataset.event = e.id;
    li.appendChild(el("strong", `${e.subject} · ${e.kind}`));
    li.appendChild(document.createTextNode(` since ${when(e.created_at)}: ${e.message}`));
    return li;
  }));
  fill("#events", events.map((e) => {
    const tr = el("tr", null, `event event-${e.state}${e.ongoing ? " ongoing" : ""}`);
    tr.dataset.event = e.id;
    tr.title = JSON.stringify(e.details, null, 1);
    tr.appendChild(el("td", when(e.created_at)));
    tr.appendChild(el("td", e.severity, `sev sev-${e.severity}`));
    tr.appendChild(el("td", e.source));
    tr.appendChild(el("td", e.subject));
    tr.appendChild(el("td", e.kind));
    tr.appendChild(el("td", e.ongoing ? "ongoing" : e.state));
    tr.appendChild(el("td", e.message));
    return tr;
  }));
}

function renderMinibatches(mbs) {
  const counts = {};
  mbs.forEach((m) => { counts[m.state] = (counts[m.state] || 0) + 1; });
  const workers = new Set(mbs.map((m) => m.worker).filter(Boolean));
  $("#mb-summary").textContent = Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ")
    + ` on ${workers.size} worker(s)`;
  fill("#minibatches", mbs.map((m) => {
    const tr = el("tr");
    tr.appendChild(el("td", m.idx));
    tr.appendChild(stateCell(m.state));
    tr.appendChild(el("td", m.attempts));
    tr.appendChild(el("td", m.worker || ""));
    const secs = m.started_at && m.finished_at ? (m.finished_at - m.started_at).toFixed(2) : "";
    tr.appendChild(el("td", secs));
    tr.appendChild(el("td", m.error ? m.error.trim().split("\n").pop() : "", "error"));
    return tr;
  }));
}

function renderChart(mbs, frames) {
  const svg = $("#chart");
  const NS = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const series = [
    { name: "mini-batch s", color: "#42a5f5",
      values: mbs.filter((m) => m.started_at && m.finished_at).map((m) => m.finished_at - m.started_at) },
    { name: "ms/frame", color: "#ef6c00", values: frames.map((f) => f.ms_per_frame) },
  ].filter((s) => s.values.length);
  const width = 460, height = 180, pad = 24;
  series.forEach((s, k) => {
    const max = Math.max(...s.values, 1e-9);
    const w = (width - 2 * pad) / s.values.length;
    const band = (height - 2 * pad) / series.length;
    const top = pad + k * band;
    s.values.forEach((v, i) => {
      const h = Math.max(1, (v / max) * (band - 14));
      const rect = document.createElementNS(NS, "rect");
      rect.setAttribute("x", pad + i * w);
      rect.setAttribute("y", top + band - h);
      rect.setAttribute("width", Math.max(1, w - 1));
      rect.setAttribute("height", h);
      rect.setAttribute("fill", s.color);
      const title = document.createElementNS(NS, "title");
      title.textContent = `${s.name} #${i}: ${v.toFixed(2)}`;
      rect.appendChild(title);
      svg.appendChild(rect);
    });
    const label = document.createElementNS(NS, "text");
    label.setAttribute("x", pad);
    label.setAttribute("y", top + 10);
    label.setAttribute("font-size", "11");
    label.textContent = `${s.name} (max ${max.toFixed(2)})`;
    svg.appendChild(label);
  });
}

function renderLogs() {
  const select = $("#log-file");
  if (!logs) return;
  const files = { events: logs.events.map((e) => JSON.stringify(e)).join("\n"),
                  errors: logs.errors,
                  timings: logs.timings.map((e) => JSON.stringify(e)).join("\n"),
                  ...logs.worker_logs };
  const current = select.value || "events";
  select.replaceChildren(...Object.keys(files).map((name) => el("option", name)));
  select.value = current in files ? current : "events";
  $("#log").textContent = files[select.value] || "(empty)";
}
$("#log-file").addEventListener("change", renderLogs);

// A video-style run's quality report and contact sheet (GET /runs/{id}/quality, /contact.png).
function fixed(v, digits) { return v === null || v === undefined ? "-" : Number(v).toFixed(digits); }

async function renderQuality() {
  const run = lastRuns.find((r) => r.job_id === selectedJob);
  const box = $("#quality");
  if (!run || run.pipeline !== "video-style" || run.state !== "succeeded") {
    box.hidden = true;
    shownQuality = null;
    return;
  }
  if (shownQuality === run.id) return;
  let report;
  try { report = await get(`${API}/runs/${run.id}/quality`); } catch (e) { box.hidden = true; return; }
  const s = report.summary, st = report.settings, t = report.time || {};
  $("#quality-run").textContent = `run ${run.id}`;
  $("#quality-settings").textContent = `style ${st.style}, strength ${st.strength}, max-size ${st.max_size || "video size"}`
    + (st.network_size ? ` (network ${st.network_size[0]}x${st.network_size[1]})` : "")
    + `, smoothing ${st.smoothing ? "on" : "off"}`
    + (t.seconds !== undefined ? `, ${fixed(t.seconds, 1)} s (${fixed(t.frames_per_second, 1)} frames/s)` : "");
  $("#quality-summary").textContent = `content kept ${fixed(s.content_kept, 2)}, style matched ${fixed(s.style_matched, 2)}, `
    + `warping error ${fixed(s.warping_error, 5)} (input ${fixed(s.input_warping_error, 5)})`;
  fill("#quality-frames", report.frames.map((f) => {
    const tr = el("tr");
    [f.frame, fixed(f.time, 1), fixed(f.content_kept, 2), fixed(f.style_matched, 2),
     fixed(f.warping_error, 5), fixed(f.input_warping_error, 5)].forEach((v) => tr.appendChild(el("td", v)));
    return tr;
  }));
  const token = tokenInput.value.trim();
  const response = await fetch(`${API}/runs/${run.id}/contact.png`,
    { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const img = $("#contact-sheet");
  if (img.src) URL.revokeObjectURL(img.src);
  img.hidden = !response.ok;
  if (response.ok) img.src = URL.createObjectURL(await response.blob());
  shownQuality = run.id;
  box.hidden = false;
}

async function select(jobId) {
  selectedJob = jobId;
  $("#detail").hidden = false;
  await refreshDetail();
}

async function refreshDetail() {
  if (!selectedJob) return;
  const [job, mbs, jobLogs] = await Promise.all([
    get(`${API}/jobs/${selectedJob}`), get(`${API}/jobs/${selectedJob}/minibatches`),
    get(`${API}/jobs/${selectedJob}/logs`)]);
  $("#detail-id").textContent = `${job.id} (${job.display_state})`;
  $("#detail-reason").textContent = job.reason || "";
  logs = jobLogs;
  renderMinibatches(mbs);
  renderChart(mbs, jobLogs.frames || []);
  renderLogs();
  await renderQuality();
}

async function refresh() {
  try {
    const [health, runs, jobs, triggers, events, ongoing] = await Promise.all([
      get("/healthz"), get(`${API}/runs`), get(`${API}/jobs`), get(`${API}/triggers`),
      get(`${API}/events?limit=50`), get(`${API}/events/ongoing`)]);
    $("#health").textContent = `${health.status}: ${health.runs_active} run(s) active`;
    renderEvents(events, ongoing);
    renderRuns(runs);
    renderJobs(jobs);
    renderTriggers(triggers);
    await refreshEndpoints();
    if (!selectedJob && jobs.length) selectedJob = jobs[0].id, $("#detail").hidden = false;
    await refreshDetail();
    document.body.dataset.loaded = "true";
  } catch (error) {
    $("#health").textContent = `error: ${error.message}`;
  }
}

refresh();
setInterval(refresh, 2000);
