// actorproxy admin page: follows /api/ws and draws the supervision tree, the services' rates and the
// upstream clusters. No framework, no build step: the server pushes a whole state document, the page
// redraws what it shows from it, and keeps only what the user chose (collapsed actors, the token).

const WINDOW_SECONDS = 300; // the plots' span: the server keeps five minutes of samples
const RECENT_CRASH_SECONDS = 10; // a crashed actor stays on the tree, in red, this long
const TOKEN_KEY = "actorproxy-admin-token";

const $ = (id) => document.getElementById(id);

const view = {
  state: null,
  history: new Map(), // service -> points, oldest first
  collapsed: new Set(JSON.parse(sessionStorage.getItem("actorproxy-admin-collapsed") || "[]")),
  restarts: new Map(), // path -> restarts seen last time, to flash the ones that grew
  drawn: new Map(), // section -> the data it was last drawn from: unchanged sections are left alone
  offset: 0, // the server's clock minus ours, in seconds
};

// -- small helpers ----------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") Object.assign(node.style, value); // CSSOM: the page's CSP refuses style attributes
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.floor(seconds % 60)}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

function number(value) {
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return String(value);
}

function rate(value) {
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function millis(seconds) {
  const ms = seconds * 1000;
  return ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(2)} ms`;
}

let toastTimer = 0;
function toast(message, bad = false) {
  const node = $("toast");
  node.textContent = message;
  node.className = `toast show${bad ? " bad" : ""}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.className = "toast"; }, 3500);
}

// -- the tree ---------------------------------------------------------------------------------------------

function displayState(node) {
  if (node.state === "running" && node.last_exit_crashed && node.uptime !== null && node.uptime < RECENT_CRASH_SECONDS) {
    return "restarting"; // up again after a crash moments ago
  }
  return node.state === "exited" ? "stopping" : node.state;
}

function mailbox(node) {
  const capacity = node.mailbox_capacity;
  const share = capacity > 0 && Number.isFinite(capacity) ? Math.min(1, node.mailbox / capacity) : 0;
  const meter = el("span", { class: `meter${share > 0.8 ? " hot" : ""}`, title: `peak ${node.mailbox_peak}` },
    el("i", { style: { width: `${(share * 100).toFixed(1)}%` } }));
  return el("span", { class: "mailbox" }, `${node.mailbox}/${capacity > 1e9 ? "∞" : capacity}`, meter);
}

function toggle(path, item) {
  if (view.collapsed.has(path)) view.collapsed.delete(path);
  else view.collapsed.add(path);
  item.classList.toggle("collapsed", view.collapsed.has(path));
  sessionStorage.setItem("actorproxy-admin-collapsed", JSON.stringify([...view.collapsed]));
}

function treeItem(node, ghosts, seen) {
  seen.set(node.path, node.restarts);
  const before = view.restarts.get(node.path);
  const bumped = before !== undefined && node.restarts > before;
  const state = displayState(node);
  const children = node.children.map((child) => treeItem(child, ghosts, seen));
  for (const ghost of ghosts.get(node.path) || []) {
    if (!seen.has(ghost.path)) children.push(ghostItem(ghost));
  }
  const hasChildren = children.length > 0 || node.hidden_children > 0;
  const item = el("li", {
    role: "treeitem",
    class: view.collapsed.has(node.path) ? "collapsed" : null,
    "data-path": node.path,
    "data-state": state,
    "data-restarts": node.restarts,
  });
  const caret = el("button", {
    type: "button",
    class: `caret${hasChildren ? "" : " leaf"}`,
    "aria-label": "expand or collapse",
    // On press, not click: the tree is redrawn every second, and a click needs press and release on one element.
    onpointerdown: () => toggle(node.path, item),
  });
  const title = node.last_exit ? `${node.path}\nlast exit: ${node.last_exit}` : node.path;
  item.append(
    el("div", { class: `row${bumped ? " bumped" : ""}`, title },
      el("span", { class: "who" },
        caret,
        el("span", { class: "state-dot", "data-state": state, title: state }),
        el("span", { class: "name", text: node.name }),
        el("span", { class: "kind", text: node.kind })),
      el("span", { class: "uptime", text: duration(node.uptime) }),
      el("span", { class: `restarts${node.restarts ? " nonzero" : ""}`, text: node.restarts }),
      mailbox(node),
      el("span", { class: "processed", text: number(node.processed) })),
  );
  if (hasChildren) {
    const list = el("ul", { role: "group" }, children);
    if (node.hidden_children > 0) {
      list.append(el("li", { class: "more", text: `… and ${node.hidden_children} more` }));
    }
    item.append(list);
  }
  return item;
}

function ghostItem(ghost) {
  return el("li", { role: "treeitem", "data-path": ghost.path, "data-state": "crashed" },
    el("div", { class: "row crashed", title: `${ghost.path}\n${ghost.detail}` },
      el("span", { class: "who" },
        el("button", { type: "button", class: "caret leaf", tabindex: "-1" }),
        el("span", { class: "state-dot", "data-state": "crashed", title: "crashed" }),
        el("span", { class: "name", text: ghost.child }),
        el("span", { class: "kind", text: "crashed" })),
      el("span", { text: `${Math.floor(ghost.age)}s ago` }),
      el("span", { text: "" }),
      el("span", { text: "" }),
      el("span", { text: "" })));
}

function renderTree(state) {
  // Actors that crashed a moment ago and are gone (a connection) stay visible, in red, under their supervisor.
  const ghosts = new Map();
  for (const event of state.events) {
    const age = state.now - event.t;
    if (event.event !== "crashed" || age > RECENT_CRASH_SECONDS) continue;
    const list = ghosts.get(event.supervisor) || [];
    list.push({ ...event, age });
    ghosts.set(event.supervisor, list);
  }
  const seen = new Map();
  const items = state.tree.map((node) => treeItem(node, ghosts, seen));
  view.restarts = seen;
  $("tree").replaceChildren(...items);
}

// -- plots ------------------------------------------------------------------------------------------------

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function spanLabel(seconds) {
  return seconds >= 60 ? `-${+(seconds / 60).toFixed(1)}m` : `-${Math.round(seconds)}s`;
}

// One plot: `series` is [{values: [[t, y]...], color, label}], drawn over the last minute at least, and over
// as much of the last WINDOW_SECONDS as there is data for.
function plot(title, series, now, format) {
  const width = 300, height = 90, left = 34, bottom = 14, top = 6;
  const oldest = Math.min(now, ...series.flatMap((s) => s.values.map(([t]) => t)));
  const span = Math.min(WINDOW_SECONDS, Math.max(60, Math.ceil((now - oldest) / 60) * 60));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" });
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.map(([, y]) => y))));
  const x = (t) => left + ((t - (now - span)) / span) * (width - left - 2);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  for (const fraction of [0, 0.5, 1]) {
    const gy = y(max * fraction);
    chart.append(svg("line", { class: "gridline", x1: left, x2: width, y1: gy, y2: gy }));
    const label = svg("text", { class: "axis", x: left - 4, y: gy + 3, "text-anchor": "end" });
    label.textContent = format(max * fraction);
    chart.append(label);
  }
  for (const [offset, text] of [[span, spanLabel(span)], [span / 2, spanLabel(span / 2)], [0, "now"]]) {
    const label = svg("text", { class: "axis", x: x(now - offset), y: height - 2,
      "text-anchor": offset === span ? "start" : offset === 0 ? "end" : "middle" });
    label.textContent = text;
    chart.append(label);
  }
  let empty = true;
  for (const { values, color } of series) {
    if (values.length < 2) continue;
    empty = false;
    const points = values.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    const base = y(0).toFixed(1);
    chart.append(svg("polygon", { class: "area", fill: color,
      points: `${x(values[0][0]).toFixed(1)},${base} ${points.join(" ")} ${x(values.at(-1)[0]).toFixed(1)},${base}` }));
    chart.append(svg("polyline", { class: "line", stroke: color, points: points.join(" ") }));
  }
  if (empty) {
    const note = svg("text", { class: "empty", x: (left + width) / 2, y: height / 2, "text-anchor": "middle" });
    note.textContent = "collecting…";
    chart.append(note);
  }
  const legend = el("div", { class: "plot-title" },
    el("span", { text: title }),
    series.map((s) => el("span", {}, el("i", { style: { background: s.color } }), s.label)));
  return el("div", { class: "plot" }, legend, chart);
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function renderServices(state) {
  const cards = state.services.map((service) => {
    const points = (view.history.get(service.name) || []).filter((p) => p.t >= state.now - WINDOW_SECONDS);
    const last = points.at(-1);
    const fives = service.responses["5xx"] || 0;
    const stats = el("div", { class: "stats" },
      el("span", {}, el("b", { text: last ? rate(last.rps) : "0" }), " req/s"),
      el("span", {}, el("b", { text: number(service.requests) }), " requests"),
      el("span", {}, el("b", { text: number(fives) }), " 5xx"),
      service.connection_crashes ? el("span", {}, el("b", { text: service.connection_crashes }), " crashes") : null);
    const traffic = plot("requests / s", [
      { label: "all", color: cssVar("--plot-rate"), values: points.map((p) => [p.t, p.rps]) },
      { label: "5xx", color: cssVar("--plot-error"), values: points.map((p) => [p.t, p.errors_per_second]) },
    ], state.now, (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)));
    const timed = points.filter((p) => p.latency);
    const latency = service.latency || timed.length
      ? plot("latency", [
        { label: "p50", color: cssVar("--plot-p50"), values: timed.map((p) => [p.t, p.latency.p50]) },
        { label: "p99", color: cssVar("--plot-p99"), values: timed.map((p) => [p.t, p.latency.p99]) },
      ], state.now, (v) => millis(v).replace(" ms", ""))
      : el("div", { class: "plot muted" }, el("div", { class: "plot-title", text: "latency" }),
        el("p", { text: "Request durations are not recorded for this service." }));
    return el("div", { class: "service", "data-service": service.name },
      el("div", { class: "service-head" }, el("span", { class: "service-name", text: service.name }), stats),
      el("div", { class: "plots" }, traffic, latency));
  });
  $("services").replaceChildren(...(cards.length ? cards : [el("p", { class: "muted", text: "No proxy services." })]));
}

// -- clusters -----------------------------------------------------------------------------------------------

function healthBadge(backend) {
  if (!backend.enabled) return el("span", { class: "badge disabled", text: "disabled" });
  if (!backend.healthy) return el("span", { class: "badge down", text: "down" });
  if (backend.ejected) return el("span", { class: "badge ejected", text: "ejected" });
  return el("span", { class: "badge ready", text: "healthy" });
}

function renderClusters(state) {
  const blocks = state.clusters.map((cluster) => {
    const rows = cluster.backends.map((backend) => el("tr", {
      "data-cluster": cluster.name,
      "data-backend": backend.address,
      "data-ready": String(backend.ready),
      "data-enabled": String(backend.enabled),
    },
    el("td", { class: "addr", text: backend.address }),
    el("td", {}, healthBadge(backend)),
    el("td", { text: backend.weight }),
    el("td", { text: backend.ejections }),
    el("td", {}, el("button", {
      type: "button",
      class: "toggle",
      role: "switch",
      "aria-checked": String(backend.enabled),
      "aria-label": `${backend.enabled ? "disable" : "enable"} ${backend.address}`,
      "data-action": backend.enabled ? "disable" : "enable",
      onclick: () => setEnabled(cluster.name, backend.address, !backend.enabled),
    }))));
    const check = cluster.health_check ? cluster.health_check.replace(/HealthCheck$/, "").toLowerCase() : "none";
    return el("div", { class: "cluster", "data-cluster": cluster.name },
      el("div", { class: "cluster-head" },
        el("span", { class: "cluster-name", text: cluster.name }),
        el("span", { class: "hint", text: `${cluster.ready}/${cluster.backends.length} ready · health check: ${check}` })),
      el("table", { class: "backends" },
        el("thead", {}, el("tr", {}, ["backend", "health", "weight", "ejections", "enabled"].map((h) => el("th", { text: h })))),
        el("tbody", {}, rows)));
  });
  $("clusters").replaceChildren(...(blocks.length ? blocks : [el("p", { class: "muted", text: "No upstream clusters." })]));
}

// -- events and facts -------------------------------------------------------------------------------------

function renderEvents(state) {
  const items = [...state.events].reverse().map((event) => el("li", { "data-level": event.level },
    el("span", { class: "when", text: `${duration(Math.max(0, state.now - event.t))} ago` }),
    el("span", { class: "what", text: event.event }),
    el("span", { class: "where" }, event.path, event.detail ? el("span", { class: "detail", text: event.detail }) : null)));
  $("events").replaceChildren(...(items.length ? items : [el("li", { class: "empty", text: "No crashes or restarts so far." })]));
}

function countActors(nodes) {
  return nodes.reduce((sum, node) => sum + 1 + node.hidden_children + countActors(node.children), 0);
}

function renderFacts(state) {
  const fact = (label, value) => el("span", {}, `${label} `, el("b", { text: value }));
  const backends = state.clusters.flatMap((c) => c.backends);
  const facts = [
    fact("pid", state.pid),
    state.worker === null ? null : fact("worker", state.worker),
    fact("actors", countActors(state.tree)),
    fact("backends ready", `${backends.filter((b) => b.ready).length}/${backends.length}`),
  ];
  $("facts").replaceChildren(...facts.filter(Boolean));
}

function redraw(section, data, draw) {
  const key = JSON.stringify(data);
  if (view.drawn.get(section) === key) return;
  view.drawn.set(section, key);
  draw();
}

function render(state) {
  view.state = state;
  for (const [name, points] of Object.entries(state.history)) {
    const known = view.history.get(name) || [];
    const newest = known.length ? known.at(-1).t : -Infinity;
    const merged = known.concat(points.filter((p) => p.t > newest)).filter((p) => p.t >= state.now - WINDOW_SECONDS);
    view.history.set(name, merged);
  }
  renderFacts(state);
  renderTree(state);
  renderServices(state);
  // Redrawn only when they change, so a switch is never replaced between press and release.
  redraw("clusters", state.clusters, () => renderClusters(state));
  redraw("events", [state.events, Math.floor(state.now)], () => renderEvents(state));
}

// -- write actions ------------------------------------------------------------------------------------------

function askToken() {
  return new Promise((resolve) => {
    const dialog = $("token-dialog");
    const input = $("token-input");
    input.value = "";
    const done = (value) => { dialog.close(); resolve(value); };
    $("token-form").onsubmit = (event) => { event.preventDefault(); done(input.value); };
    $("token-cancel").onclick = () => done(null);
    dialog.showModal();
    input.focus();
  });
}

// POST with the token in the X-Admin-Token header (never a cookie or the query string); asks for it once.
async function post(path) {
  for (let attempt = 0; attempt < 2; attempt++) {
    let token = sessionStorage.getItem(TOKEN_KEY);
    if (view.state && view.state.token_required && !token) {
      token = await askToken();
      if (!token) return null;
      sessionStorage.setItem(TOKEN_KEY, token);
    }
    const response = await fetch(path, { method: "POST", headers: { "X-Admin-Token": token || "none" } });
    const body = await response.json();
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      if (view.state) view.state.token_required = true;
      if (attempt === 0) continue;
    }
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }
  return null;
}

async function setEnabled(cluster, address, enabled) {
  const path = `/api/clusters/${encodeURIComponent(cluster)}/backends/${encodeURIComponent(address)}/${enabled ? "enable" : "disable"}`;
  try {
    const result = await post(path);
    if (result) toast(`${address} ${enabled ? "enabled" : "disabled"} in ${cluster}`);
  } catch (error) {
    toast(`Could not change ${address}: ${error.message}`, true);
  }
}

async function reload() {
  try {
    const result = await post("/api/reload");
    if (!result) return;
    const lines = result.hooks.map((hook) => hook.message);
    toast(result.ok ? `Reloaded. ${lines.join("\n")}` : `Reload refused.\n${lines.join("\n")}`, !result.ok);
  } catch (error) {
    toast(`Reload failed: ${error.message}`, true);
  }
}

// -- the live connection ------------------------------------------------------------------------------------

function setLive(state, text) {
  $("live").dataset.state = state;
  $("live-text").textContent = text;
}

let retry = 500;
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/ws`);
  socket.onopen = () => { retry = 500; setLive("live", "live"); };
  socket.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "state") render(data);
  };
  socket.onclose = () => {
    setLive("reconnecting", "reconnecting");
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 8000);
  };
}

$("reload").addEventListener("click", reload);
connect();
