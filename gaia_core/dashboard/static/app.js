// The GAIA dashboard page: renders the node's updates (server-sent events from /api/events).
// Everything is built with DOM calls and textContent: names and messages from peers are never HTML.
"use strict";

const CHARTS = { cpu: ["cpu"], ram: ["ram"], gpu: ["gpu"], power: ["power"], rewards: ["earned", "granted"] };
const SVG = "http://www.w3.org/2000/svg";
const csrf = document.querySelector('meta[name="gaia-csrf"]').content;
const actions = document.querySelector('meta[name="gaia-actions"]').content === "on";
let points = [];
let interval = 1;
let lastAt = 0;
let shownJobs = "";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function short(id) { return id ? id.slice(0, 16) : ""; }

function num(value, digits) {
  if (value === null || value === undefined) return "";
  return typeof value === "number" ? value.toFixed(digits === undefined ? 0 : digits) : String(value);
}

function sig(value) {  // three significant digits: credit is often far below 1
  return typeof value === "number" ? String(Number(value.toPrecision(3))) : num(value);
}

function counts(map) {
  const parts = Object.entries(map || {}).filter(([, n]) => n).sort((a, b) => b[1] - a[1]);
  return parts.map(([k, n]) => `${k} ${n}`).join(", ") || "none";
}

function duration(seconds) {
  const s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
  const m = Math.floor(s % 3600 / 60);
  return (d ? `${d}d ` : "") + (d || h ? `${h}h ` : "") + `${m}m ${s % 60}s`;
}

function fill(tableId, rows, columns) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    const cell = el("td", "none yet", "empty");
    cell.colSpan = columns;
    const tr = el("tr");
    tr.append(cell);
    body.append(tr);
    return;
  }
  for (const cells of rows) {
    const tr = el("tr");
    for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell));
    body.append(tr);
  }
}

function chart(name) {
  const svg = document.getElementById(`chart-${name}`);
  const keys = CHARTS[name];
  const series = keys.map((k) => points.map((p) => [p.at, p[k]]).filter(([, v]) => typeof v === "number"));
  const values = series.flat().map(([, v]) => v);
  svg.replaceChildren();
  const axis = document.createElementNS(SVG, "line");
  Object.entries({ x1: 0, y1: 85, x2: 300, y2: 85, class: "axis" }).forEach(([k, v]) => axis.setAttribute(k, v));
  svg.append(axis);
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", 10);
  if (!values.length) {
    label.textContent = "no data (no benchmark plugin, or not measurable here)";
    svg.append(label);
    return;
  }
  const top = Math.max(name === "power" || name === "rewards" ? 0 : 100, ...values) || 1;
  const t0 = points[0].at, span = Math.max(points[points.length - 1].at - t0, 1);
  label.textContent = `now ${sig(values[values.length - 1])}, max ${sig(top)}`;
  svg.append(label);
  series.forEach((pts, i) => {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", `line${i}`);
    line.setAttribute("points", pts.map(([t, v]) => `${((t - t0) / span * 300).toFixed(1)},${(85 - v / top * 72).toFixed(1)}`).join(" "));
    svg.append(line);
  });
}

function card(label, value) {
  const box = el("div", null, "card");
  box.append(el("b", value), el("span", label));
  return box;
}

function progress(job) {
  const done = job.total - (job.tasks.pending || 0);
  const bar = el("div", null, "bar");
  const inner = el("i");
  inner.style.width = `${job.total ? 100 * done / job.total : 0}%`;
  bar.append(inner);
  bar.title = `${done} of ${job.total} tasks ended`;
  const td = el("td");
  td.append(bar, el("span", `${done}/${job.total}`));
  return td;
}

function trust(t) {  // the spot-check policy's view of a peer (gaia peers --json: trust)
  if (!t) return "";
  return `${t.trusted ? "trusted" : "untrusted"} (streak ${t.streak}), ${num(100 * t.check_rate, 0)} % checked`;
}

function cancelButton(job) {
  const td = el("td");
  if (!actions || job.status !== "running") return td;
  const button = el("button", "cancel");
  button.addEventListener("click", async () => {
    button.disabled = true;
    const reply = await fetch(`/api/jobs/${encodeURIComponent(job.job)}/cancel`,
      { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
    const notice = document.getElementById("notice");
    notice.hidden = reply.ok;
    notice.textContent = reply.ok ? "" : `cancel failed: ${(await reply.text()).slice(0, 300)}`;
  });
  td.append(button);
  return td;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

function render(update) {
  lastAt = update.at;
  const live = document.getElementById("live");
  live.className = update.error ? "live off" : "live";
  live.textContent = `${update.error ? "node unreachable" : "live"} · ${new Date(update.at * 1000).toLocaleTimeString()}`;
  showError(update.error || "");
  const logs = document.getElementById("logs");
  const atEnd = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
  logs.textContent = (update.logs || []).join("\n");
  if (atEnd) logs.scrollTop = logs.scrollHeight;  // follow the tail unless the reader scrolled up
  if (update.error) return;
  const s = update.status;
  document.getElementById("node-name").textContent = s.name || short(s.node_id);
  document.getElementById("node-line").textContent =
    `${s.node_id} · GAIA ${s.version} · ${s.address} · ${s.cores} core(s) · up ${duration(s.uptime_s)}`;
  const finished = Object.values(s.tasks).reduce((a, b) => a + b, 0);
  document.getElementById("cards").replaceChildren(
    card("uptime", duration(s.uptime_s)), card("peers up", `${s.peers.up}/${s.peers.total}`),
    card("queued", `${s.queue.depth}/${s.queue.capacity}`), card("running", s.running),
    card("tasks run", finished), card("jobs", counts(s.jobs)), card("outbox results", s.outbox.results));
  if (update.point && (!points.length || update.point.at > points[points.length - 1].at)) {
    points.push(update.point);
    const keep = Math.max(60, Math.round(600 / interval));
    if (points.length > keep) points = points.slice(-keep);
  }
  Object.keys(CHARTS).forEach(chart);
  const jobsKey = JSON.stringify(update.jobs);  // unchanged jobs keep their rows (and a button being clicked)
  if (jobsKey !== shownJobs) fill("jobs", update.jobs.map((j) => [el("td", short(j.job)), j.name, el("td", j.status, `status-${j.status}`),
    progress(j), counts(j.tasks), cancelButton(j)]), 6);
  shownJobs = jobsKey;
  const share = Object.entries(s.queue.share || {}).map(([who, f]) => `${short(who)} ${num(100 * f, 0)} %`).join(", ");
  const earned = s.rewards.filter((r) => r.role === "earned");
  fill("served", [
    ["running now", s.running], ["queued", `${s.queue.depth} (${s.queue.depth_bytes} bytes)`],
    ["admitted", s.queue.admitted], ["finished", counts(s.tasks)], ["rejected at admission", counts(s.admission)],
    ["share by submitter", share || "none queued"],
    ["results waiting for submitters", `${s.outbox.results} for ${s.outbox.submitters} submitter(s)`],
    ["credit earned", earned.map((r) => `${short(r.node_id)}: ${sig(r.credit)} for ${r.tasks} task(s)`).join("; ") || "none yet"],
  ], 2);
  fill("peers", update.peers.map((p) => [short(p.node_id), p.name, p.address.split("#")[0],  // no key: gaia peers
    el("td", p.state, `state-${p.state}`), num(p.rtt_ms, 2), num(p.load, 2), num((p.benchmark || {}).score, 3),
    trust(p.trust), counts(p.refused)]), 9);
  fill("verification", Object.entries(s.verification).map(([k, v]) => [k.replace("verdicts.", ""), v]), 2);
  fill("rewards", s.rewards.map((r) => [short(r.node_id), r.role, r.tasks, r.verified, sig(r.credit), r.fuel,
    num(r.energy_j, 3)]), 7);
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("history", (event) => {
    const data = JSON.parse(event.data);
    points = data.points;
    interval = data.interval;
  });
  source.onmessage = (event) => render(JSON.parse(event.data));
  source.onerror = () => {  // the browser reconnects by itself, unless the dashboard refused the stream
    const live = document.getElementById("live");
    live.className = "live off";
    live.textContent = "reconnecting to the dashboard…";
    if (source.readyState === EventSource.CLOSED) refused().then((why) => { live.textContent = why; });
  };
}

async function refused() {  // why the event stream was refused, in the dashboard's own words when it gives them
  try {
    const reply = await fetch("/api/logs", { credentials: "same-origin" });
    if (!reply.ok) return (await reply.text()).slice(0, 300);  // 403: a new token (the dashboard restarted)
    return "too many pages of this dashboard are open: close one, then reload this page";
  } catch {
    return "the dashboard stopped: start it again and open the URL it prints";
  }
}

setInterval(() => {
  if (lastAt && Date.now() / 1000 - lastAt > 5 * interval + 5) {
    const live = document.getElementById("live");
    live.className = "live off";
    live.textContent = "no update for a while";
  }
}, 2000);
connect();
