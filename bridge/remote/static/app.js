// The ailive web surface: draws the state the bridge sends about ten times a second,
// and sends arm, disarm, kill and channel modes over the same WebSocket. Every command
// is checked by the bridge (the same gate as MQTT commands); the page only shows the answer.

const $ = (id) => document.getElementById(id);
const METER_FLOOR_DB = -60;
const STALE_MS = 1500; // no state for this long: the numbers on screen are old, say so
const TOKEN_KEY = "ailive-token";

let socket = null;
let retryMs = 500;
let nextId = 1;
// Each command id is used once per bridge run (a second use is refused as a replay): this page's own prefix.
const PAGE_ID = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, "0")).join("");
let lastStateAt = 0;
let tokenRequired = false;
const strips = new Map(); // desk channel -> its elements

// ----- the command token -------------------------------------------------------------

function takeTokenFromUrl() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname); // out of the address bar and the history
  }
}

function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

// The token rides in the handshake too, as a subprotocol: the bridge keeps slots for pages that hold it.
function protocols() {
  const held = token();
  if (!held) return ["ailive"];
  const hex = Array.from(new TextEncoder().encode(held), (b) => b.toString(16).padStart(2, "0")).join("");
  return ["ailive", `ailive-token.${hex}`];
}

function askForToken(why) {
  $("token-form").hidden = false;
  if (why) say(why, "bad");
  $("token").focus();
}

// ----- talking to the bridge ---------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`, protocols());
  socket.onopen = () => {
    retryMs = 500;
  };
  socket.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "state") render(message);
    else if (message.type === "result") answered(message);
    else if (message.type === "hello") hello(message);
  };
  socket.onclose = () => {
    document.body.classList.add("offline");
    showBanner(`No connection to the bridge; retrying in ${(retryMs / 1000).toFixed(1)} s. What you see is old.`);
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  };
}

function hello(message) {
  tokenRequired = message.token_required;
  $("show").textContent = message.show;
  document.title = `ailive ${message.show}`;
  if (tokenRequired && !token()) askForToken("This bridge wants its command token before it takes commands.");
  else if (tokenRequired && !message.authenticated) askForToken("The token saved in this browser is not this bridge's.");
}

function send(command, extra = {}) {
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    say("Not connected to the bridge: nothing was sent.", "bad");
    return;
  }
  const body = { command, id: `w${PAGE_ID}-${nextId++}`, ...extra };
  if (token()) body.token = token();
  socket.send(JSON.stringify(body));
  say(`${command}: sent`, "");
}

function done(result) {
  const same = result.detail === "no change";
  switch (result.command) {
    case "arm":
      return same ? "Already armed." : `Armed: ${result.detail}.`;
    case "disarm":
      return same ? "Already disarmed." : "Disarmed: every fader stays where it is.";
    case "kill":
      return same ? "Kill: nothing to restore." : `Killed: ${result.detail}.`;
    default: {
      const strip = strips.get(result.ch);
      return `Ch ${result.ch}${strip ? " " + strip.name.textContent : ""}: ${result.mode}.`;
    }
  }
}

function answered(result) {
  if (result.ok) {
    say(done(result), "good");
    return;
  }
  say(`${result.command || "command"} refused: ${result.reason}`, "bad");
  if (result.reason.startsWith("unauthorised")) {
    localStorage.removeItem(TOKEN_KEY);
    askForToken();
  }
}

// ----- drawing -----------------------------------------------------------------------

function say(text, kind) {
  const message = $("message");
  message.textContent = text;
  message.className = kind;
}

function showBanner(text) {
  const banner = $("banner");
  banner.hidden = !text;
  banner.textContent = text;
}

function db(value) {
  if (value === null || value === undefined) return "–";
  if (value === "-inf") return "off";
  if (value === "inf") return "+∞";
  if (Math.abs(value) < 0.05) return "0.0";
  return (value > 0 ? "+" : "") + value.toFixed(1);
}

function inputDb(value) {
  return typeof value === "number" && value < -99 ? "-∞" : db(value);
}

function meterFraction(value) {
  if (typeof value !== "number") return 0;
  return Math.min(1, Math.max(0, (value - METER_FLOOR_DB) / -METER_FLOOR_DB));
}

function makeStrip(channel) {
  const node = $("strip-template").content.firstElementChild.cloneNode(true);
  node.dataset.ch = channel.ch;
  const find = (selector) => node.querySelector(selector);
  const strip = {
    node,
    name: find(".name"),
    muted: find(".muted-tag"),
    bar: find(".bar"),
    level: find(".level"),
    knob: find(".knob"),
    target: find(".target"),
    fader: find(".fader-db"),
    proposed: find(".proposed"),
    targetDb: find(".target-db"),
    reason: find(".reason"),
    modes: [...node.querySelectorAll(".modes button")],
  };
  find(".ch").textContent = channel.ch;
  for (const button of strip.modes) {
    button.addEventListener("click", () => send(`ch/${channel.ch}/mode`, { mode: button.dataset.mode }));
  }
  $("strips").append(node);
  return strip;
}

function drawStrip(strip, channel) {
  strip.name.textContent = channel.name;
  strip.muted.hidden = !channel.muted;
  const fraction = meterFraction(channel.level_db);
  strip.bar.style.width = `${(fraction * 100).toFixed(1)}%`;
  strip.bar.className = `bar${channel.level_db > -6 ? " hot" : channel.level_db > -18 ? " warm" : ""}`;
  strip.node.dataset.level = channel.level_db ?? "";
  strip.level.textContent = inputDb(channel.level_db);
  strip.knob.hidden = channel.fader_pos === null;
  strip.knob.style.left = `${(channel.fader_pos ?? 0) * 100}%`;
  strip.target.hidden = channel.target_pos === null;
  strip.target.style.left = `${(channel.target_pos ?? 0) * 100}%`;
  strip.fader.textContent = db(channel.fader_db);
  strip.proposed.textContent = db(channel.proposed_db);
  strip.targetDb.textContent = db(channel.target_db);
  strip.reason.textContent = channel.reason;
  strip.reason.title = channel.reason;
  strip.node.dataset.mode = channel.mode;
  strip.node.classList.toggle("held", channel.hold_code !== "");
  for (const button of strip.modes) {
    const active = button.dataset.mode === channel.mode;
    button.classList.toggle("active", active);
    button.setAttribute("aria-pressed", String(active));
    button.disabled = channel.locked && button.dataset.mode !== "excluded";
  }
}

function drawLink(id, link) {
  const node = $(id);
  node.classList.toggle("ok", link.ok);
  node.classList.toggle("bad", !link.ok);
  node.querySelector(".detail").textContent = link.detail;
}

function render(state) {
  lastStateAt = performance.now();
  document.body.classList.remove("offline");
  document.body.classList.toggle("armed", state.armed);
  document.body.dataset.seq = state.seq;
  $("show").textContent = state.show;
  const armed = $("armed");
  armed.textContent = state.armed ? (state.hold ? "ARMED, HOLDING" : "ARMED") : "disarmed";
  drawLink("link-desk", state.links.desk);
  drawLink("link-audio", state.links.audio);
  drawLink("link-model", state.links.model);
  showBanner(state.hold_code ? `Every fader is ${state.hold}` : "");
  const seen = new Set();
  for (const channel of state.channels) {
    seen.add(channel.ch);
    if (!strips.has(channel.ch)) strips.set(channel.ch, makeStrip(channel));
    drawStrip(strips.get(channel.ch), channel);
  }
  for (const [ch, strip] of strips) {
    if (!seen.has(ch)) {
      strip.node.remove();
      strips.delete(ch);
    }
  }
  const list = $("event-list");
  list.replaceChildren(...state.events.slice().reverse().map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
}

function watchStaleness() {
  if (socket && socket.readyState === WebSocket.OPEN && lastStateAt && performance.now() - lastStateAt > STALE_MS) {
    document.body.classList.add("offline");
    showBanner("No update from the bridge for over a second. What you see is old.");
  }
}

// ----- wiring ------------------------------------------------------------------------

function wire() {
  $("arm").addEventListener("click", () => send("arm"));
  $("disarm").addEventListener("click", () => send("disarm"));
  const dialog = $("kill-dialog");
  $("kill").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "kill") send("kill");
    dialog.returnValue = "";
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    $("token-form").hidden = true;
    say("Token saved in this browser.", "good"); // commands carry it now; the next connection offers it too
  });
  setInterval(watchStaleness, 500);
}

takeTokenFromUrl();
wire();
connect();
