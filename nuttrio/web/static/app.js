// nuttrio dashboard: everything arrives over WS /api/v1/stream (docs/web.md); no polling.
"use strict";

let chartSpan = 3 * 3600; // seconds of chart shown at most: the hello's chart_span
const BAD = new Set(["LB", "FSD", "OVER", "RB", "OFF", "ALARM"]);
const WARN = new Set(["OB", "DISCHRG", "BYPASS", "CAL", "TRIM", "BOOST", "TEST"]);
const SYMBOL = { ok: "\u25CF", warn: "\u25B2", bad: "\u2716", none: "\u25CB" };
// driver.state values worth showing (docs/web.md): the supervisor's and a lost device's.
const DRIVER_STATES = {
  restarting: "driver restarting",
  "restart-storm": "driver restart storm",
  "reconnect.trying": "reconnecting to the device",
};
const FIGURES = [
  ["battery.charge", "Charge", (v) => `${v} %`],
  ["battery.runtime", "Runtime", (v) => formatRuntime(Number(v))],
  ["ups.load", "Load", (v) => `${v} %`],
  ["input.voltage", "Input", (v) => `${v} V`],
  ["output.voltage", "Output", (v) => `${v} V`],
];

const session = { user: null, csrf: null };
const samples = new Map(); // UPS name -> [{etime, values}]
let retryDelay = 500;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function formatRuntime(seconds) {
  if (!Number.isFinite(seconds)) return "?";
  const m = Math.floor(seconds / 60);
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m} min ${Math.round(seconds % 60)} s`;
}

function level(ups) {
  if (!ups.connected || ups.stale) return "none";
  const flags = ups.status_words.map((w) => w.flag);
  if (flags.some((f) => BAD.has(f))) return "bad";
  if (flags.some((f) => WARN.has(f))) return "warn";
  return "ok";
}

function driverState(ups) {
  const state = DRIVER_STATES[ups.variables["driver.state"]];
  return state ? ` (${state})` : "";
}

function statusText(ups) {
  if (!ups.connected) return `driver not connected${driverState(ups)}`;
  if (ups.stale) return `data stale${driverState(ups)}`;
  if (!ups.status_words.length) return "no status";
  return ups.status_words.map((w) => w.text).join(", ") + ` (${ups.status})${driverState(ups)}`;
}

function card(name) {
  const id = `ups-${name}`;
  let node = document.getElementById(id);
  if (node) return node;
  const figures = el("dl");
  for (const [variable, label] of FIGURES) {
    figures.append(el("div", {}, el("dt", {}, label), el("dd", { "data-var": variable }, "–")));
  }
  const chart = svg("svg", { class: "chart", viewBox: "0 0 1000 100", preserveAspectRatio: "none",
    role: "img", "aria-label": `battery charge and load of ${name}` });
  chart.append(svg("polyline", { class: "charge" }), svg("polyline", { class: "load" }));
  const commandSelect = el("select", { "aria-label": "instant command", class: "command" });
  const runButton = el("button", { type: "button", class: "run" }, "Run");
  const varSelect = el("select", { "aria-label": "variable to set", class: "variable" });
  const valueInput = el("input", { "aria-label": "new value", class: "value", size: "8" });
  const setButton = el("button", { type: "button", class: "set" }, "Set");
  runButton.addEventListener("click", () =>
    act(name, "instcmd", { command: commandSelect.value }, `${commandSelect.value}`));
  setButton.addEventListener("click", () =>
    act(name, "set", { variable: varSelect.value, value: valueInput.value }, `${varSelect.value}`));
  node = el("article", { class: "ups", id, "aria-labelledby": `${id}-title` },
    el("h2", { id: `${id}-title` }, name, " ", el("span", { class: "small desc" })),
    el("p", { class: "status", "aria-live": "polite" }),
    figures, chart,
    el("div", { class: "legend" }, el("span", { class: "charge" }, "\u2014 charge %"), " ",
      el("span", { class: "load" }, "\u2014 load %")),
    el("p", { class: "small clients" }),
    el("div", { class: "actions", hidden: "" }, commandSelect, runButton, varSelect, valueInput,
      setButton, el("span", { class: "result", role: "status" })));
  document.getElementById("ups-list").append(node);
  return node;
}

function fillSelect(select, names) {
  const wanted = names.join("\n");
  if (select.dataset.names === wanted) return;
  select.dataset.names = wanted;
  select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
}

function renderUps(ups) {
  const node = card(ups.name);
  node.dataset.level = level(ups);
  node.dataset.status = ups.status;
  node.dataset.driverState = ups.variables["driver.state"] || "";
  node.querySelector(".desc").textContent = ups.description || "";
  node.querySelector(".status").textContent = `${SYMBOL[level(ups)]} ${statusText(ups)}`;
  for (const [variable, , format] of FIGURES) {
    const value = ups.variables[variable];
    node.querySelector(`[data-var="${variable}"]`).textContent = value === undefined ? "–" : format(value);
  }
  const clients = ups.clients.map((c) => `${c.address}${c.username ? ` (${c.username})` : ""}`);
  node.querySelector(".clients").textContent = `Clients: ${clients.length ? clients.join(", ") : "none"}`;
  fillSelect(node.querySelector(".command"), ups.commands);
  fillSelect(node.querySelector(".variable"), ups.writable);
  node.querySelector(".actions").hidden = !session.user;
}

function drawChart(name) {
  const node = document.getElementById(`ups-${name}`);
  const points = samples.get(name) || [];
  if (!node || !points.length) return;
  const end = points[points.length - 1].etime;
  const start = Math.max(points[0].etime, end - chartSpan);
  const span = Math.max(end - start, 1);
  for (const [cls, variable] of [["charge", "battery.charge"], ["load", "ups.load"]]) {
    const coords = points
      .filter((p) => p.etime >= start && p.values[variable] !== null)
      .map((p) => `${(((p.etime - start) / span) * 1000).toFixed(1)},${(100 - p.values[variable]).toFixed(1)}`);
    if (coords.length === 1) coords.push(`1000,${coords[0].split(",")[1]}`); // one point: a level line
    node.querySelector(`polyline.${cls}`).setAttribute("points", coords.join(" "));
  }
}

function addSample(sample) {
  const list = samples.get(sample.ups) || [];
  list.push(sample);
  while (list.length && list[0].etime < sample.etime - chartSpan) list.shift();
  samples.set(sample.ups, list);
}

function addEvent(event) {
  const when = new Date(event.etime * 1000).toLocaleTimeString();
  const text = `${event.ups ? `${event.ups}: ` : ""}${event.message}`;
  const item = el("li", { "data-kind": event.kind }, el("time", { datetime: event.time }, when), text);
  const list = document.getElementById("events");
  list.prepend(item);
  while (list.children.length > 200) list.lastChild.remove();
}

function renderVerdict(verdict) {
  const box = document.getElementById("verdict");
  box.hidden = verdict === null;
  if (verdict === null) return;
  box.querySelector(".summary").textContent =
    `${verdict.shutdown_now ? "Would shut down now" : "No shutdown now"}: ` +
    `${verdict.fed} power supplies fed, MINSUPPLIES ${verdict.minsupplies} (${verdict.phase.toLowerCase()})`;
  box.querySelector(".systems").replaceChildren(...verdict.ups.map((v) =>
    el("li", {}, `${v.system}: ${v.critical ? "CRITICAL" : "ok"}: ${v.reason}`)));
}

const HANDLERS = {
  hello(message) {
    refreshSession(); // a restarted nuttrio has forgotten the sessions
    document.getElementById("ups-list").replaceChildren();
    document.getElementById("events").replaceChildren();
    samples.clear();
    chartSpan = message.chart_span ?? chartSpan;
    message.samples.forEach(addSample);
    message.ups.forEach((ups) => { renderUps(ups); drawChart(ups.name); });
    message.events.forEach(addEvent);
    renderVerdict(message.verdict);
  },
  ups(message) { renderUps(message.ups); },
  removed(message) { document.getElementById(`ups-${message.name}`)?.remove(); },
  event(message) { addEvent(message.event); },
  sample(message) { addSample(message.sample); drawChart(message.sample.ups); },
  verdict(message) { renderVerdict(message.verdict); },
};

function setLive(on) {
  const live = document.getElementById("live");
  live.className = `live ${on ? "on" : "off"}`;
  live.textContent = on ? "live" : "reconnecting…";
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/api/v1/stream`);
  ws.addEventListener("open", () => { retryDelay = 500; setLive(true); });
  ws.addEventListener("message", (e) => {
    const message = JSON.parse(e.data);
    HANDLERS[message.type]?.(message);
  });
  ws.addEventListener("close", () => {
    setLive(false);
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  });
}

async function api(path, body) {
  const headers = { "content-type": "application/json" };
  if (session.csrf) headers["x-csrf-token"] = session.csrf;
  const reply = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), credentials: "same-origin" });
  return { ok: reply.ok, data: await reply.json() };
}

async function act(name, kind, body, what) {
  const result = document.querySelector(`#ups-${CSS.escape(name)} .result`);
  result.textContent = `${what}: sending…`;
  const { ok, data } = await api(`/api/v1/ups/${encodeURIComponent(name)}/${kind}`, body);
  result.textContent = `${what}: ${ok ? data.result : data.error}`;
}

function showSession(user, csrf) {
  session.user = user;
  session.csrf = csrf;
  document.getElementById("login").hidden = !!user;
  document.getElementById("user").hidden = !user;
  document.querySelector("#user .name").textContent = user || "";
  document.querySelectorAll(".ups .actions").forEach((a) => { a.hidden = !user; });
}

function refreshSession() {
  fetch("/api/v1/session", { credentials: "same-origin" })
    .then((r) => r.json())
    .then((s) => showSession(s.username, s.csrf));
}

function setUp() {
  const form = document.getElementById("login");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fields = new FormData(form);
    const { ok, data } = await api("/api/v1/login",
      { username: fields.get("username"), password: fields.get("password") });
    form.querySelector(".error").textContent = ok ? "" : data.message;
    if (ok) { form.reset(); showSession(data.username, data.csrf); }
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await api("/api/v1/logout", {});
    showSession(null, null);
  });
  connect();
}

setUp();
