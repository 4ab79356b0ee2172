// Review Lab console: fills the server-drawn diagram from the live stream (/api/events, SSE),
// keeps the event feed, draws the charts (uPlot, served by the console) and starts chaos runs.
"use strict";

const $ = (id) => document.getElementById(id);
let previous = {};
const fmt = (value, digits = 0) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
const percent = (value) => (value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`);

function figureText(node, state) {
  const f = node.figures || {};
  switch (node.kind) {
    case "web":
      return `${fmt(f.req_s, 1)}/s · p99 ${fmt(f.p99_ms)}ms · ${percent(f.share)}`;
    case "postgres":
      if (node.role === "primary") return "takes the writes";
      return `lag ${fmt(f.lag_bytes)} B · ${fmt(f.lag_s, 1)} s`;
    case "edge":
      return `hit ${percent(f.hit_ratio)} · origin ${fmt(f.origin_s, 2)}/s`;
    case "redis": {
      const q = state.queue;
      return `stream ${fmt(q.depth)} · pend ${fmt(q.pending)} · dead ${fmt(q.dead)}`;
    }
    case "worker":
      return `cutouts ${fmt(state.queue.cutouts_s, 2)}/s (all)`;
    default:
      return "";
  }
}

function slug(text) {
  return String(text).replace(/[^a-z0-9]+/gi, "-").toLowerCase();
}

function render(state) {
  for (const [name, node] of Object.entries(state.nodes)) {
    const box = $(`node-${name}`);
    if (!box) continue;
    const before = previous[name];
    const classes = ["node", `kind-${node.kind}`, `state-${slug(node.state)}`, `role-${slug(node.role)}`];
    if (before && (before.state !== node.state || before.role !== node.role)) classes.push("changed");
    box.setAttribute("class", classes.join(" "));
    box.dataset.state = node.state;
    box.dataset.role = node.role;
    $(`state-${name}`).textContent = node.state;
    $(`role-${name}`).textContent = node.role;
    $(`fig-${name}`).textContent = figureText(node, state);
    const title = box.querySelector("title");
    if (title && node.detail) title.textContent = `${name}: ${node.state}: ${node.detail}`;
  }
  previous = state.nodes;
  for (const [shard, figures] of Object.entries(state.shards)) {
    const label = $(`fig-cluster-${shard}`);
    if (label) label.textContent = ` · ${fmt(figures.writes_s, 1)} writes/s`;
  }
  const lb = state.lb;
  $("lb-mode").textContent = lb ? `load balancer: ${lb.layer} ${lb.algorithm}` : "load balancer: unknown";
  const q = state.queue;
  $("queue").textContent = `jobs ${fmt(q.depth)} · pending ${fmt(q.pending)} · dead ${fmt(q.dead)}`;
  const metrics = $("metrics-status");
  metrics.textContent = state.metrics.available ? "metrics: live" : "metrics unavailable";
  metrics.className = state.metrics.available ? "pill" : "pill bad";
  metrics.title = state.metrics.problem || "";
  $("updated").textContent = `refreshed ${new Date(state.at * 1000).toLocaleTimeString()} in ${state.refresh_ms} ms`;
}

function addEvent(event) {
  const list = $("events");
  const item = document.createElement("li");
  item.className = `kind-${event.kind}`;
  const when = document.createElement("time");
  when.textContent = new Date(event.at * 1000).toLocaleTimeString();
  item.append(when, event.text);
  list.prepend(item);
  while (list.children.length > 200) list.lastChild.remove();
  if (event.kind === "chaos") refreshChaos();
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("history", (e) => JSON.parse(e.data).forEach(addEvent));
  source.addEventListener("state", (e) => render(JSON.parse(e.data)));
  source.addEventListener("event", (e) => addEvent(JSON.parse(e.data)));
  source.onerror = () => { $("updated").textContent = "console not answering: reconnecting"; };
}

const charts = {};
const CHART_TITLES = { throughput: "requests/s per web server", p99: "p99 per web server (ms)", lag: "replica lag (bytes)", hit_ratio: "edge hit ratio" };
const COLOURS = ["#0b5394", "#2e7d32", "#c62828", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#ad1457", "#455a64"];

async function drawCharts() {
  const status = $("charts-status");
  let body;
  try {
    const reply = await fetch("/api/series?minutes=10");
    body = await reply.json();
    if (!reply.ok) throw new Error(body.error ? body.error.message : reply.statusText);
  } catch (err) {
    status.textContent = `metrics unavailable: ${err.message}`;
    return;
  }
  status.textContent = `every 5 s, from Prometheus`;
  if (typeof uPlot === "undefined") { status.textContent = "the chart library is missing (make setup vendors it)"; return; }
  for (const [name, chart] of Object.entries(body.charts)) {
    const element = $(`chart-${name}`);
    const data = [chart.times, ...chart.values];
    const key = `${name}:${chart.names.join(",")}`;
    if (charts[name] && charts[name].key === key) { charts[name].plot.setData(data); continue; }
    if (charts[name]) charts[name].plot.destroy();
    const series = [{}, ...chart.names.map((n, i) => ({ label: n, stroke: COLOURS[i % COLOURS.length], spanGaps: false }))];
    const width = Math.max(260, element.clientWidth - 8);
    const plot = new uPlot({ title: CHART_TITLES[name] || name, width, height: 170, series, axes: [{}, { size: 60 }] }, data, element);
    charts[name] = { plot, key };
  }
}

async function refreshChaos() {
  try {
    const reply = await fetch("/api/chaos");
    const body = await reply.json();
    const select = $("chaos-scenario");
    if (!select.options.length) {
      for (const [name, about] of Object.entries(body.scenarios)) {
        const option = new Option(name, name);
        option.title = about;
        select.add(option);
      }
    }
    const run = body.run;
    const status = $("chaos-status");
    status.textContent = run ? `${run.scenario} (${run.source}): ${body.running ? run.phase : "done"}` : "no run";
    if (run && run.report && !body.running) {
      const link = document.createElement("a");
      link.href = `/reports/${run.report}`;
      link.textContent = " report";
      status.append(link);
    }
  } catch (err) {
    $("chaos-status").textContent = `chaos status unknown: ${err.message}`;
  }
}

$("chaos-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const reply = await fetch("/api/chaos", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${$("chaos-secret").value}` },
    body: JSON.stringify({ scenario: $("chaos-scenario").value }),
  });
  const body = await reply.json();
  $("chaos-status").textContent = reply.ok ? `started ${body.started}` : `refused (${reply.status}): ${body.error.message}`;
});

connect();
drawCharts();
refreshChaos();
setInterval(drawCharts, 10000);
