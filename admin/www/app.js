// app.js — the Plexus dashboard: plain JavaScript over the admin API.
//
// It logs in with basic auth (the credentials stay in sessionStorage for
// this tab only), polls the API every two seconds for the visible tab, and
// draws the overview's message rates on a canvas. Every value the broker
// sends is put into the page as text, never as HTML.
"use strict";

const POLL_MS = 2000;
const HISTORY = 60; // points on the rate chart
let auth = sessionStorage.getItem("plexus-auth");
let tab = "overview";
let timer = null;
const history = [];

async function api(method, path, body, headers) {
  const opts = { method, headers: Object.assign({ Authorization: auth }, headers || {}) };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  if (r.status === 401) {
    showLogin("Your login was refused.");
    throw new Error("not authorised");
  }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((data && data.reason) || r.statusText);
  return data;
}

const q = (name) => encodeURIComponent(name);
const $ = (id) => document.getElementById(id);

function cell(tr, value, cls) {
  const td = document.createElement("td");
  td.textContent = value === undefined || value === null ? "" : String(value);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function button(td, label, onClick, cls) {
  const b = document.createElement("button");
  b.textContent = label;
  if (cls) b.className = cls;
  b.addEventListener("click", onClick);
  td.appendChild(b);
  return b;
}

function fill(tableId, rows, render) {
  const tbody = $(tableId).querySelector("tbody");
  tbody.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    render(tr, row);
    tbody.appendChild(tr);
  }
}

const rate = (stats, key) => (stats && stats[key + "_details"] ? stats[key + "_details"].rate.toFixed(1) : "0.0");

function report(err) {
  $("error").textContent = err ? String(err.message || err) : "";
}

// ------------------------------------------------------------------ tabs

async function refreshOverview() {
  const o = await api("GET", "/api/overview");
  $("node").textContent = o.node + " · " + o.product_name + " " + o.product_version;
  $("t-queues").textContent = o.object_totals.queues;
  $("t-ready").textContent = o.queue_totals.messages_ready;
  $("t-unacked").textContent = o.queue_totals.messages_unacknowledged;
  $("t-connections").textContent = o.object_totals.connections;
  $("t-consumers").textContent = o.object_totals.consumers;
  const m = o.message_stats;
  history.push({ pub: m.publish_details.rate, del: m.deliver_get_details.rate });
  if (history.length > HISTORY) history.shift();
  $("rates").textContent = `publish ${rate(m, "publish")}/s, deliver ${rate(m, "deliver_get")}/s, ` +
    `ack ${rate(m, "ack")}/s; ${m.publish} published in all`;
  drawChart();
}

function drawChart() {
  const c = $("chart");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...history.map((p) => Math.max(p.pub, p.del)));
  g.strokeStyle = "#e4e7ec";
  g.beginPath();
  g.moveTo(0, c.height - 0.5);
  g.lineTo(c.width, c.height - 0.5);
  g.stroke();
  for (const [key, color] of [["pub", "#3b5bdb"], ["del", "#2f9e44"]]) {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    history.forEach((p, i) => {
      const x = (i / (HISTORY - 1)) * c.width;
      const y = c.height - 4 - (p[key] / max) * (c.height - 20);
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
  }
  g.fillStyle = "#667085";
  g.fillText(max.toFixed(0) + "/s", 4, 12);
}

async function refreshQueues() {
  const queues = await api("GET", "/api/queues");
  fill("queue-table", queues, (tr, x) => {
    tr.dataset.queue = x.name;
    cell(tr, x.name);
    cell(tr, x.messages_ready, "num ready");
    cell(tr, x.messages_unacknowledged, "num");
    cell(tr, x.consumers, "num");
    cell(tr, rate(x.message_stats, "publish"), "num");
    cell(tr, rate(x.message_stats, "deliver_get"), "num");
    const td = cell(tr, "");
    button(td, "Purge", () => act("DELETE", `/api/queues/%2F/${q(x.name)}/contents`), "purge");
    button(td, "Delete", () => {
      if (confirm(`Delete queue ${x.name}?`)) act("DELETE", `/api/queues/%2F/${q(x.name)}`);
    }, "danger");
  });
}

async function refreshExchanges() {
  const [exchanges, bindings] = await Promise.all([api("GET", "/api/exchanges"), api("GET", "/api/bindings")]);
  fill("exchange-table", exchanges, (tr, x) => {
    cell(tr, x.name || "(default)");
    cell(tr, x.type);
    cell(tr, x.durable ? "yes" : "no");
    cell(tr, x.auto_delete ? "yes" : "no");
  });
  fill("binding-table", bindings.filter((b) => b.source !== ""), (tr, b) => {
    cell(tr, b.source);
    cell(tr, b.destination);
    cell(tr, b.destination_type);
    cell(tr, b.routing_key);
    cell(tr, Object.keys(b.arguments).length ? JSON.stringify(b.arguments) : "");
  });
}

async function refreshConnections() {
  const conns = await api("GET", "/api/connections");
  fill("connection-table", conns, (tr, c) => {
    cell(tr, c.name);
    cell(tr, c.user);
    cell(tr, c.client_properties.container_id);
    cell(tr, c.links, "num");
    cell(tr, c.recv_cnt, "num");
    cell(tr, c.send_cnt, "num");
    const td = cell(tr, "");
    button(td, "Close", () => act("DELETE", `/api/connections/${q(c.name)}`, undefined,
      { "X-Reason": "closed from the dashboard" }), "danger");
  });
}

function treeLines(node, indent, last, root, out) {
  const what = node.strategy ? `(${node.strategy})` : `[${node.behaviour || "?"}]`;
  out.push(`${indent}${root ? "" : last ? "└── " : "├── "}${node.id} ${what} ${node.pid || "-"}` +
    `  restarts ${node.restarts || 0}, mailbox ${node.mailbox || 0}`);
  const kids = node.children || [];
  const sub = indent + (root ? "" : last ? "    " : "│   ");
  kids.forEach((k, i) => treeLines(k, sub, i === kids.length - 1, false, out));
}

async function refreshTree() {
  const root = await api("GET", "/api/supervisors");
  const lines = [];
  treeLines(root, "", true, true, lines);
  $("tree-view").textContent = lines.join("\n");
}

const refreshers = {
  overview: refreshOverview, queues: refreshQueues, exchanges: refreshExchanges,
  connections: refreshConnections, tree: refreshTree,
};

async function refresh() {
  try {
    await refreshers[tab]();
    if (tab !== "overview") await refreshOverview(); // the chart keeps its history
    report(null);
  } catch (e) {
    if (e.message !== "not authorised") report(e);
  }
}

async function act(method, path, body, headers) {
  try {
    await api(method, path, body, headers);
    report(null);
  } catch (e) {
    report(e);
  }
  refresh();
}

function show(name) {
  tab = refreshers[name] ? name : "overview";
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== tab;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === tab);
  refresh();
}

// ----------------------------------------------------------------- login

function showLogin(message) {
  clearInterval(timer);
  timer = null;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  show(location.hash.slice(1));
  if (!timer) timer = setInterval(refresh, POLL_MS);
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  auth = "Basic " + btoa(`${f.user.value}:${f.password.value}`);
  try {
    await api("GET", "/api/whoami");
    sessionStorage.setItem("plexus-auth", auth);
    start();
  } catch (e) {
    if (e.message !== "not authorised") showLogin(e.message);
  }
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem("plexus-auth");
  auth = null;
  showLogin();
});

$("declare-queue").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const args = {};
  if (f.max.value !== "") args["x-max-length"] = Number(f.max.value);
  act("PUT", `/api/queues/%2F/${q(f.name.value)}`, { durable: f.durable.checked, arguments: args });
  f.name.value = "";
});

window.addEventListener("hashchange", () => show(location.hash.slice(1)));

if (auth) start(); else showLogin();
