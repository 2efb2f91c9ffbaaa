// The Efimis ETL console: a client of the service's public JSON API, nothing more.
//
// Safety rules this file keeps: every value from the API reaches the page through textContent or an
// attribute set with setAttribute (never innerHTML), so a firm's data can never become markup; no inline
// script or style (the Content-Security-Policy forbids both); the bearer token lives in sessionStorage
// only and is sent in the Authorization header, never in a URL (downloads go through fetch and a Blob).

const TOKEN_KEY = "efimis.console.token";
const STATES = [
  "Queued", "Importing", "Validating", "Validated", "ValidationFailed", "Failed",
  "Promoting", "Promoted", "PromotionFailed", "Cancelled", "Reverted",
];
// The same sets as jobs/state.py: which states still move, may be promoted, may be cancelled.
const RUNNING = new Set(["Queued", "Importing", "Validating", "Promoting"]);
const PROMOTABLE = new Set(["Validated", "Promoted", "PromotionFailed", "Reverted"]);
const CANCELLABLE = new Set(["Queued", "Importing", "Validating"]);
const LIST_REFRESH_MS = 2000;
const STATUS_REFRESH_MS = 1000;
const DESCRIBE_DELAY_MS = 300;
const PAGE = 50;
const FINDINGS_PAGE = 25;

const view = document.getElementById("view");
const notice = document.getElementById("notice");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signOutButton = document.getElementById("sign-out");

// Whatever the current page scheduled (polling, debounce): cleared when the page changes.
let timers = [];
// Incremented on every navigation: an answer that arrives for a page the user has left is dropped.
let generation = 0;
let ruleCatalogue = null;

// ---------------------------------------------------------------------------------------------- DOM

/** An element with attributes (`on*` keys become listeners) and children (strings become text nodes). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

let idCounter = 0;
function uniqueId(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

const NUMERIC_HEADINGS = new Set([
  "Rows", "Inserted", "Updated", "Unchanged", "Count", "Errors", "Warnings", "Source rows", "Read rows",
  "Loaded rows", "Rows loaded / expected", "Will insert", "Will update", "Removed", "Put back",
]);

/** A table's header row; headings of figures align right, over their figures. */
function headings(names) {
  return h("thead", {}, h("tr", {}, names.map((name) => h("th", { scope: "col", class: NUMERIC_HEADINGS.has(name) ? "num" : null }, name))));
}

/** A labelled form control: the label's `for` names the control, so every input has its label. */
function field(labelText, control, hint) {
  if (!control.id) control.id = uniqueId("field");
  const children = [h("label", { for: control.id }, labelText), control];
  if (hint) {
    const hintId = uniqueId("hint");
    control.setAttribute("aria-describedby", hintId);
    children.push(h("p", { class: "hint", id: hintId }, hint));
  }
  return h("div", { class: "field" }, children);
}

function select(name, options, current) {
  const element = h("select", { name });
  for (const [value, text] of options) {
    const option = h("option", { value }, text);
    if (value === current) option.selected = true;
    element.append(option);
  }
  return element;
}

function badge(state) {
  return h("span", { class: `badge state-${String(state).toLowerCase()}` }, state);
}

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

function number(value) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString("en-AU");
}

function showNotice(message, kind = "error") {
  if (!message) {
    notice.hidden = true;
    notice.replaceChildren();
    return;
  }
  notice.className = `notice ${kind}`;
  replace(notice, message);
  notice.hidden = false;
}

function later(fn, ms) {
  const timer = setTimeout(fn, ms);
  timers.push(timer);
  return timer;
}

function clearTimers() {
  for (const timer of timers) clearTimeout(timer);
  timers = [];
}

// ------------------------------------------------------------------------------------------ the API

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** The token's claims, for showing who is signed in. Not verified here: the service verifies every call. */
function claims() {
  const value = token();
  if (!value) return {};
  try {
    const part = value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join(""),
    );
    const parsed = JSON.parse(json);
    return parsed && typeof parsed === "object" ? parsed : {};
  } catch {
    return {};
  }
}

function firm() {
  const claimed = claims();
  const tenantKey = Object.keys(claimed).find((key) => key === "tenant")
    ?? Object.keys(claimed).find((key) => /tenant/i.test(key));
  return { tenant: tenantKey ? String(claimed[tenantKey]) : null, client: claimed.sub ? String(claimed.sub) : null };
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function errorMessage(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    return `The service answered ${response.status} ${response.statusText}.`;
  }
  if (body?.error?.message) return body.error.message;
  if (body?.error_description) return body.error_description;
  if (typeof body?.detail === "string") return body.detail;
  if (Array.isArray(body?.detail)) return body.detail.map((d) => d.msg ?? JSON.stringify(d)).join("; ");
  return `The service answered ${response.status} ${response.statusText}.`;
}

async function request(path, options = {}) {
  const headers = new Headers(options.headers ?? {});
  const bearer = token();
  if (bearer && !options.anonymous) headers.set("Authorization", `Bearer ${bearer}`);
  let body = options.body;
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(options.json);
  }
  // credentials "omit": the API takes bearer tokens, not cookies; and a 401 that asks for HTTP Basic (as
  // the token endpoint's does) would otherwise make the browser open its own password prompt.
  const response = await fetch(path, {
    method: options.method ?? "GET",
    headers,
    body,
    cache: "no-store",
    credentials: "omit",
  });
  if (response.status === 401 && bearer && !options.anonymous) {
    const message = await errorMessage(response);
    signOut(`Signed out: ${message}`);
    throw new ApiError(401, message);
  }
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  return response;
}

async function api(path, options = {}) {
  const response = await request(path, options);
  return response.json();
}

function query(parameters) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(parameters)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Save what a URL answers as a file, through fetch (the token stays in the header) and a Blob. */
async function download(path, fallbackName, fallback) {
  let blob;
  let name = fallbackName;
  try {
    const response = await request(path);
    const disposition = response.headers.get("Content-Disposition") ?? "";
    const match = /filename="?([^";]+)"?/.exec(disposition);
    if (match) name = match[1];
    blob = await response.blob();
  } catch (error) {
    if (!(fallback && error instanceof ApiError && error.status === 404)) throw error;
    blob = new Blob([await fallback()], { type: "text/csv;charset=utf-8" });
  }
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, class: "hidden-link" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function downloadButton(text, path, fileName, fallback) {
  const button = h("button", { type: "button", class: "secondary" }, text);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await download(path, fileName, fallback);
      showNotice(null);
    } catch (error) {
      showNotice(`Download failed: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** The rule catalogue (what each rule finds and what to do), read from the public schema reference. */
async function rules() {
  if (ruleCatalogue) return ruleCatalogue;
  const catalogue = new Map();
  try {
    const response = await fetch("/etl/schema-reference?format=markdown", { cache: "no-store" });
    if (response.ok) {
      for (const line of (await response.text()).split("\n")) {
        const cells = line.split("|").slice(1, -1).map((cell) => cell.trim());
        if (cells.length !== 4 || !/^`[^`]+`$/.test(cells[0])) continue;
        if (cells[1] !== "error" && cells[1] !== "warning") continue;
        catalogue.set(cells[0].slice(1, -1), { severity: cells[1], title: cells[2], fix: cells[3] });
      }
    }
  } catch {
    // The summary still shows each rule's description from the status; only "what to do" is missing.
  }
  ruleCatalogue = catalogue;
  return catalogue;
}

// ---------------------------------------------------------------------------------------- sessions

function signedIn(bearer) {
  sessionStorage.setItem(TOKEN_KEY, bearer);
  showNotice(null);
  if (!location.hash || location.hash === "#/" || location.hash === "#/sign-in") {
    location.hash = "#/imports";
  } else {
    route();
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  ruleCatalogue = null;
  clearTimers();
  generation += 1;
  route();
  if (message) showNotice(message);
}

signOutButton.addEventListener("click", () => signOut("You are signed out."));

function signInView() {
  const clientId = h("input", { name: "client_id", autocomplete: "username", required: true, spellcheck: "false" });
  const secret = h("input", { name: "client_secret", type: "password", autocomplete: "current-password", required: true });
  const credentials = h(
    "form",
    { id: "sign-in-form", class: "card" },
    h("h2", {}, "Sign in with client credentials"),
    field("Client id", clientId),
    field("Client secret", secret),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")),
  );
  credentials.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: clientId.value.trim(),
      client_secret: secret.value,
    });
    try {
      const issued = await api("/oauth2/token", {
        method: "POST",
        body: form,
        anonymous: true,
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
      });
      secret.value = "";
      signedIn(issued.access_token);
    } catch (error) {
      showNotice(`Sign-in failed: ${error.message}`);
      secret.focus();
    }
  });

  const pasted = h("textarea", { name: "token", rows: 3, spellcheck: "false", autocomplete: "off", required: true });
  const tokenForm = h(
    "form",
    { id: "token-form", class: "card" },
    h("h2", {}, "Or use a bearer token"),
    field("Access token", pasted, "From your organisation's identity provider, without the word Bearer."),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, "Use this token")),
  );
  tokenForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = pasted.value.trim().replace(/^bearer\s+/i, "");
    try {
      // Tried on the smallest tenant-scoped call before it is kept, so a wrong token is told at once.
      await api("/etl/audit?limit=1", { anonymous: true, headers: { Authorization: `Bearer ${value}` } });
      pasted.value = "";
      signedIn(value);
    } catch (error) {
      showNotice(`That token was refused: ${error.message}`);
    }
  });

  replace(
    view,
    h("h1", {}, "Sign in"),
    h("p", { class: "lead" }, "Watch a firm's migration, read what validation found, and promote it to production."),
    h("div", { class: "columns" }, credentials, tokenForm),
    h("p", { class: "hint" }, "Your token is kept in this browser tab only, and forgotten when you close it or sign out."),
  );
}

// ------------------------------------------------------------------------------------------ imports

async function importsView(parameters) {
  const mine = generation;
  const state = STATES.includes(parameters.get("state")) ? parameters.get("state") : "";
  const offset = Math.max(0, Number.parseInt(parameters.get("offset") ?? "0", 10) || 0);
  const stateFilter = select("state", [["", "All states"], ...STATES.map((s) => [s, s])], state);
  stateFilter.id = "state-filter";
  stateFilter.addEventListener("change", () => {
    location.hash = `#/imports${query({ state: stateFilter.value })}`;
  });
  const body = h("div", { id: "imports-body" }, h("p", {}, "Loading…"));
  replace(
    view,
    h("div", { class: "heading-row" }, h("h1", {}, "Imports"), h("a", { href: "#/new", class: "button" }, "New import")),
    h("div", { class: "filters" }, field("State", stateFilter)),
    body,
  );

  async function refresh() {
    let page;
    try {
      page = await api(`/etl/imports${query({ state, offset, limit: PAGE })}`);
    } catch (error) {
      if (mine !== generation) return;
      replace(body, h("p", { class: "error-text" }, `The imports could not be listed: ${error.message}`));
      return;
    }
    if (mine !== generation) return;
    renderImports(body, page, state, offset);
    if (page.imports.some((item) => RUNNING.has(item.state))) later(refresh, LIST_REFRESH_MS);
  }
  await refresh();
}

function renderImports(body, page, state, offset) {
  if (page.total === 0) {
    replace(
      body,
      h("p", { id: "no-imports", class: "empty" }, state ? `No import is ${state}.` : "This firm has no imports yet. "),
      state ? null : h("a", { href: "#/new" }, "Start one"),
    );
    return;
  }
  const rows = page.imports.map((item) =>
    h(
      "tr",
      { "data-request-id": item.requestId },
      h("td", { "data-label": "Import" }, h("a", { href: `#/imports/${encodeURIComponent(item.requestId)}` }, item.requestId)),
      h("td", { "data-label": "State" }, badge(item.state)),
      h("td", { "data-label": "Source", class: "wrap" }, item.source),
      h("td", { "data-label": "Created" }, when(item.createdAt)),
      h("td", { "data-label": "Finished" }, when(item.promotionFinishedAt ?? item.importFinishedAt)),
      h("td", { "data-label": "Rows", class: "num" }, `${number(item.rowsLoaded)} / ${number(item.rowsExpected)}`),
      h("td", { "data-label": "Errors", class: "num" }, number(item.errors)),
      h("td", { "data-label": "Warnings", class: "num" }, number(item.warnings)),
    ),
  );
  replace(
    body,
    h(
      "table",
      { class: "data stack", id: "imports-table" },
      h("caption", {}, `${number(page.total)} import${page.total === 1 ? "" : "s"}, newest first`),
      headings(["Import", "State", "Source", "Created", "Finished", "Rows loaded / expected", "Errors", "Warnings"]),
      h("tbody", {}, rows),
    ),
    pager(page.total, offset, page.limit, (next) => {
      location.hash = `#/imports${query({ state, offset: next || null })}`;
    }),
  );
}

function pager(total, offset, limit, go) {
  if (total <= limit && offset === 0) return null;
  const previous = h("button", { type: "button", class: "secondary", disabled: offset === 0 }, "Previous");
  const next = h("button", { type: "button", class: "secondary", disabled: offset + limit >= total }, "Next");
  previous.addEventListener("click", () => go(Math.max(0, offset - limit)));
  next.addEventListener("click", () => go(offset + limit));
  const last = Math.min(total, offset + limit);
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    previous,
    h("span", { class: "page-position" }, `${number(total === 0 ? 0 : offset + 1)}–${number(last)} of ${number(total)}`),
    next,
  );
}

// --------------------------------------------------------------------------------------- new import

function newImportView() {
  const mine = generation;
  const text = h("textarea", {
    name: "connectionString",
    id: "connection-string",
    rows: 4,
    spellcheck: "false",
    autocomplete: "off",
    autocapitalize: "off",
    required: true,
  });
  const understood = h("div", { id: "understood", class: "understood", "aria-live": "polite" });
  const submit = h("button", { type: "submit", id: "start-import" }, "Start import");
  const form = h(
    "form",
    { id: "new-import-form", class: "card" },
    field(
      "Connection string",
      text,
      "ADO.NET, ODBC, JDBC or an mssql:// URL of the firm's SQL Server staging database. It is used for this import only and never stored or shown.",
    ),
    h("h2", {}, "How the service reads it"),
    understood,
    h("div", { class: "actions" }, submit),
  );
  replace(understood, h("p", { class: "hint" }, "Paste a connection string to see how it is understood."));

  let pending = null;
  let asked = 0;
  async function describe() {
    const value = text.value.trim();
    asked += 1;
    const mineAsk = asked;
    if (!value) {
      replace(understood, h("p", { class: "hint" }, "Paste a connection string to see how it is understood."));
      return;
    }
    try {
      const answer = await api("/etl/connection-string/describe", { method: "POST", json: { connectionString: value } });
      if (mine !== generation || mineAsk !== asked) return;
      renderDescription(understood, answer);
    } catch (error) {
      if (mine !== generation || mineAsk !== asked) return;
      replace(understood, h("p", { class: "error-text" }, `It could not be checked: ${error.message}`));
    }
  }
  text.addEventListener("input", () => {
    if (pending) clearTimeout(pending);
    pending = later(describe, DESCRIBE_DELAY_MS);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const accepted = await api("/etl/import", { method: "POST", json: { connectionString: text.value.trim() } });
      text.value = "";
      location.hash = `#/imports/${encodeURIComponent(accepted.requestId)}`;
    } catch (error) {
      showNotice(`The import was not started: ${error.message}`);
      submit.disabled = false;
    }
  });
  replace(view, h("h1", {}, "New import"), form);
  text.focus();
}

function renderDescription(target, answer) {
  if (!answer.valid) {
    replace(target, h("p", { class: "error-text", id: "describe-message" }, answer.message));
    return;
  }
  const d = answer.description ?? {};
  const yesNo = (value) => (value === null || value === undefined ? null : value ? "yes" : "no");
  const rows = [
    ["Kind", { sqlserver: "SQL Server", sqlite: "SQLite file (development)", postgresql: "PostgreSQL (development)" }[d.kind] ?? d.kind],
    ["Server", d.server],
    ["Port", d.port],
    ["Instance", d.instance],
    ["Database", d.database],
    ["User", d.user],
    ["Password", d.passwordGiven ? "•••••••• (given, not shown)" : "none given"],
    ["Encrypt", typeof d.encrypt === "boolean" ? yesNo(d.encrypt) : d.encrypt],
    ["Trust server certificate", yesNo(d.trustServerCertificate)],
  ].filter(([, value]) => value !== null && value !== undefined && value !== "");
  replace(
    target,
    h("p", { class: "ok-text", id: "describe-summary" }, d.summary ?? "Understood."),
    h("dl", { class: "pairs", id: "describe-details" }, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))])),
  );
}

// --------------------------------------------------------------------------------------- one import

async function importView(requestId) {
  const mine = generation;
  const parts = {
    summary: h("section", { id: "summary", "aria-labelledby": "import-title" }),
    actions: h("div", { id: "actions", class: "actions" }),
    failure: h("div", { id: "failure" }),
    progress: h("section", { id: "progress", "aria-label": "Progress" }),
    reconciliation: h("section", { id: "reconciliation", "aria-label": "Reconciliation" }),
    validation: h("section", { id: "validation", "aria-label": "Validation" }),
    findings: h("section", { id: "findings", "aria-label": "Findings" }),
    promotion: h("section", { id: "promotion", "aria-label": "Promotion" }),
  };
  replace(
    view,
    h("p", { class: "crumbs" }, h("a", { href: "#/imports" }, "← All imports")),
    h("h1", { id: "import-title" }, "Import ", h("span", { class: "mono" }, requestId)),
    parts.failure,
    parts.summary,
    parts.actions,
    parts.progress,
    parts.reconciliation,
    parts.validation,
    parts.findings,
    parts.promotion,
  );
  let shownState = null;
  let findingsShown = false;

  async function refresh() {
    let status;
    try {
      status = await api(`/etl/import-status/${encodeURIComponent(requestId)}`);
    } catch (error) {
      if (mine !== generation) return;
      replace(parts.summary, h("p", { class: "error-text" }, `This import could not be read: ${error.message}`));
      return;
    }
    if (mine !== generation) return;
    renderSummary(parts.summary, status);
    renderFailure(parts.failure, status);
    if (status.state !== shownState) {
      // Rebuilt only when the state changes, so a focused button keeps its focus while the bars move.
      renderActions(parts.actions, status, refresh);
      shownState = status.state;
    }
    renderProgress(parts.progress, status);
    renderReconciliation(parts.reconciliation, status);
    await renderValidation(parts.validation, status);
    if (status.validation && !findingsShown) {
      findingsShown = true;
      renderFindings(parts.findings, status);
    }
    renderPromotion(parts.promotion, status);
    if (mine === generation && RUNNING.has(status.state)) later(refresh, STATUS_REFRESH_MS);
  }
  await refresh();
}

function renderSummary(target, status) {
  const p = status.progress ?? {};
  replace(
    target,
    h(
      "dl",
      { class: "pairs" },
      h("dt", {}, "State"), h("dd", { id: "import-state" }, badge(status.state)),
      h("dt", {}, "Source"), h("dd", { class: "wrap" }, status.source),
      h("dt", {}, "Created"), h("dd", {}, when(status.createdAt)),
      h("dt", {}, "Import finished"), h("dd", {}, when(status.importFinishedAt)),
      status.promotionRequestedAt ? [h("dt", {}, "Promotion finished"), h("dd", {}, when(status.promotionFinishedAt))] : null,
      h("dt", {}, "Rows"), h("dd", {}, `${number(p.rowsLoaded)} loaded of ${number(p.rowsExpected)}`, p.percent == null ? "" : ` (${p.percent} %)`),
      status.attempts > 1 ? [h("dt", {}, "Attempts"), h("dd", {}, String(status.attempts))] : null,
    ),
  );
}

function renderFailure(target, status) {
  if (!status.failure) {
    target.replaceChildren();
    return;
  }
  replace(
    target,
    h(
      "div",
      { class: "failure", role: "alert", id: "failure-reason" },
      h("h2", {}, status.state === "PromotionFailed" ? "The promotion failed" : "The import failed"),
      h("p", { class: "reason" }, status.failure.reason),
      h("p", { class: "hint" }, `Code: ${status.failure.code}`),
    ),
  );
}

function renderActions(target, status, refresh) {
  const buttons = [];
  if (CANCELLABLE.has(status.state)) {
    const cancel = h("button", { type: "button", class: "danger", id: "cancel-import" }, "Cancel import");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        await api(`/etl/import/${encodeURIComponent(status.requestId)}/cancel`, { method: "POST" });
        showNotice("The import is cancelled; its staging data is being deleted.", "info");
        await refresh();
      } catch (error) {
        showNotice(`It could not be cancelled: ${error.message}`);
        cancel.disabled = false;
      }
    });
    buttons.push(cancel);
  }
  const promotable = PROMOTABLE.has(status.state);
  const promote = h(
    "button",
    { type: "button", id: "promote", disabled: !promotable, "aria-describedby": "promote-why" },
    status.state === "Promoted" || status.state === "Reverted" ? "Promote again…" : "Promote to production…",
  );
  promote.addEventListener("click", () => confirmPromotion(status, refresh));
  buttons.push(promote);
  if (status.state === "Promoted") {
    const revertButton = h("button", { type: "button", class: "danger", id: "revert" }, "Revert this promotion…");
    revertButton.addEventListener("click", () => confirmRevert(status, refresh));
    buttons.push(revertButton);
  }
  const why = promotable
    ? "Promotion applies every table in one transaction."
    : status.state === "ValidationFailed"
      ? "Fix the errors below in the source and import again: an import with errors cannot be promoted."
      : RUNNING.has(status.state)
        ? "Available once the import is validated."
        : `An import that is ${status.state} cannot be promoted.`;
  buttons.push(h("span", { class: "hint", id: "promote-why" }, why));
  replace(target, buttons);
}

/** The firm and the import a confirmation is about, in its dialog's two opening lines. */
function nameTheImport(prefix, status) {
  const { tenant, client } = firm();
  replace(
    document.getElementById(`${prefix}-firm`),
    "Firm: ",
    h("strong", { id: `${prefix}-tenant` }, tenant ?? "(the tenant of your token)"),
    client ? ` — signed in as client ${client}` : "",
  );
  replace(document.getElementById(`${prefix}-source`), `From: ${status.source} (import ${status.requestId})`);
}

function plural(count, one, many = `${one}s`) {
  return `${number(count)} ${count === 1 ? one : many}`;
}

/** One changed column as text: `Column: before → after` (an empty value reads "(empty)"). */
function columnChange(change) {
  const shown = (value) => (value === null || value === undefined || value === "" ? "(empty)" : value);
  return h(
    "li",
    { class: "change" },
    h("span", { class: "change-column" }, change.column),
    ": ",
    h("span", { class: "mono before" }, shown(change.before)),
    " → ",
    h("span", { class: "mono after" }, shown(change.after)),
  );
}

/** A table's name that may break between its words (ReceiptAllocation → Receipt·Allocation) on a phone. */
function breakable(name) {
  return String(name)
    .split(/(?=[A-Z][a-z])/)
    .flatMap((part, i) => (i ? [h("wbr"), part] : [part]));
}

function renderPreview(preview, requestId, setStatus) {
  const tables = preview.tables;
  const total = (key) => tables.reduce((sum, table) => sum + table[key], 0);
  replace(
    document.getElementById("promote-rows"),
    tables.map((t) =>
      h(
        "tr",
        { "data-table": t.table },
        h("th", { scope: "row" }, breakable(t.table)),
        h("td", { class: "num", "data-label": "Rows" }, number(t.rows)),
        h("td", { class: "num", "data-label": "Will insert" }, number(t.inserted)),
        h("td", { class: "num", "data-label": "Will update" }, number(t.updated)),
        h("td", { class: "num", "data-label": "Unchanged" }, number(t.unchanged)),
      ),
    ),
    h(
      "tr",
      { class: "total" },
      h("th", { scope: "row" }, "All tables"),
      [["rows", "Rows"], ["inserted", "Will insert"], ["updated", "Will update"], ["unchanged", "Unchanged"]].map(([key, label]) =>
        h("td", { class: "num", "data-label": label }, number(total(key))),
      ),
    ),
  );
  const changes = document.getElementById("promote-changes");
  if (!total("updated")) {
    replace(changes, h("p", { class: "hint", id: "promote-no-updates" }, "No row already in production changes: every row is new or stays as it is."));
    return;
  }
  const csv = h("button", { type: "button", class: "secondary", id: "promote-changes-csv" }, "Download every change (CSV)");
  csv.addEventListener("click", async () => {
    csv.disabled = true;
    try {
      await download(`/etl/import/${encodeURIComponent(requestId)}/promotion-preview/changes.csv`, `promotion-preview-${requestId}.csv`);
    } catch (error) {
      setStatus(h("span", { class: "error-text" }, `Download failed: ${error.message}`));
    } finally {
      csv.disabled = false;
    }
  });
  replace(
    changes,
    h("h3", {}, "Rows already in production that will change"),
    tables
      .filter((t) => t.updated)
      .map((t) =>
        h(
          "div",
          { class: "table-changes", "data-table": t.table },
          h("h4", {}, `${t.table}: ${plural(t.updated, "row")} updated`, t.sample.length < t.updated ? ` (the first ${number(t.sample.length)} shown)` : ""),
          h(
            "ul",
            { class: "changed-rows" },
            t.sample.map((row) =>
              h("li", { "data-import-id": row.importId }, h("span", { class: "mono" }, row.importId), h("ul", { class: "changed-columns" }, row.changes.map(columnChange))),
            ),
          ),
        ),
      ),
    h("div", { class: "actions start" }, csv, h("span", { class: "hint" }, "Every changed column of every row: table, importId, column, before, after.")),
  );
}

function confirmPromotion(status, refresh) {
  const requestId = status.requestId;
  const dialog = document.getElementById("promote-dialog");
  const form = document.getElementById("promote-form");
  const confirm = document.getElementById("promote-confirm");
  const problem = document.getElementById("promote-moved");
  const statusLine = document.getElementById("promote-status");
  const setStatus = (...children) => replace(statusLine, ...children);
  // The listeners of one opening of the dialog, all removed when it closes.
  const opening = new AbortController();
  let preview = null;
  let asked = 0;

  function showProblem(title, message) {
    replace(document.getElementById("promote-problem-title"), title);
    replace(document.getElementById("promote-moved-message"), message);
    problem.hidden = false;
    document.getElementById("promote-refresh").focus();
  }

  async function loadPreview() {
    asked += 1;
    const mine = asked;
    preview = null;
    confirm.disabled = true;
    setStatus("Working out what this promotion would change in production…");
    document.getElementById("promote-rows").replaceChildren();
    document.getElementById("promote-changes").replaceChildren();
    try {
      const answer = await api(`/etl/import/${encodeURIComponent(requestId)}/promotion-preview`);
      if (mine !== asked || !dialog.open) return;
      preview = answer;
      renderPreview(answer, requestId, setStatus);
      setStatus(`Computed against production revision ${answer.productionRevision}, just now.`);
      confirm.disabled = false;
    } catch (error) {
      if (mine !== asked || !dialog.open) return;
      if (error.status === 401) {
        dialog.close();
        return;
      }
      setStatus("");
      showProblem("The preview could not be computed", error.message);
    }
  }

  nameTheImport("promote", status);
  problem.hidden = true;
  document.getElementById("promote-refresh").addEventListener(
    "click",
    () => {
      problem.hidden = true;
      loadPreview();
      document.getElementById("promote-cancel").focus();
    },
    { signal: opening.signal },
  );
  form.addEventListener(
    "submit",
    async (event) => {
      if (event.submitter !== confirm) return; // Cancel closes the dialog as a dialog form does
      event.preventDefault();
      if (!preview) return;
      confirm.disabled = true;
      problem.hidden = true;
      try {
        // With the preview's revision: if production moved since, nothing is written and 409 says who moved it.
        await api("/etl/promote-to-production", {
          method: "POST",
          json: { requestId, productionRevision: preview.productionRevision },
        });
      } catch (error) {
        if (error.status === 401) {
          dialog.close();
          return;
        }
        showProblem("Nothing was promoted", error.message);
        return;
      }
      dialog.close("promoted");
      showNotice("Promotion started.", "info");
      await refresh();
    },
    { signal: opening.signal },
  );
  dialog.addEventListener(
    "close",
    () => {
      opening.abort();
      asked += 1; // an answer still on its way is for a dialog no longer open
      if (dialog.returnValue !== "promoted") document.getElementById("promote")?.focus();
    },
    { signal: opening.signal },
  );
  dialog.returnValue = "";
  dialog.showModal();
  document.getElementById("promote-cancel").focus();
  loadPreview();
}

function confirmRevert(status, refresh) {
  const requestId = status.requestId;
  const dialog = document.getElementById("revert-dialog");
  const form = document.getElementById("revert-form");
  const confirm = document.getElementById("revert-confirm");
  const refused = document.getElementById("revert-refused");
  const opening = new AbortController();
  const tables = status.promotion?.tables ?? [];
  const total = (key) => tables.reduce((sum, table) => sum + table[key], 0);
  const touched = tables.filter((t) => t.inserted || t.updated);

  nameTheImport("revert", status);
  replace(
    document.getElementById("revert-what"),
    h("li", { id: "revert-removed" }, `The ${plural(total("inserted"), "row")} this promotion inserted will be deleted from production.`),
    h("li", { id: "revert-restored" }, `The ${plural(total("updated"), "row")} it updated will get back the values they had before it.`),
    h("li", {}, "Rows it left unchanged, and everything else in production, stay as they are."),
  );
  replace(
    document.getElementById("revert-tables"),
    touched.length
      ? h(
          "table",
          { class: "data", id: "revert-table" },
          h("caption", {}, "Per table"),
          headings(["Table", "Removed", "Put back"]),
          h(
            "tbody",
            {},
            touched.map((t) =>
              h("tr", { "data-table": t.table }, h("th", { scope: "row" }, t.table), h("td", { class: "num" }, number(t.inserted)), h("td", { class: "num" }, number(t.updated))),
            ),
          ),
        )
      : null,
  );
  refused.hidden = true;
  confirm.disabled = false;
  form.addEventListener(
    "submit",
    async (event) => {
      if (event.submitter !== confirm) return;
      event.preventDefault();
      confirm.disabled = true;
      try {
        await api(`/etl/import/${encodeURIComponent(requestId)}/revert`, { method: "POST" });
      } catch (error) {
        if (error.status === 401) {
          dialog.close();
          return;
        }
        // 409 (later promotions to revert first) and 410 (EFIMIS_REVERT_DAYS passed) say what to do: as given.
        replace(document.getElementById("revert-refused-message"), error.message);
        refused.hidden = false;
        // The message is at the top of the dialog: it stays in view while Cancel takes the focus.
        dialog.scrollTop = 0;
        document.getElementById("revert-cancel").focus({ preventScroll: true });
        return;
      }
      dialog.close("reverted");
      showNotice("The promotion was reverted: production is as it was before it.", "info");
      await refresh();
    },
    { signal: opening.signal },
  );
  dialog.addEventListener(
    "close",
    () => {
      opening.abort();
      if (dialog.returnValue !== "reverted") document.getElementById("revert")?.focus();
    },
    { signal: opening.signal },
  );
  dialog.returnValue = "";
  dialog.showModal();
  document.getElementById("revert-cancel").focus();
}

function renderProgress(target, status) {
  if (!status.tables.length) {
    replace(target, h("h2", {}, "Progress"), h("p", { class: "hint" }, RUNNING.has(status.state) ? "Counting the source's rows…" : "No table was read."));
    return;
  }
  const rows = status.tables.map((table) => {
    const expected = table.rowsExpected;
    const percent = expected ? Math.floor((100 * table.rowsLoaded) / expected) : expected === 0 ? 100 : null;
    const label = `${table.table}: ${number(table.rowsLoaded)} of ${number(expected)} rows loaded`;
    const bar = h("progress", { max: expected || 1, "aria-label": label });
    if (expected !== null && expected !== undefined) bar.value = expected ? table.rowsLoaded : 1;
    return h(
      "li",
      { class: "bar", "data-table": table.table },
      h("span", { class: "bar-name" }, table.table),
      bar,
      h("span", { class: "bar-figure" }, `${number(table.rowsLoaded)} / ${number(expected)}`, h("span", { class: "percent" }, percent === null ? "" : ` ${percent} %`)),
    );
  });
  replace(target, h("h2", {}, "Progress"), h("ul", { class: "bars", id: "progress-bars" }, rows));
}

function sumsOf(figures) {
  return figures?.sums ?? {};
}

function renderReconciliation(target, status) {
  const tables = status.tables.filter((table) => table.reconciliation);
  if (!tables.length) {
    target.replaceChildren();
    return;
  }
  const rows = tables.map((table) => {
    const r = table.reconciliation;
    const columns = [...new Set([...Object.keys(sumsOf(r.source)), ...Object.keys(sumsOf(r.read)), ...Object.keys(sumsOf(r.loaded))])];
    const rowsAgree = r.source.rows === r.read.rows && r.read.rows === r.loaded.rows;
    const sumLines = columns.map((column) => {
      const values = [sumsOf(r.source)[column], sumsOf(r.read)[column], sumsOf(r.loaded)[column]];
      const measured = values.filter((value) => value !== undefined);
      const agree = measured.every((value) => value === measured[0]);
      return h(
        "li",
        { class: agree ? null : "mismatch" },
        `${column}: `,
        values.map((value) => value ?? "—").join(" / "),
        agree ? "" : " (differs)",
      );
    });
    const mismatch = !r.verified || !rowsAgree;
    return h(
      "tr",
      { class: mismatch ? "mismatch" : null, "data-table": table.table },
      h("th", { scope: "row", "data-label": "Table" }, table.table),
      h("td", { class: "num", "data-label": "Source rows" }, number(r.source.rows)),
      h("td", { class: "num", "data-label": "Read rows" }, number(r.read.rows)),
      h("td", { class: "num", "data-label": "Loaded rows" }, number(r.loaded.rows)),
      h("td", { "data-label": "Sums (source / read / loaded)" }, sumLines.length ? h("ul", { class: "sums" }, sumLines) : "—"),
      h("td", { "data-label": "Agrees" }, mismatch ? h("strong", { class: "bad" }, "Mismatch") : h("span", { class: "good" }, "Yes")),
    );
  });
  replace(
    target,
    h("h2", {}, "Reconciliation"),
    h("p", { class: "hint" }, "Rows and money sums measured by the source, as read, and as loaded into staging: all three must agree before promotion. A dash is a figure not measured (a SQLite source does not sum its columns)."),
    h(
      "table",
      { class: "data stack", id: "reconciliation-table" },
      headings(["Table", "Source rows", "Read rows", "Loaded rows", "Sums (source / read / loaded)", "Agrees"]),
      h("tbody", {}, rows),
    ),
  );
}

async function renderValidation(target, status) {
  const validation = status.validation;
  if (!validation) {
    target.replaceChildren();
    return;
  }
  const catalogue = await rules();
  const headline = validation.errors
    ? `${number(validation.errors)} error${validation.errors === 1 ? "" : "s"} and ${number(validation.warnings)} warning${validation.warnings === 1 ? "" : "s"}: fix the errors in the source, then import again.`
    : validation.warnings
      ? `No errors; ${number(validation.warnings)} warning${validation.warnings === 1 ? "" : "s"} to review.`
      : "No errors and no warnings.";
  const rows = validation.byRule.map((rule) =>
    h(
      "tr",
      { class: `severity-${rule.severity}`, "data-rule": rule.rule },
      h("th", { scope: "row", "data-label": "Rule" }, h("span", { class: "mono" }, rule.rule)),
      h("td", { "data-label": "Severity" }, h("span", { class: `badge sev-${rule.severity}` }, rule.severity)),
      h("td", { class: "num", "data-label": "Count" }, number(rule.count)),
      h("td", { "data-label": "What it means", class: "wrap" }, rule.description),
      h("td", { "data-label": "What to do", class: "wrap" }, catalogue.get(rule.rule)?.fix ?? "See the findings' messages."),
    ),
  );
  replace(
    target,
    h("h2", {}, "Validation"),
    h("p", { class: validation.errors ? "error-text" : "ok-text", id: "validation-headline" }, headline),
    rows.length
      ? h(
          "table",
          { class: "data stack", id: "rules-table" },
          h("caption", {}, "Findings by rule"),
          headings(["Rule", "Severity", "Count", "What it means", "What to do"]),
          h("tbody", {}, rows),
        )
      : null,
  );
}

function renderFindings(target, status) {
  const requestId = status.requestId;
  if (!status.validation.byRule.length) {
    target.replaceChildren();
    return;
  }
  const mine = generation;
  const ruleFilter = select("rule", [["", "All rules"], ...status.validation.byRule.map((r) => [r.rule, `${r.rule} (${r.count})`])], "");
  ruleFilter.id = "filter-rule";
  const tableFilter = select("table", [["", "All tables"], ...status.tables.map((t) => [t.table, t.table])], "");
  tableFilter.id = "filter-table";
  const severityFilter = select("severity", [["", "Any severity"], ["error", "error"], ["warning", "warning"]], "");
  severityFilter.id = "filter-severity";
  const results = h("div", { id: "findings-results" });
  let offset = 0;

  const where = () => ({ rule: ruleFilter.value, table: tableFilter.value, severity: severityFilter.value });
  async function load() {
    let page;
    try {
      page = await api(`/etl/import/${encodeURIComponent(requestId)}/findings${query({ ...where(), offset, limit: FINDINGS_PAGE })}`);
    } catch (error) {
      if (mine !== generation) return;
      replace(results, h("p", { class: "error-text" }, `The findings could not be read: ${error.message}`));
      return;
    }
    if (mine !== generation) return;
    const rows = page.items.map((finding) =>
      h(
        "tr",
        { "data-rule": finding.rule },
        h("td", { "data-label": "Rule" }, h("span", { class: "mono" }, finding.rule)),
        h("td", { "data-label": "Severity" }, h("span", { class: `badge sev-${finding.severity}` }, finding.severity)),
        h("td", { "data-label": "Table" }, finding.table),
        h("td", { "data-label": "ImportId", class: "mono wrap" }, finding.importId ?? "—"),
        h("td", { "data-label": "Column" }, finding.column ?? "—"),
        h("td", { "data-label": "Value", class: "mono wrap finding-value" }, finding.value ?? "—"),
        h("td", { "data-label": "Message", class: "wrap" }, finding.message),
      ),
    );
    replace(
      results,
      page.total === 0
        ? h("p", { class: "empty" }, "No finding matches these filters.")
        : h(
            "table",
            { class: "data stack", id: "findings-table" },
            h("caption", {}, `${number(page.total)} finding${page.total === 1 ? "" : "s"}`),
            headings(["Rule", "Severity", "Table", "ImportId", "Column", "Value", "Message"]),
            h("tbody", {}, rows),
          ),
      pager(page.total, offset, FINDINGS_PAGE, (next) => {
        offset = next;
        load();
      }),
    );
  }
  for (const control of [ruleFilter, tableFilter, severityFilter]) {
    control.addEventListener("change", () => {
      offset = 0;
      load();
    });
  }
  const csv = h("button", { type: "button", class: "secondary", id: "findings-csv" }, "Download CSV");
  csv.addEventListener("click", async () => {
    csv.disabled = true;
    try {
      await download(`/etl/import/${encodeURIComponent(requestId)}/findings.csv${query(where())}`, `findings-${requestId}.csv`);
    } catch (error) {
      showNotice(`Download failed: ${error.message}`);
    } finally {
      csv.disabled = false;
    }
  });
  replace(
    target,
    h("h2", {}, "Findings"),
    h(
      "div",
      { class: "filters" },
      field("Rule", ruleFilter),
      field("Table", tableFilter),
      field("Severity", severityFilter),
      h("div", { class: "field" }, h("span", { class: "label-space", "aria-hidden": "true" }, " "), csv),
    ),
    results,
  );
  load();
}

function renderPromotion(target, status) {
  if (!status.promotion) {
    target.replaceChildren();
    return;
  }
  const tables = status.promotion.tables;
  const total = (key) => tables.reduce((sum, table) => sum + table[key], 0);
  const requestId = status.requestId;
  replace(
    target,
    h("h2", {}, status.state === "Reverted" ? "Promotion (reverted)" : "Promotion"),
    status.state === "Reverted"
      ? h(
          "p",
          { class: "reverted-note", id: "promotion-reverted" },
          `Reverted${status.promotion.revertedBy ? ` by ${status.promotion.revertedBy}` : ""} at ${when(status.promotion.revertedAt)}: `,
          "the rows this promotion inserted were removed from production and the rows it updated have their earlier values again.",
        )
      : null,
    h(
      "p",
      { class: status.state === "Reverted" ? "muted-text" : "ok-text", id: "promotion-headline" },
      status.state === "Reverted" ? "It had: " : "",
      `${number(total("inserted"))} inserted, ${number(total("updated"))} updated, ${number(total("unchanged"))} unchanged.`,
    ),
    h(
      "table",
      { class: "data stack", id: "promotion-table" },
      headings(["Table", "Rows", "Inserted", "Updated", "Unchanged"]),
      h(
        "tbody",
        {},
        tables.map((t) =>
          h(
            "tr",
            { "data-table": t.table },
            h("th", { scope: "row", "data-label": "Table" }, t.table),
            h("td", { class: "num", "data-label": "Rows" }, number(t.rows)),
            h("td", { class: "num", "data-label": "Inserted" }, number(t.inserted)),
            h("td", { class: "num", "data-label": "Updated" }, number(t.updated)),
            h("td", { class: "num", "data-label": "Unchanged" }, number(t.unchanged)),
          ),
        ),
      ),
    ),
    status.state === "Promoted"
      ? h(
          "div",
          { class: "actions" },
          downloadButton("Download the id map (CSV)", `/etl/import/${encodeURIComponent(requestId)}/id-map.csv`, `id-map-${requestId}.csv`, () => idMapCsv(requestId)),
          h("span", { class: "hint" }, "The platform reference given to each ImportId."),
        )
      : null,
  );
}

/** The id map as CSV from the JSON pages: for a service that does not serve id-map.csv itself. */
async function idMapCsv(requestId) {
  const quote = (value) => (/[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  const lines = ["entity,importId,reference"];
  for (let offset = 0; ; offset += 10000) {
    const page = await api(`/etl/import/${encodeURIComponent(requestId)}/id-map${query({ offset, limit: 10000 })}`);
    for (const item of page.items) lines.push([item.entity, item.importId, item.reference].map(quote).join(","));
    if (offset + page.items.length >= page.total || !page.items.length) break;
  }
  return `${lines.join("\r\n")}\r\n`;
}

// -------------------------------------------------------------------------------------------- audit

async function auditView(parameters) {
  const mine = generation;
  const offset = Math.max(0, Number.parseInt(parameters.get("offset") ?? "0", 10) || 0);
  const body = h("div", { id: "audit-body" }, h("p", {}, "Loading…"));
  replace(view, h("h1", {}, "Audit"), h("p", { class: "lead" }, "Who submitted, cancelled or promoted what, when and from where; and how each job ended."), body);
  let page;
  try {
    page = await api(`/etl/audit${query({ offset, limit: PAGE })}`);
  } catch (error) {
    if (mine === generation) replace(body, h("p", { class: "error-text" }, `The audit could not be read: ${error.message}`));
    return;
  }
  if (mine !== generation) return;
  if (!page.total) {
    replace(body, h("p", { class: "empty" }, "Nothing has happened for this firm yet."));
    return;
  }
  replace(
    body,
    h(
      "table",
      { class: "data stack", id: "audit-table" },
      h("caption", {}, `${number(page.total)} event${page.total === 1 ? "" : "s"}, newest first`),
      headings(["When", "Who", "Action", "Import", "From", "Outcome", "Detail"]),
      h(
        "tbody",
        {},
        page.items.map((event) =>
          h(
            "tr",
            {},
            h("td", { "data-label": "When" }, when(event.at)),
            h("td", { "data-label": "Who" }, event.actor),
            h("td", { "data-label": "Action" }, event.action),
            h("td", { "data-label": "Import", class: "mono wrap" }, event.requestId ? h("a", { href: `#/imports/${encodeURIComponent(event.requestId)}` }, event.requestId) : "—"),
            h("td", { "data-label": "From" }, event.remoteAddress ?? "—"),
            h("td", { "data-label": "Outcome" }, event.outcome),
            h("td", { "data-label": "Detail", class: "wrap" }, event.detail ?? "—"),
          ),
        ),
      ),
    ),
    pager(page.total, offset, page.limit, (next) => {
      location.hash = `#/audit${query({ offset: next || null })}`;
    }),
  );
}

// ------------------------------------------------------------------------------------------- schema

async function schemaView() {
  const mine = generation;
  let sqlPath = "/etl/schema/Efimis-1.0.sql";
  try {
    const openapi = await (await fetch("/openapi.json", { cache: "no-store" })).json();
    sqlPath = Object.keys(openapi.paths ?? {}).find((path) => /^\/etl\/schema\/Efimis-[^/]+\.sql$/.test(path)) ?? sqlPath;
  } catch {
    // The usual path is right unless the schema's version moved on.
  }
  if (mine !== generation) return;
  const fileName = sqlPath.split("/").pop();
  const catalogue = await rules();
  if (mine !== generation) return;
  replace(
    view,
    h("h1", {}, "Staging schema"),
    h(
      "div",
      { class: "card" },
      h("h2", {}, "Create the staging tables"),
      h("p", {}, "Run this T-SQL in the firm's SQL Server database, then fill the tables and import them."),
      h("p", {}, h("a", { href: sqlPath, download: fileName, class: "button", id: "schema-sql" }, `Download ${fileName}`)),
    ),
    h(
      "div",
      { class: "card" },
      h("h2", {}, "Reference"),
      h("p", {}, "Every table, column, type, reference, enumeration and validation rule."),
      h("p", {}, h("a", { href: "/etl/schema-reference", id: "schema-reference", target: "_blank", rel: "noopener" }, "Open the schema reference"), " · ",
        h("a", { href: "/docs", target: "_blank", rel: "noopener" }, "API documentation")),
    ),
    catalogue.size
      ? h(
          "table",
          { class: "data stack", id: "catalogue-table" },
          h("caption", {}, "Validation rules"),
          headings(["Rule", "Severity", "What it finds", "What to do"]),
          h(
            "tbody",
            {},
            [...catalogue].map(([code, rule]) =>
              h(
                "tr",
                {},
                h("th", { scope: "row", "data-label": "Rule" }, h("span", { class: "mono" }, code)),
                h("td", { "data-label": "Severity" }, h("span", { class: `badge sev-${rule.severity}` }, rule.severity)),
                h("td", { "data-label": "What it finds", class: "wrap" }, stripMarkdown(rule.title)),
                h("td", { "data-label": "What to do", class: "wrap" }, stripMarkdown(rule.fix)),
              ),
            ),
          ),
        )
      : null,
  );
}

function stripMarkdown(text) {
  return text.replace(/`([^`]*)`/g, "$1").replace(/\*\*([^*]*)\*\*/g, "$1");
}

// ------------------------------------------------------------------------------------------ routing

function route() {
  clearTimers();
  generation += 1;
  const signed = Boolean(token());
  nav.hidden = !signed;
  signOutButton.hidden = !signed;
  const { tenant, client } = firm();
  replace(who, signed ? [client ? `${client}` : "Signed in", tenant ? ` · firm ${tenant}` : ""] : "");
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  const parameters = new URLSearchParams(search);
  const segments = path.split("/").filter(Boolean).map((segment) => {
    try {
      return decodeURIComponent(segment);
    } catch {
      return segment;
    }
  });
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.route === (segments[0] === "imports" && segments[1] ? "imports" : segments[0])) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
  if (!signed) {
    signInView();
    return;
  }
  if (segments[0] === "imports" && segments[1]) return importView(segments[1]);
  if (segments[0] === "new") return newImportView();
  if (segments[0] === "audit") return auditView(parameters);
  if (segments[0] === "schema") return schemaView();
  if (segments[0] !== "imports") {
    history.replaceState(null, "", "#/imports");
  }
  return importsView(parameters);
}

window.addEventListener("hashchange", () => {
  showNotice(null);
  route();
  document.getElementById("main").focus({ preventScroll: true });
});
route();
