// leaktrace web page: a thin front over the JSON API (docs/api.md). No engine logic here —
// every answer shown comes from the service. Untrusted text is only ever set as textContent.
"use strict";

(() => {
  const TOKEN_KEY = "leaktrace.token";
  const POLL_MS = 400;
  const POLL_RETRIES = 5; // network hiccups tolerated while a job runs
  const BAR_CHART_MAX = 30; // above this many candidates, a ranked dot plot
  const STATUS_MS = 8000; // how long a "done" status message stays
  const NETWORK_MESSAGE =
    "Cannot reach the leaktrace service. Check that the server (leaktrace serve) is still " +
    "running and that you are online, then try again.";
  const UNAUTHORIZED_MESSAGE =
    "The service did not accept this token: it is wrong or has been revoked. " +
    "Paste a valid token (leaktrace token create --name NAME).";
  const SVG_NS = "http://www.w3.org/2000/svg";
  // What the service reads (docs/api.md): photos to mark, more formats to trace, videos.
  const PHOTO_SUFFIXES = [".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff"];
  const LEAK_SUFFIXES = [...PHOTO_SUFFIXES, ".gif", ".bmp", ".heic", ".heif", ".avif"];
  const VIDEO_SUFFIXES = [".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"];

  const $ = (id) => document.getElementById(id);

  const state = {
    token: localStorage.getItem(TOKEN_KEY) || "",
    recipients: [],
    media: [],
    selectedMedia: null, // media id
    picked: new Set(), // handles chosen for the next batch
    job: null,
    pollTimer: null,
    pollRound: 0, // answers to polls of an earlier round are stale
    jobBusy: false,
    uploading: false, // a new original is on its way: it will be the one chosen
    trace: null,
  };

  // -- API -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function detailText(body, response) {
    const detail = body && body.detail;
    if (typeof detail === "string" && detail) return detail;
    if (Array.isArray(detail) && detail.length) {
      // FastAPI's request-validation shape: [{loc, msg, ...}]
      return detail
        .map((d) => {
          const where = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
          return where ? `${where}: ${d.msg}` : String(d.msg);
        })
        .join("; ");
    }
    return `The service answered ${response.status} ${response.statusText}`.trim() + ".";
  }

  /** Call the API with the token. Returns parsed JSON, null (204) or the Response (raw). */
  async function api(path, { method = "GET", json, form, raw = false } = {}) {
    const headers = { Authorization: `Bearer ${state.token}` };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form; // the browser sets the multipart boundary
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: "no-store" });
    } catch {
      throw new ApiError(0, NETWORK_MESSAGE);
    }
    if (!response.ok) {
      let data = null;
      try {
        data = await response.json();
      } catch {
        // not JSON (a proxy's error page, say)
      }
      if (response.status === 401) {
        signOut(UNAUTHORIZED_MESSAGE);
        throw new ApiError(401, UNAUTHORIZED_MESSAGE);
      }
      throw new ApiError(response.status, detailText(data, response));
    }
    if (raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }

  async function fetchBlob(path) {
    const response = await api(path, { raw: true });
    let blob;
    try {
      blob = await response.blob();
    } catch {
      throw new ApiError(0, NETWORK_MESSAGE);
    }
    return { blob, filename: filenameFrom(response) };
  }

  function filenameFrom(response) {
    const cd = response.headers.get("Content-Disposition") || "";
    const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(cd);
    if (star) {
      try {
        return decodeURIComponent(star[1].trim());
      } catch {
        // fall through to the plain form
      }
    }
    const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(cd);
    return plain ? plain[1].trim() : null;
  }

  function saveBlob(blob, filename) {
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = filename;
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  // -- small DOM helpers -------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v === true) node.setAttribute(k, "");
      else node.setAttribute(k, String(v));
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showError(id, message) {
    const box = $(id);
    box.textContent = message;
    box.hidden = !message;
  }

  function showWarnings(id, warnings) {
    const list = $(id);
    list.replaceChildren(...(warnings || []).map((w) => el("li", { text: w })));
    list.hidden = !list.children.length;
  }

  const fading = new Map(); // status id -> the timer that clears its "done" message

  /**
   * A status line beside a control. A "done" message (kind "ok") fades after STATUS_MS, so
   * that what the page says is about what just happened, not about something long past.
   */
  function setStatus(id, message, { busy = false, kind = "" } = {}) {
    const node = $(id);
    clearTimeout(fading.get(id));
    fading.delete(id);
    node.replaceChildren();
    node.className = node.className.replace(/\bstatus-(ok|busy)\b/g, "").trim();
    if (!message) return;
    if (busy) node.append(el("span", { class: "spinner", "aria-hidden": "true" }));
    node.append(document.createTextNode(message));
    if (busy) node.classList.add("status-busy");
    if (kind === "ok") {
      node.classList.add("status-ok");
      fading.set(id, setTimeout(() => setStatus(id, ""), STATUS_MS));
    }
  }

  function busyButton(button, busy, label) {
    if (busy) {
      button.dataset.label = button.textContent;
      button.textContent = label;
      button.disabled = true;
    } else {
      if (button.dataset.label) button.textContent = button.dataset.label;
      button.disabled = false;
    }
  }

  const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

  /** A p-value as people read it: 0.2, 0.0066, 3e-21; from log10 when it underflowed to 0. */
  function formatP(p, log10) {
    if (typeof p === "number" && p > 1e-300 && Number.isFinite(p)) {
      if (p >= 1e-3) return String(Number(p.toPrecision(2)));
      const [mantissa, exponent] = p.toExponential(1).split("e");
      return `${mantissa.replace(/\.0$/, "")}e${exponent}`;
    }
    if (typeof log10 === "number" && Number.isFinite(log10)) return `1e${Math.round(log10)}`;
    return "0";
  }

  function formatBytes(n) {
    if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
    if (n >= 1e3) return `${Math.round(n / 1e3)} kB`;
    return `${n} B`;
  }

  function formatDate(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleString();
  }

  const stem = (name) => name.replace(/\.[^.]*$/, "");
  const suffix = (name) => (/\.[^.]*$/.exec(name.toLowerCase()) || [""])[0];

  /** A time in a video as m:ss.s (1:12.0), as the service writes it. */
  function clock(seconds) {
    const tenths = Math.round(Math.max(0, seconds) * 10);
    const m = Math.floor(tenths / 600);
    const s = (tenths - m * 600) / 10;
    return `${m}:${s.toFixed(1).padStart(4, "0")}`;
  }

  const isVideoFile = (file) =>
    file.type.startsWith("video/") || VIDEO_SUFFIXES.includes(suffix(file.name));

  /**
   * Why a chosen file cannot be what is asked for ("" when it may be): only what is plainly
   * something else (audio, a document) is stopped here; the service judges the rest.
   */
  function refusal(file, suffixes) {
    const known = suffixes.includes(suffix(file.name)) || VIDEO_SUFFIXES.includes(suffix(file.name));
    if (known || file.type.startsWith("image/") || file.type.startsWith("video/")) return "";
    if (!file.type && !suffix(file.name)) return ""; // no hint at all: let the service look
    const what = file.type.startsWith("audio/") ? "a sound file" : "not a photo or a video";
    return (
      `${file.name} is ${what}. leaktrace reads photos (JPEG, PNG, WebP, TIFF) and videos ` +
      "(MP4, MOV, MKV, WebM, AVI)."
    );
  }

  // -- session -------------------------------------------------------------------------------

  function showTokenPanel(message) {
    $("app").hidden = true;
    $("nav").hidden = true;
    $("session").hidden = true;
    $("token-panel").hidden = false;
    showError("token-error", message || "");
    setStatus("token-status", "");
    $("token-input").value = "";
    $("token-input").focus();
  }

  function showApp() {
    $("token-panel").hidden = true;
    $("app").hidden = false;
    $("nav").hidden = false;
    $("session").hidden = false;
  }

  function signOut(message) {
    state.token = "";
    localStorage.removeItem(TOKEN_KEY);
    stopPolling();
    state.recipients = [];
    state.media = [];
    state.selectedMedia = null;
    state.picked.clear();
    state.job = null;
    $("job").hidden = true;
    clearTrace();
    showTokenPanel(message);
  }

  async function signIn(event) {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) {
      showError("token-error", "Paste a token first.");
      return;
    }
    showError("token-error", "");
    const button = $("token-save");
    busyButton(button, true, "Checking…");
    setStatus("token-status", "Checking the token with the service…", { busy: true });
    state.token = value;
    try {
      await api("/api/recipients"); // any authenticated call proves the token
      localStorage.setItem(TOKEN_KEY, value);
      setStatus("token-status", "");
      await enter();
    } catch (err) {
      if (err.status !== 401) {
        state.token = "";
        setStatus("token-status", "");
        showError("token-error", err.message);
      }
    } finally {
      busyButton(button, false);
    }
  }

  async function enter() {
    showApp();
    showError("global-error", "");
    await Promise.all([
      loadRecipients(),
      loadMedia(),
      resumeJob(),
      loadHistory(),
      loadCases(),
      resumeScan(),
    ]);
  }

  /** A batch still queued or running (the page was reloaded, or another tab started it). */
  async function resumeJob() {
    let active;
    try {
      active = await api("/api/jobs?status=queued&status=running");
    } catch (err) {
      loadFailed(err, "copies-error");
      return;
    }
    if (!active.length || state.job) return;
    const job = active[0]; // the most recent
    state.job = job;
    state.jobBusy = true;
    if (state.selectedMedia === null) {
      state.selectedMedia = job.media_id;
      renderMedia();
    }
    updateMakeButton();
    renderJob(job);
    pollJob(job.id, 0);
  }

  /** A list could not be loaded: an unreachable service is said once, at the top. */
  function loadFailed(err, boxId) {
    if (err.status === 401) return;
    if (err.status === 0) showError("global-error", err.message);
    else showError(boxId, err.message);
  }

  // -- recipients -----------------------------------------------------------------------

  async function loadRecipients() {
    try {
      state.recipients = await api("/api/recipients");
      showError("recipients-error", "");
      showError("global-error", "");
    } catch (err) {
      loadFailed(err, "recipients-error");
      return;
    }
    renderRecipients();
    renderPickList();
  }

  function renderRecipients() {
    const body = $("recipients-body");
    body.replaceChildren(
      ...state.recipients.map((r) => {
        const remove = el("button", {
          type: "button",
          class: "btn btn-small btn-quiet",
          "data-testid": `remove-${r.handle}`,
          "aria-label": `Remove ${r.handle}`,
          text: "Remove",
          onclick: () => removeRecipient(r.handle, remove),
        });
        if (r.copies > 0) {
          remove.disabled = true;
          remove.title = "Has received copies, so stays on record";
        }
        return el(
          "tr",
          { "data-handle": r.handle },
          el("td", {}, el("code", { text: r.handle })),
          el("td", { text: r.name || "" }),
          el("td", { text: r.email || "" }),
          el(
            "td",
            { class: "num" },
            r.copies > 0
              ? el("button", {
                  type: "button",
                  class: "link-button",
                  "data-testid": `copies-${r.handle}`,
                  "aria-label": `Copies sent to ${r.handle}`,
                  text: String(r.copies),
                  onclick: () => showRecipientCopies(r),
                })
              : "0",
          ),
          el("td", { class: "row-actions" }, remove),
        );
      }),
    );
    const n = state.recipients.length;
    $("recipients-filter-field").hidden = n < 8;
    applyRecipientFilter();
    $("recipients-table").hidden = n === 0;
    $("recipients-empty").hidden = n !== 0;
    $("recipients-count").textContent = n ? plural(n, "recipient") : "";
  }

  /** Every copy sent to one recipient, across originals: when, of what, which file. */
  async function showRecipientCopies(r) {
    showError("recipients-error", "");
    let copies;
    try {
      copies = await api(`/api/copies?to=${encodeURIComponent(r.handle)}`);
    } catch (err) {
      loadFailed(err, "recipients-error");
      return;
    }
    $("recipient-copies-title").textContent =
      `Copies sent to ${r.handle}` + (r.name ? ` (${r.name})` : "") + ` · ${copies.length}`;
    $("recipient-copies-list").replaceChildren(
      ...[...copies].reverse().map((c) =>
        el(
          "li",
          { "data-media": c.media_id },
          el("strong", { text: c.media_name || "" }),
          el("span", { class: "muted", text: `sent ${formatDate(c.created)}` }),
          el("code", { text: c.file }),
          c.download_url
            ? el("button", {
                type: "button",
                class: "btn btn-small",
                text: "Download",
                onclick: (e) =>
                  downloadCopy(c, e.currentTarget, {
                    status: "recipients-status",
                    error: "recipients-error",
                  }),
              })
            : null,
        ),
      ),
    );
    const panel = $("recipient-copies");
    panel.hidden = false;
    panel.dataset.handle = r.handle;
    panel.scrollIntoView({ block: "nearest" });
  }

  function applyRecipientFilter() {
    const words = $("recipients-filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of $("recipients-body").rows) {
      const text = row.textContent.toLowerCase();
      row.hidden = !words.every((w) => text.includes(w));
      if (!row.hidden) shown += 1;
    }
    const n = state.recipients.length;
    $("recipients-filter-count").textContent =
      words.length && n ? `${shown} of ${n} shown` : "";
  }

  async function addRecipient(event) {
    event.preventDefault();
    const form = $("recipient-form");
    const handle = $("recipient-handle").value.trim();
    showError("recipient-form-error", "");
    setStatus("recipient-form-status", "");
    if (!handle) {
      showError("recipient-form-error", "Enter a handle.");
      $("recipient-handle").focus();
      return;
    }
    const payload = { handle };
    const name = $("recipient-name").value.trim();
    const email = $("recipient-email").value.trim();
    if (name) payload.name = name;
    if (email) payload.email = email;
    const button = $("recipient-add");
    busyButton(button, true, "Adding…");
    try {
      const added = await api("/api/recipients", { method: "POST", json: payload });
      form.reset();
      setStatus("recipient-form-status", `Added ${added.handle}.`, { kind: "ok" });
      $("recipient-handle").focus();
      await loadRecipients();
    } catch (err) {
      if (err.status !== 401) showError("recipient-form-error", err.message);
    } finally {
      busyButton(button, false);
    }
  }

  async function importRecipients(event) {
    event.preventDefault();
    const file = $("import-file").files[0];
    showError("import-error", "");
    setStatus("import-status", "");
    if (!file) {
      showError("import-error", "Choose a CSV file first.");
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("skip_existing", $("import-skip").checked ? "true" : "false");
    const button = $("import-submit");
    busyButton(button, true, "Importing…");
    try {
      const answer = await api("/api/recipients/import", { method: "POST", form });
      $("import-file").value = "";
      const skipped = (answer.skipped || []).length;
      setStatus(
        "import-status",
        `Imported ${plural(answer.imported, "recipient")}` +
          (skipped ? `; ${skipped} already registered, skipped.` : "."),
        { kind: "ok" },
      );
      await loadRecipients();
    } catch (err) {
      if (err.status !== 401) showError("import-error", err.message);
    } finally {
      busyButton(button, false);
    }
  }

  async function removeRecipient(handle, button) {
    showError("recipients-error", "");
    setStatus("recipients-status", "");
    busyButton(button, true, "Removing…");
    try {
      await api(`/api/recipients/${encodeURIComponent(handle)}`, { method: "DELETE" });
      state.picked.delete(handle);
      setStatus("recipients-status", `Removed ${handle}.`, { kind: "ok" });
      await loadRecipients();
    } catch (err) {
      if (err.status !== 401) showError("recipients-error", err.message);
      busyButton(button, false);
    }
  }

  // -- copies ----------------------------------------------------------------------------

  async function loadMedia() {
    try {
      state.media = await api("/api/media");
      showError("copies-error", "");
    } catch (err) {
      loadFailed(err, "copies-error");
      return;
    }
    renderMedia();
  }

  function renderMedia() {
    const list = $("media-list");
    const sorted = [...state.media].sort((a, b) => b.id - a.id); // newest first
    list.replaceChildren(
      ...sorted.map((m) => {
        const id = `media-${m.id}`;
        const input = el("input", {
          type: "radio",
          name: "media",
          id,
          value: m.id,
          "data-testid": id,
          checked: m.id === state.selectedMedia,
          onchange: () => selectMedia(m.id),
        });
        return el(
          "label",
          { class: "media-item", for: id },
          input,
          el(
            "span",
            { class: "media-text" },
            el("span", { class: "media-name", text: m.name }),
            el("span", {
              class: "muted",
              text:
                (m.kind === "video"
                  ? `video · ${m.width}×${m.height}` +
                    (typeof m.duration === "number" ? ` · ${clock(m.duration)}` : "")
                  : `${m.width}×${m.height}`) +
                ` · ${formatBytes(m.size)} · ` +
                `${plural(m.copies, "copy", "copies")} · ${formatDate(m.created)}`,
            }),
          ),
        );
      }),
    );
    $("media-empty").hidden = state.media.length !== 0;
    renderSelection();
  }

  function selectMedia(id) {
    state.selectedMedia = id;
    showError("media-error", ""); // an earlier failed upload no longer matters
    showWarnings("media-warnings", []);
    renderSelection();
  }

  function currentMedia() {
    return state.media.find((m) => m.id === state.selectedMedia) || null;
  }

  function renderSelection() {
    const media = currentMedia();
    const line = $("selected-media");
    if (!media) {
      line.textContent = "No original chosen yet.";
    } else {
      line.replaceChildren(
        "Original: ",
        el("strong", { text: media.name }),
        ` (${media.width}×${media.height}) → ${plural(state.picked.size, "recipient")}`,
      );
    }
    for (const button of $("pick-list").querySelectorAll(".link-button")) {
      button.disabled = !media;
    }
    updateMakeButton();
  }

  async function uploadMedia(event) {
    event.preventDefault();
    const file = $("media-file").files[0];
    showError("media-error", "");
    setStatus("media-status", "");
    showWarnings("media-warnings", []);
    if (!file) {
      showError("media-error", "Choose a photo or a video first.");
      return;
    }
    const refused = refusal(file, PHOTO_SUFFIXES);
    if (refused) {
      showError("media-error", refused);
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    const button = $("media-upload");
    busyButton(button, true, "Uploading…");
    state.uploading = true;
    updateMakeButton();
    setStatus("media-status", `Uploading ${file.name}…`, { busy: true });
    try {
      const response = await api("/api/media", { method: "POST", form, raw: true });
      const media = await response.json();
      $("media-form").reset();
      state.selectedMedia = media.id;
      setStatus(
        "media-status",
        response.status === 200
          ? `${media.name} was already registered; it is selected.`
          : media.kind === "video"
            ? `Registered ${media.name} (video, ${media.width}×${media.height}); it is ` +
              "marked when its first copies are made."
            : `Registered ${media.name} (${media.width}×${media.height}).`,
        { kind: "ok" },
      );
      showWarnings("media-warnings", media.warnings);
      await loadMedia();
    } catch (err) {
      setStatus("media-status", "");
      if (err.status !== 401) showError("media-error", err.message);
    } finally {
      busyButton(button, false);
      state.uploading = false;
      updateMakeButton();
    }
  }

  function renderPickList() {
    const handles = new Set(state.recipients.map((r) => r.handle));
    for (const h of [...state.picked]) if (!handles.has(h)) state.picked.delete(h);
    const list = $("pick-list");
    list.replaceChildren(
      ...state.recipients.map((r) => {
        const id = `pick-${r.handle}`;
        return el(
          "div",
          { class: "pick-row" },
          el(
            "label",
            { class: "check", for: id },
            el("input", {
              type: "checkbox",
              id,
              value: r.handle,
              "data-testid": id,
              checked: state.picked.has(r.handle),
              onchange: (e) => {
                if (e.target.checked) state.picked.add(r.handle);
                else state.picked.delete(r.handle);
                renderPickSummary();
              },
            }),
            el("span", { text: r.handle }),
            r.name ? el("span", { class: "muted", text: r.name }) : null,
          ),
          el("button", {
            type: "button",
            class: "btn btn-small link-button",
            text: "Copy link",
            title: `A download link to ${r.handle}'s copy of the chosen original`,
            "data-testid": `link-${r.handle}`,
            disabled: !currentMedia(),
            onclick: (e) => copyLink(r.handle, e.currentTarget),
          }),
        );
      }),
    );
    $("pick-fieldset").hidden = state.recipients.length === 0;
    renderPickSummary();
  }

  /** Make a signed link to this recipient's copy of the chosen original and put it on the
   * clipboard (or show it, where the page may not write the clipboard). */
  async function copyLink(handle, button) {
    const media = currentMedia();
    if (!media) return;
    setStatus("link-status", "");
    busyButton(button, true, "…");
    try {
      const [link] = await api(`/api/media/${media.id}/links`, {
        method: "POST",
        json: { recipients: [handle] },
      });
      const until = `works until ${formatDate(link.expires)}`;
      $("link-status").dataset.url = link.url;
      let copied = false;
      try {
        await navigator.clipboard.writeText(link.url);
        copied = true;
      } catch (err) {
        copied = false; // not a secure context, or refused: the link is shown instead
      }
      if (copied) {
        setStatus(
          "link-status",
          `Link to ${handle}'s copy of ${media.name} copied (${until}; no token needed).`,
          { kind: "ok" },
        );
      } else {
        $("link-status").replaceChildren(
          `Link to ${handle}'s copy (${until}): `,
          el("code", { class: "link-url", text: link.url }),
        );
      }
    } catch (err) {
      if (err.status !== 401) showError("copies-error", err.message);
    } finally {
      busyButton(button, false);
    }
  }

  function renderPickSummary() {
    const total = state.recipients.length;
    const n = state.picked.size;
    const all = $("pick-all");
    all.checked = total > 0 && n === total;
    all.indeterminate = n > 0 && n < total;
    $("pick-summary").textContent = total
      ? `${n} of ${plural(total, "recipient")} chosen.`
      : "Add recipients first.";
    renderSelection();
  }

  function toggleAll(event) {
    const on = event.target.checked;
    state.picked = new Set(on ? state.recipients.map((r) => r.handle) : []);
    for (const box of $("pick-list").querySelectorAll("input[type=checkbox]")) box.checked = on;
    renderPickSummary();
  }

  function updateMakeButton() {
    $("make-copies").disabled =
      state.jobBusy || state.uploading || !currentMedia() || state.picked.size === 0;
  }

  async function makeCopies() {
    const media = currentMedia();
    if (!media || state.picked.size === 0) return;
    showError("copies-error", "");
    stopPolling();
    state.jobBusy = true;
    updateMakeButton();
    const recipients = [...state.picked].sort();
    state.job = null;
    renderJob({ status: "queued", done: 0, total: recipients.length, errors: [], warnings: [] });
    $("job-cancel").hidden = true; // until the service has accepted the job
    try {
      const job = await api(`/api/media/${media.id}/copies`, {
        method: "POST",
        json: { recipients },
      });
      state.job = job;
      renderJob(job);
      pollJob(job.id, 0);
    } catch (err) {
      state.jobBusy = false;
      $("job").hidden = true;
      updateMakeButton();
      if (err.status !== 401) showError("copies-error", err.message);
    }
  }

  function stopPolling() {
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
    state.pollRound += 1;
  }

  function pollJob(id, failures) {
    const round = state.pollRound;
    state.pollTimer = setTimeout(async () => {
      let job;
      try {
        job = await api(`/api/jobs/${encodeURIComponent(id)}`);
        if (round !== state.pollRound) return; // stopped meanwhile (cancelled, replaced)
      } catch (err) {
        if (round !== state.pollRound) return;
        if (err.status === 401) return;
        if (err.status === 0 && failures < POLL_RETRIES) {
          setStatus("download-status", "Lost contact with the service; retrying…", {
            busy: true,
          });
          pollJob(id, failures + 1);
          return;
        }
        state.jobBusy = false;
        updateMakeButton();
        setStatus("download-status", "");
        showError("copies-error", err.message);
        return;
      }
      if (!state.job || state.job.id !== id) return; // signed out or replaced meanwhile
      setStatus("download-status", "");
      state.job = { ...state.job, ...job };
      renderJob(job);
      if (ENDED.has(job.status) && !jobSettling(job)) {
        jobEnded();
      } else {
        pollJob(id, 0);
      }
    }, POLL_MS);
  }

  const JOB_LABELS = {
    queued: "Queued",
    running: "Making copies",
    done: "Done",
    failed: "Failed",
    cancelled: "Cancelled",
  };
  const ENDED = new Set(["done", "failed", "cancelled"]);

  /** Ended (done or cancelled), but its worker is still recording or closing the copies in
   * hand: no download link yet, so the page keeps asking. */
  const jobSettling = (job) => ENDED.has(job.status) && job.done > 0 && !job.download_url;

  async function jobEnded() {
    stopPolling();
    state.jobBusy = false;
    updateMakeButton();
    await Promise.all([loadRecipients(), loadMedia()]);
    if (state.job) await listJobCopies(state.job);
  }

  async function cancelJob() {
    const job = state.job;
    if (!job) return;
    stopPolling(); // the answer to the cancel is the job as it ends
    const button = $("job-cancel");
    busyButton(button, true, "Cancelling…");
    setStatus("download-status", "Stopping: the copies in hand are finished and recorded…", {
      busy: true,
    });
    showError("copies-error", "");
    try {
      let answer;
      try {
        answer = await api(`/api/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
      } catch (err) {
        if (err.status !== 409) throw err;
        answer = await api(`/api/jobs/${encodeURIComponent(job.id)}`); // it ended meanwhile
      }
      state.job = answer;
      setStatus("download-status", "");
      renderJob(answer);
      if (jobSettling(answer)) pollJob(answer.id, 0);
      else await jobEnded();
    } catch (err) {
      setStatus("download-status", "");
      if (err.status !== 401) showError("copies-error", err.message);
      if (state.job && !ENDED.has(state.job.status)) pollJob(state.job.id, 0);
    } finally {
      busyButton(button, false);
      button.hidden = ENDED.has((state.job || {}).status);
    }
  }

  function renderJob(job) {
    $("job").hidden = false;
    const badge = $("job-state");
    const marking = job.status === "running" && job.phase === "marking";
    badge.textContent = jobSettling(job)
      ? job.status === "cancelled"
        ? "Stopping…"
        : "Finishing…"
      : marking
        ? "Marking"
        : JOB_LABELS[job.status] || job.status;
    badge.className = `badge badge-${job.status}`;
    $("job").dataset.status = job.status;
    $("job").dataset.phase = job.phase || "";
    const total = Math.max(job.total || 0, 0);
    const bar = $("job-progress");
    const phase = $("job-phase");
    if (marking && job.frames_total) {
      // The video's first batch: one encode, frame by frame, before any copy.
      $("job-count").textContent = `frame ${job.frames} of ${job.frames_total}`;
      bar.max = job.frames_total;
      bar.value = Math.min(job.frames, bar.max);
      phase.textContent =
        "Step 1 of 2: the video is prepared once, frame by frame; then each recipient's copy " +
        "is made.";
    } else {
      $("job-count").textContent = `${job.done} / ${plural(total, "copy", "copies")}`;
      bar.max = Math.max(total, 1);
      bar.value = Math.min(job.done, bar.max);
      phase.textContent =
        job.status === "running" && job.phase === "copies" && mediaOf(job)?.kind === "video"
          ? "Step 2 of 2: each recipient's copy."
          : "";
    }
    phase.hidden = !phase.textContent;
    const errors = $("job-errors");
    errors.replaceChildren(...(job.errors || []).map((e) => el("li", { text: e })));
    errors.hidden = !(job.errors && job.errors.length);
    showWarnings("job-warnings", job.warnings);
    const note = $("job-note");
    if (jobSettling(job) && job.status === "cancelled") {
      note.textContent = "Stopping: the copies in hand are being finished and recorded…";
    } else if (job.status === "cancelled") {
      note.textContent =
        `Cancelled after ${plural(job.done, "copy", "copies")}` +
        (job.done ? "; they are recorded and in the zip." : ".");
    } else {
      note.textContent = job.media_name ? `Copies of ${job.media_name}.` : "";
    }
    note.hidden = !note.textContent;
    $("job-download").hidden = !job.download_url;
    $("job-cancel").hidden = ENDED.has(job.status);
    if (!job.download_url) $("job-copies").hidden = true;
  }

  const mediaOf = (job) => state.media.find((m) => m.id === job.media_id) || null;

  /** A video's copies are large: after its batch, each recipient's can be fetched alone. */
  async function listJobCopies(job) {
    const box = $("job-copies");
    box.hidden = true;
    if (!job.download_url || mediaOf(job)?.kind !== "video") return;
    let copies;
    try {
      copies = await api(`/api/media/${job.media_id}/copies`);
    } catch (err) {
      if (err.status !== 401) showError("copies-error", err.message);
      return;
    }
    if (!state.job || state.job.id !== job.id) return; // another batch meanwhile
    const newest = new Map();
    for (const c of copies) if (c.download_url) newest.set(c.handle, c);
    const items = [...newest.values()].sort((a, b) => a.handle.localeCompare(b.handle));
    $("job-copies-list").replaceChildren(
      ...items.map((c) =>
        el(
          "li",
          {},
          el("code", { text: c.handle }),
          el("button", {
            type: "button",
            class: "btn btn-small",
            "data-testid": `copy-${c.handle}`,
            text: "Download",
            "aria-label": `Download ${c.handle}'s copy`,
            onclick: (e) => downloadCopy(c, e.currentTarget),
          }),
        ),
      ),
    );
    box.hidden = items.length === 0;
  }

  async function downloadCopy(copy, button, where = { status: "download-status", error: "copies-error" }) {
    busyButton(button, true, "Preparing…");
    showError(where.error, "");
    try {
      const { blob, filename } = await fetchBlob(copy.download_url);
      saveBlob(blob, filename || copy.file.split("/").pop());
      setStatus(where.status, `Download of ${copy.handle}'s copy started.`, { kind: "ok" });
    } catch (err) {
      if (err.status !== 401) showError(where.error, err.message);
    } finally {
      busyButton(button, false);
    }
  }

  async function downloadZip() {
    const job = state.job;
    if (!job || !job.download_url) return;
    const button = $("job-download");
    busyButton(button, true, "Preparing…");
    setStatus("download-status", "Fetching the zip…", { busy: true });
    showError("copies-error", "");
    try {
      const { blob, filename } = await fetchBlob(job.download_url);
      saveBlob(blob, filename || `${stem(job.media_name || "copies")}-copies.zip`);
      setStatus("download-status", "Download started.", { kind: "ok" });
    } catch (err) {
      setStatus("download-status", "");
      if (err.status !== 401) showError("copies-error", err.message);
    } finally {
      busyButton(button, false);
    }
  }

  // -- trace -----------------------------------------------------------------------------

  function clearTrace() {
    state.trace = null;
    $("trace-result").hidden = true;
    $("video-evidence").hidden = true;
    delete $("verdict").dataset.verdict;
    showError("trace-error", "");
    setStatus("trace-status", "");
    setStatus("report-status", "");
  }

  async function traceFile(file) {
    clearTrace();
    const refused = refusal(file, LEAK_SUFFIXES);
    if (refused) {
      showError("trace-error", refused);
      $("trace-file").value = "";
      return;
    }
    const zone = $("drop-zone");
    zone.classList.add("busy");
    zone.setAttribute("aria-busy", "true");
    $("trace-file").disabled = true;
    const video = isVideoFile(file);
    const started = Date.now();
    const say = () =>
      setStatus(
        "trace-status",
        video
          ? `Tracing ${file.name}: finding the part of a video it shows, then reading its ` +
              "mark frame by frame and testing every recipient. A video takes a while " +
              `(${clock((Date.now() - started) / 1000).replace(/\.\d$/, "")} so far)…`
          : `Tracing ${file.name}: finding its original, registering it and testing every ` +
              "recipient who received it…",
        { busy: true },
      );
    say();
    const ticking = video ? setInterval(say, 1000) : null;
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const result = await api("/api/trace", { method: "POST", form });
      clearInterval(ticking);
      state.trace = result;
      setStatus("trace-status", "");
      renderTrace(result);
      loadHistory();
    } catch (err) {
      clearInterval(ticking);
      setStatus("trace-status", "");
      if (err.status !== 401) showError("trace-error", err.message);
    } finally {
      zone.classList.remove("busy");
      zone.removeAttribute("aria-busy");
      $("trace-file").disabled = false;
      $("trace-file").value = "";
    }
  }

  function renderTrace(result) {
    const matched = result.verdict === "match";
    const own = result.verdict === "original"; // the registered original itself: no test
    const p = formatP(result.p_value, result.log10_p_value);
    const verdict = $("verdict");
    verdict.className = `verdict ${matched ? "verdict-match" : "verdict-nomatch"}`;
    verdict.dataset.verdict = result.verdict;
    const range = matchedRange(result);
    const person = matched ? result.person || { handle: result.recipient } : null;
    const accused = matched ? result.accused || [] : [];
    const about =
      accused.length > 1
        ? accused.map((a) => `${whoText(a)} (p ${formatP(a.p_value, a.log10_p_value)})`).join("; ")
        : person
          ? [person.name, person.email].filter(Boolean).join(" · ")
          : "";
    $("verdict-person").textContent = about;
    $("verdict-person").hidden = !about;
    if (matched && accused.length > 1) {
      // Several recipients combined their copies: each is named with their own probability.
      $("verdict-title").textContent = `Leaked by ${accused.length} recipients together`;
      $("verdict-detail").textContent =
        "Their copies were combined. Each one's false-accusation probability is the chance " +
        "that someone who did not receive a copy would score as high as they do." +
        (range ? ` The leak shows ${range}.` : "");
    } else if (matched) {
      $("verdict-title").textContent = `Leaked by ${result.recipient}`;
      $("verdict-detail").textContent =
        `False-accusation probability ${p}: the chance that someone who did not receive ` +
        "this copy would score this high." +
        (range ? ` The leak shows ${range}.` : "");
    } else if (own) {
      $("verdict-title").textContent = "Your unmarked original";
      $("verdict-detail").textContent =
        `${result.message.charAt(0).toUpperCase()}${result.message.slice(1)}.`;
    } else {
      $("verdict-title").textContent = "No confident match";
      $("verdict-detail").textContent = noMatchText(result, p);
    }

    const candidates = sortedCandidates(result);
    const facts = [
      ["p-value", matched || candidates.length ? p : "—"],
      ["Original", result.media ? result.media.name : "none of the registered originals"],
      ["Leaked file", leakText(result.leak)],
      ["Candidates tested", String(result.candidates_tested ?? candidates.length)],
    ];
    if (range) facts.splice(2, 0, ["Matched part", range]);
    if (candidates.length) {
      const top = candidates[0];
      facts.push(["Best score", `${top.handle ? `${top.handle}: ` : ""}z = ${top.score.toFixed(2)}`]);
    }
    if (typeof result.match_score === "number") {
      facts.push(["Match threshold", `z ≥ ${result.match_score.toFixed(2)} (p ≤ ${formatP(result.threshold)})`]);
    }
    if (result.mode) facts.push(["Mode", result.mode]);
    if (typeof result.evidence_coverage === "number") {
      facts.push(["Evidence coverage", `${Math.round(result.evidence_coverage * 100)} % of the original`]);
    }
    const video = result.media && result.video;
    if (video) {
      facts.push([
        "Segments read",
        `${video.segments_present} of ${video.segments_total} (${video.segment_seconds} s each), ` +
          `from ${plural(video.frames_read, "frame")}`,
      ]);
    }
    $("trace-facts").replaceChildren(
      ...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]),
    );
    $("trace-result").hidden = false; // shown before the charts, which fit its width
    drawStrip(video ? result : null);

    drawChart(candidates, result.match_score, matched, result.candidates_tested);
    $("scores-body").replaceChildren(
      ...candidates.map((c, i) =>
        el(
          "tr",
          {},
          el("td", { class: "num", text: String(i + 1) }),
          el("td", {}, c.handle ? el("code", { text: c.handle }) : el("span", { class: "muted", text: "not named" })),
          el("td", { class: "num", text: c.score.toFixed(2) }),
        ),
      ),
    );
    $("scores-details").hidden = candidates.length === 0;
    $("chart").closest("figure").hidden = own;
    const hasReport = Boolean(result.report_url);
    $("report-open").hidden = !hasReport;
    $("report-download").hidden = !hasReport;
  }

  /** A person as the registry holds them: "bob — Bob Brown <bob@example.com>". */
  function whoText(person) {
    const about = [person.name, person.email && `<${person.email}>`].filter(Boolean).join(" ");
    return about ? `${person.handle} — ${about}` : person.handle;
  }

  /** "0:12.0–1:12.0 of clip.mp4": the part of the original video a leak shows. */
  function matchedRange(result) {
    const v = result.video;
    if (!v || !result.media) return "";
    return `${clock(v.start)}–${clock(v.end)} of ${result.media.name}`;
  }

  function leakText(leak) {
    if (!leak) return "—";
    const size = `${leak.width}×${leak.height}`;
    return typeof leak.duration === "number"
      ? `${leak.name} (${size}, ${clock(leak.duration)})`
      : `${leak.name} (${size})`;
  }

  function sortedCandidates(result) {
    return [...(result.candidates || [])].sort((a, b) => b.score - a.score);
  }

  /** Why nobody is named, from the result's numbers (or the service's reason if none). */
  function noMatchText(result, p) {
    const candidates = sortedCandidates(result);
    if (!candidates.length) {
      const reason = (result.message || "").replace(/^no confident match\s*:?\s*/i, "");
      // The reason starts with the leak's file name, whose case is kept.
      return `${reason || "The leak matches no registered original"}. Nobody is named.`;
    }
    const best = candidates[0];
    const bar =
      typeof result.match_score === "number"
        ? ` below the match threshold z = ${result.match_score.toFixed(2)}`
        : " below the match threshold";
    return (
      `Nobody is named: of ${plural(result.candidates_tested ?? candidates.length, "recipient")} ` +
      `tested, the highest ` +
      `score, z = ${best.score.toFixed(2)}, stays${bar} (p = ${p}).`
    );
  }

  // -- chart -----------------------------------------------------------------------------

  function niceTicks(lo, hi, count = 6) {
    const span = hi - lo || 1;
    const raw = span / count;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) {
      ticks.push(Math.abs(v) < 1e-9 ? 0 : Number(v.toPrecision(6)));
    }
    return ticks;
  }

  // `tested`: how many were tested, when `candidates` lists only the most suspect of them.
  function drawChart(candidates, threshold, matched, tested) {
    const box = $("chart");
    const caption = $("chart-caption");
    box.replaceChildren();
    if (!candidates.length) {
      caption.textContent = "";
      box.append(
        el("p", {
          class: "empty",
          text:
            "No candidate was scored: the leak matches no registered original, or that " +
            "original was never sent to anyone.",
        }),
      );
      return;
    }
    const hasThreshold = typeof threshold === "number" && Number.isFinite(threshold);
    const all = Math.max(tested ?? 0, candidates.length);
    const top = candidates[0];
    const label =
      `Scores of ${plural(all, "candidate")}; best ${top.handle || "(not named)"} ` +
      `at z = ${top.score.toFixed(2)}` +
      (hasThreshold ? `; match threshold z = ${threshold.toFixed(2)}` : "");
    // Drawn at the width it is shown at (text stays at its size; no sideways scrolling).
    const width = Math.max(280, Math.round(box.clientWidth) || 760);
    const chart =
      candidates.length <= BAR_CHART_MAX
        ? barChart(candidates, hasThreshold ? threshold : null, matched, width)
        : dotPlot(candidates, hasThreshold ? threshold : null, matched, width);
    chart.setAttribute("role", "img");
    chart.setAttribute("aria-label", label);
    const rule = hasThreshold
      ? "a name is given only above the dashed threshold."
      : "a name is given only when the false-accusation probability is below the threshold.";
    caption.textContent =
      candidates.length <= BAR_CHART_MAX
        ? `Score z of every candidate, best first. Innocent recipients score around 0; ${rule}`
        : `Score z of ${
            all > candidates.length
              ? `the ${candidates.length} most suspect of ${all} candidates`
              : `all ${all} candidates`
          }, ranked. Innocent recipients score around 0; ${rule}`;
    box.append(chart);
  }

  function scoreRange(candidates, threshold) {
    const scores = candidates.map((c) => c.score);
    let lo = Math.min(0, ...scores);
    let hi = Math.max(1, ...scores, threshold ?? 0);
    const pad = (hi - lo) * 0.06;
    hi += pad;
    if (lo < 0) lo -= pad;
    return [lo, hi];
  }

  function barChart(candidates, threshold, matched, width, labels = {}) {
    const thresholdLabel = labels.threshold || "match threshold z";
    const axisTitle = labels.axis || "score z";
    const row = 26;
    const left = labels.wide
      ? Math.min(240, Math.round(width * 0.42))
      : Math.min(150, Math.round(width * 0.28));
    const right = 48;
    const topPad = 26;
    const bottomPad = 30;
    const height = topPad + candidates.length * row + bottomPad;
    const [lo, hi] = scoreRange(candidates, threshold);
    const x = (v) => left + ((v - lo) / (hi - lo)) * (width - left - right);
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      class: "chart-svg",
      "data-kind": "bars",
    });
    const plotBottom = topPad + candidates.length * row;

    for (const t of niceTicks(lo, hi)) {
      root.append(
        svg("line", { x1: x(t), x2: x(t), y1: topPad - 4, y2: plotBottom, class: "grid" }),
        svg("text", { x: x(t), y: plotBottom + 18, class: "tick", "text-anchor": "middle" }, String(t)),
      );
    }
    if (threshold !== null) {
      root.append(
        svg("rect", {
          x: x(threshold),
          y: topPad - 4,
          width: Math.max(x(hi) - x(threshold), 0),
          height: plotBottom - topPad + 4,
          class: "match-zone",
        }),
      );
    }
    candidates.forEach((c, i) => {
      const y = topPad + i * row;
      const isTop = i === 0 || (matched && threshold !== null && c.score >= threshold); // every accused
      const cls = isTop ? (matched ? "bar bar-top-match" : "bar bar-top") : "bar";
      const x0 = x(Math.min(0, c.score));
      const w = Math.max(Math.abs(x(c.score) - x(0)), 1);
      const name = c.handle || `#${i + 1}`; // a no-match names nobody: ranks only
      const g = svg("g", c.handle ? { "data-handle": c.handle } : {});
      g.append(
        svg("title", {}, `${name}: ${labels.axis ? labels.axis : "z"} = ${c.score.toFixed(2)}`),
        svg(
          "text",
          { x: left - 10, y: y + row / 2 + 4, class: isTop ? "label label-top" : "label", "text-anchor": "end" },
          truncate(name, Math.max(6, Math.floor((left - 14) / 8))),
        ),
        svg("rect", { x: x0, y: y + 4, width: w, height: row - 8, rx: 2, class: cls }),
        svg(
          "text",
          { x: Math.max(x(c.score), x(0)) + 6, y: y + row / 2 + 4, class: isTop ? "value value-top" : "value" },
          c.score.toFixed(2),
        ),
      );
      root.append(g);
    });
    root.append(svg("line", { x1: x(0), x2: x(0), y1: topPad - 4, y2: plotBottom, class: "axis" }));
    if (threshold !== null) {
      root.append(
        svg("line", {
          x1: x(threshold),
          x2: x(threshold),
          y1: topPad - 8,
          y2: plotBottom,
          class: "threshold",
          "data-testid": "threshold-line",
        }),
        svg(
          "text",
          {
            x: x(threshold),
            y: topPad - 12,
            class: "threshold-label",
            "text-anchor": x(threshold) > width - 90 ? "end" : x(threshold) < 90 ? "start" : "middle",
          },
          `${thresholdLabel} = ${threshold.toFixed(2)}`,
        ),
      );
    }
    root.append(
      svg("text", { x: width - right, y: height - 2, class: "axis-title", "text-anchor": "end" }, axisTitle),
    );
    return root;
  }

  function dotPlot(candidates, threshold, matched, width, labels = {}) {
    const thresholdLabel = labels.threshold || "match threshold z";
    const height = width < 500 ? 280 : 340;
    const left = 48;
    const right = 24;
    const topPad = 24;
    const bottomPad = 40;
    const n = candidates.length;
    const [lo, hi] = scoreRange(candidates, threshold);
    const x = (rank) => left + (n === 1 ? 0 : (rank / (n - 1)) * (width - left - right));
    const y = (v) => topPad + ((hi - v) / (hi - lo)) * (height - topPad - bottomPad);
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      class: "chart-svg",
      "data-kind": "dots",
    });
    for (const t of niceTicks(lo, hi, 6)) {
      root.append(
        svg("line", { x1: left, x2: width - right, y1: y(t), y2: y(t), class: t === 0 ? "axis" : "grid" }),
        svg("text", { x: left - 8, y: y(t) + 4, class: "tick", "text-anchor": "end" }, String(t)),
      );
    }
    if (threshold !== null) {
      root.append(
        svg("rect", {
          x: left,
          y: y(hi),
          width: width - left - right,
          height: Math.max(y(threshold) - y(hi), 0),
          class: "match-zone",
        }),
        svg("line", {
          x1: left,
          x2: width - right,
          y1: y(threshold),
          y2: y(threshold),
          class: "threshold",
          "data-testid": "threshold-line",
        }),
        svg(
          "text",
          { x: width - right, y: y(threshold) - 6, class: "threshold-label", "text-anchor": "end" },
          `${thresholdLabel} = ${threshold.toFixed(2)}`,
        ),
      );
    }
    // The crowd first (one path, light), then the best few on top, labelled.
    const r = n > 300 ? 1.8 : 2.6;
    const crowd = svg("g", { class: "dots" });
    for (let i = n - 1; i >= 1; i--) {
      const c = candidates[i];
      const dot = svg("circle", { cx: x(i).toFixed(1), cy: y(c.score).toFixed(1), r, class: "dot" });
      dot.append(svg("title", {}, `${i + 1}. ${c.handle || "(not named)"}: z = ${c.score.toFixed(2)}`));
      crowd.append(dot);
    }
    root.append(crowd);

    // Label the best few just above their dots, pushed upwards so that they never overlap
    // each other or sit on the crowd (which, ranked, only falls to the right).
    const labelled = candidates.slice(0, Math.min(3, n));
    const labelY = labelled.map((c) => y(c.score) - 8);
    for (let i = labelled.length - 2; i >= 0; i--) {
      labelY[i] = Math.min(labelY[i], labelY[i + 1] - 15);
    }
    labelled.forEach((c, i) => {
      const cx = x(i);
      const cy = y(c.score);
      const ly = Math.max(labelY[i], topPad + 4);
      const tx = cx + 26 + 8 * i;
      const isTop = i === 0;
      const name = c.handle || `#${i + 1}`;
      const g = svg("g", c.handle ? { "data-handle": c.handle } : {});
      g.append(
        svg("title", {}, `${i + 1}. ${name}: z = ${c.score.toFixed(2)}`),
        svg("polyline", { points: `${cx + 3},${cy} ${tx - 4},${ly - 4}`, class: "leader" }),
        svg("circle", {
          cx,
          cy,
          r: isTop ? 5 : 3.5,
          class: isTop ? (matched ? "dot dot-top-match" : "dot dot-top") : "dot dot-labelled",
        }),
        svg(
          "text",
          { x: tx, y: ly, class: isTop ? "label label-top halo" : "label halo" },
          `${truncate(name, width < 500 ? 12 : 24)}  z = ${c.score.toFixed(2)}`,
        ),
      );
      root.append(g);
    });
    root.append(
      svg("text", { x: left, y: height - 8, class: "axis-title" }, `candidates ranked by score (${n})`),
      svg("text", { x: 12, y: topPad - 8, class: "axis-title" }, "score z"),
    );
    return root;
  }

  // -- video evidence strip --------------------------------------------------------------

  /**
   * One cell per segment of the original the leak shows, placed on the original's timeline:
   * how sure each segment's reading is (|soft value|), or, when the service says so, whether
   * it agrees with the named recipient. A clip marked per recipient pools every frame, so
   * its cells only say which segments were read.
   */
  function drawStrip(result) {
    const figure = $("video-evidence");
    const box = $("segment-strip");
    box.replaceChildren();
    figure.hidden = !result;
    if (!result) return;
    const v = result.video;
    const segs = v.segments || [];
    const seg = v.segment_seconds || 0.5;
    const agree = (v.agreement || []).length === segs.length ? v.agreement : null;
    const soft = (v.soft_symbols || []).length === segs.length ? v.soft_symbols : null;
    const values = agree || soft;
    const length = Math.max((v.segments_total || 0) * seg, v.end || 0, seg);
    const width = Math.max(280, Math.round(box.clientWidth) || 760);
    const left = 8;
    const right = 8;
    const top = 6;
    const cellH = 26;
    const height = top + cellH + 24;
    const x = (t) => left + (t / length) * (width - left - right);
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      class: "chart-svg strip-svg",
      role: "img",
      "data-cells": segs.length,
      "aria-label": `${segs.length} segments read, ${matchedRange(result)}`,
    });
    root.append(
      svg("rect", { x: left, y: top, width: width - left - right, height: cellH, class: "strip-track" }),
      svg("rect", {
        x: x(v.start),
        y: top - 3,
        width: Math.max(x(v.end) - x(v.start), 1),
        height: cellH + 6,
        class: "strip-range",
      }),
    );
    const cellW = Math.max(((width - left - right) * seg) / length - (length / seg > 120 ? 0 : 1), 0.6);
    segs.forEach((s, i) => {
      const t0 = s * seg;
      let cls = "cell";
      let opacity = 1;
      let note = "read";
      if (agree) {
        cls = agree[i] >= 0 ? "cell cell-agree" : "cell cell-disagree";
        opacity = 0.25 + 0.75 * Math.min(1, Math.abs(agree[i]));
        note = `${agree[i] >= 0 ? "agrees" : "disagrees"} (${agree[i].toFixed(2)})`;
      } else if (soft) {
        opacity = 0.15 + 0.85 * Math.min(1, Math.abs(soft[i]));
        note = `soft value ${soft[i].toFixed(2)}`;
      }
      const cell = svg("rect", {
        x: x(t0).toFixed(2),
        y: top,
        width: cellW.toFixed(2),
        height: cellH,
        class: cls,
        "fill-opacity": opacity.toFixed(2),
      });
      cell.append(svg("title", {}, `${clock(t0)}–${clock(t0 + seg)}: ${note}`));
      root.append(cell);
    });
    for (const t of niceTicks(0, length, 8)) {
      if (t > length + 1e-9) continue;
      const anchor = x(t) < left + 20 ? "start" : x(t) > width - right - 20 ? "end" : "middle";
      root.append(
        svg("text", { x: x(t), y: height - 4, class: "tick", "text-anchor": anchor }, clock(t).replace(/\.0$/, "")),
      );
    }
    box.append(root);
    $("strip-caption").textContent = agree
      ? "Each segment the leak shows, on the original's timeline: blue where it carries " +
        `${result.recipient || "the best candidate"}'s symbol, red where it does not; ` +
        "paler is less sure."
      : soft
        ? "Each segment the leak shows, on the original's timeline; the darker a cell, the " +
          "surer its reading of the mark (the framed part is the matched range)."
        : "The segments the leak shows, on the original's timeline (the framed part). This " +
          "clip was marked per recipient: every frame carries the whole mark, and the " +
          "evidence of all frames read is pooled.";
  }

  function truncate(text, n) {
    return text.length > n ? `${text.slice(0, n - 1)}…` : text;
  }

  // -- evidence report -------------------------------------------------------------------

  function openReport() {
    const result = state.trace;
    if (!result || !result.report_url) return;
    openReportAt(result.report_url, reportName(result), { status: "report-status", error: "trace-error" });
  }

  /** A trace's evidence report in a new tab (downloaded if the browser blocks the tab). */
  async function openReportAt(reportUrl, name, where) {
    // Open the tab now, inside the click, so popup blockers let it through; fill it later.
    const tab = window.open("", "_blank");
    if (tab) tab.document.title = "Evidence report (loading)";
    showError(where.error, "");
    setStatus(where.status, "Fetching the evidence report…", { busy: true });
    try {
      const { blob } = await fetchBlob(reportUrl);
      const url = URL.createObjectURL(new Blob([blob], { type: "text/html" }));
      if (tab && !tab.closed) {
        tab.location.href = url;
        setStatus(where.status, "Opened in a new tab.", { kind: "ok" });
      } else {
        saveBlob(blob, name);
        setStatus(where.status, "The browser blocked the new tab; downloaded instead.", {
          kind: "ok",
        });
      }
      setTimeout(() => URL.revokeObjectURL(url), 120_000);
    } catch (err) {
      if (tab) tab.close();
      setStatus(where.status, "");
      if (err.status !== 401) showError(where.error, err.message);
    }
  }

  // -- history ---------------------------------------------------------------------------

  async function loadHistory() {
    let traces;
    try {
      traces = await api("/api/traces");
      showError("history-error", "");
    } catch (err) {
      loadFailed(err, "history-error");
      return;
    }
    $("history-body").replaceChildren(
      ...traces.map((t) => {
        const said =
          t.verdict === "match"
            ? `Leaked by ${whoText(t.person || { handle: t.recipient })}`
            : t.verdict === "original"
              ? "Your unmarked original"
              : "No confident match";
        const open = el("button", {
          type: "button",
          class: "btn btn-small",
          text: "Report",
          "data-testid": `report-${t.id}`,
          "aria-label": `Evidence report of trace ${t.id}`,
          onclick: () =>
            openReportAt(`/api/traces/${t.id}/report`, `evidence-${t.id}-${stem(t.name)}.html`, {
              status: "history-status",
              error: "history-error",
            }),
        });
        return el(
          "tr",
          { "data-trace": t.id, "data-verdict": t.verdict },
          el("td", { class: "nowrap", text: formatDate(t.created) }),
          el("td", {}, el("code", { text: t.name })),
          el("td", { class: t.verdict === "match" ? "said said-match" : "said", text: said }),
          el("td", {
            class: "num nowrap",
            text: t.verdict === "original" || t.p_value === null ? "—" : t.p_value > 0 ? formatP(t.p_value) : "< 1e-300",
          }),
          el("td", { class: "row-actions" }, open),
        );
      }),
    );
    $("history-table").hidden = !traces.length;
    $("history-empty").hidden = traces.length > 0;
    $("history-count").textContent = traces.length ? plural(traces.length, "trace") : "";
  }

  async function downloadReport() {
    const result = state.trace;
    if (!result || !result.report_url) return;
    setStatus("report-status", "Fetching the evidence report…", { busy: true });
    try {
      const { blob, filename } = await fetchBlob(result.report_url);
      saveBlob(new Blob([blob], { type: "text/html" }), filename || reportName(result));
      setStatus("report-status", "Download started.", { kind: "ok" });
    } catch (err) {
      setStatus("report-status", "");
      if (err.status !== 401) showError("trace-error", err.message);
    }
  }

  function reportName(result) {
    const leak = result.leak ? stem(result.leak.name) : "leak";
    return `evidence-${result.trace_id ?? ""}-${leak}.html`.replace("--", "-");
  }

  // -- drop zone -------------------------------------------------------------------------

  // A zone that takes dropped files (highlighted while something is dragged over it, deaf
  // while busy); onDrop gets the list of files, empty for a dropped link or text.
  function dropTarget(zone, onDrop) {
    let depth = 0;
    zone.addEventListener("dragenter", (e) => {
      e.preventDefault();
      depth += 1;
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragover", (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(depth - 1, 0);
      if (!depth) zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      zone.classList.remove("dragging");
      if (zone.classList.contains("busy")) return;
      onDrop(e.dataTransfer ? [...e.dataTransfer.files] : []);
    });
  }

  function setupDropZone() {
    const zone = $("drop-zone");
    dropTarget(zone, (files) => {
      if (!files.length) {
        showError("trace-error", "Drop a file (a photo or a video), not a link or text.");
        return;
      }
      traceFile(files[0]);
    });
    // A file dropped beside the zone must not make the browser navigate away from the page.
    for (const type of ["dragover", "drop"]) {
      window.addEventListener(type, (e) => {
        if (!zone.contains(e.target)) e.preventDefault();
      });
    }
    $("trace-file").addEventListener("change", (e) => {
      const file = e.target.files[0];
      if (file) traceFile(file);
    });
  }

  // -- scans and cases ---------------------------------------------------------------------

  const SCAN_ENDED = new Set(["done", "failed", "stopped"]);
  const SCAN_LABELS = {
    queued: "Queued",
    running: "Tracing",
    done: "Done",
    failed: "Failed",
    stopped: "Stopped",
  };
  const FILE_GROUPS = [
    ["no_match", "One of your media, nobody named"],
    ["original", "Your unmarked original"],
    ["unrelated", "Not one of your media"],
    ["unreadable", "Not a picture or video leaktrace reads"],
  ];
  // The web page scans with the service's default threshold (1e-9): −log10 of it.
  const CASE_THRESHOLD = 9;

  const pText = (log10) => formatP(log10 > -300 ? 10 ** log10 : 0, log10);

  async function scanFiles(files) {
    showError("scan-error", "");
    if (!files.length) {
      showError("scan-error", "Drop files (photos or videos), not a link or text.");
      return;
    }
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    $("scan-drop").classList.add("busy");
    setStatus("scan-status", `Sending ${plural(files.length, "file")}…`, { busy: true });
    try {
      const scan = await api("/api/scan", { method: "POST", form });
      setStatus("scan-status", "");
      renderScan(scan);
      pollScan(scan.id, 0);
    } catch (err) {
      setStatus("scan-status", "");
      $("scan-drop").classList.remove("busy");
      if (err.status !== 401) showError("scan-error", err.message);
    }
  }

  async function resumeScan() {
    let scans;
    try {
      scans = await api("/api/scans");
    } catch (err) {
      loadFailed(err, "scan-error");
      return;
    }
    const active = scans.find((s) => !SCAN_ENDED.has(s.status));
    if (active) {
      $("scan-drop").classList.add("busy");
      renderScan(active);
      pollScan(active.id, 0);
    }
  }

  function pollScan(id, failures) {
    clearTimeout(state.scanTimer);
    state.scanTimer = setTimeout(async () => {
      let scan;
      try {
        scan = await api(`/api/scans/${encodeURIComponent(id)}`);
      } catch (err) {
        if (err.status === 0 && failures < POLL_RETRIES) {
          pollScan(id, failures + 1);
          return;
        }
        $("scan-drop").classList.remove("busy");
        if (err.status !== 401) showError("scan-error", err.message);
        return;
      }
      renderScan(scan);
      if (SCAN_ENDED.has(scan.status)) {
        $("scan-drop").classList.remove("busy");
        await Promise.all([loadCases(), loadHistory()]);
      } else {
        pollScan(id, 0);
      }
    }, POLL_MS);
  }

  function renderScan(scan) {
    $("scan").hidden = false;
    const badge = $("scan-state");
    badge.textContent = SCAN_LABELS[scan.status] || scan.status;
    badge.className = `badge badge-${scan.status === "queued" ? "running" : scan.status}`;
    const matched = scan.files.filter((f) => f.status === "match").length;
    $("scan-count").textContent =
      `${scan.done} of ${plural(scan.total, "file")} judged` +
      (scan.done ? `; ${plural(matched, "file")} traced to a recipient` : "");
    const bar = $("scan-progress");
    bar.max = Math.max(scan.total, 1);
    bar.value = scan.done;
    showError("scan-error", scan.errors && scan.errors.length ? scan.errors.join("\n") : "");
    const groups = FILE_GROUPS.map(([status, title]) => {
      const files = scan.files.filter((f) => f.status === status);
      if (!files.length) return null;
      return el(
        "li",
        { "data-status": status },
        el("strong", { text: `${title} (${files.length})` }),
        el(
          "ul",
          { class: "sent-list" },
          ...files.map((f) =>
            el("li", {}, el("code", { text: f.name }), el("span", { class: "muted", text: ` — ${f.reason}` })),
          ),
        ),
      );
    }).filter(Boolean);
    $("scan-others").replaceChildren(...groups);
    $("scan-others").hidden = !groups.length;
  }

  function leakersText(c) {
    return c.leakers.map((p) => whoText(p)).join("; ");
  }

  async function loadCases() {
    let cases;
    try {
      cases = await api("/api/cases");
      showError("cases-error", "");
    } catch (err) {
      loadFailed(err, "cases-error");
      return;
    }
    state.cases = cases;
    $("cases-body").replaceChildren(
      ...cases.map((c) =>
        el(
          "tr",
          { "data-case": c.id },
          el("td", { class: "num", text: `#${c.id}` }),
          el("td", { class: "said said-match", text: leakersText(c) }),
          el("td", { text: c.media.map((m) => m.name).join(", ") }),
          el("td", { class: "num", text: `${c.files} (${plural(c.leaks, "leak")})` }),
          el("td", { class: "num nowrap", text: pText(c.log10_p) }),
          el(
            "td",
            { class: "row-actions" },
            el("button", {
              type: "button",
              class: "btn btn-small",
              text: "Open",
              "data-testid": `case-${c.id}`,
              "aria-label": `Open case ${c.id}`,
              onclick: () => openCase(c.id),
            }),
          ),
        ),
      ),
    );
    $("cases-table").hidden = !cases.length;
    $("cases-empty").hidden = cases.length > 0;
    $("cases-count").textContent = cases.length ? plural(cases.length, "case") : "";
  }

  async function openCase(id) {
    showError("case-error", "");
    let c;
    try {
      c = await api(`/api/cases/${id}`);
    } catch (err) {
      if (err.status !== 401) showError("cases-error", err.message);
      return;
    }
    state.openCase = c;
    $("case-view").hidden = false; // drawn at the width it is shown at
    renderCase(c);
    $("case-view").scrollIntoView({ block: "nearest" });
  }

  function renderCase(c) {
    const items = c.media.length;
    $("case-title").textContent = `Case #${c.id}`;
    $("case-verdict").textContent =
      c.leakers.length === 1
        ? `Leaked by ${c.leakers[0].handle}`
        : `Leaked by ${c.leakers.length} recipients together`;
    $("case-detail").textContent =
      `${leakersText(c)} — ${plural(c.files, "file")}, ${plural(c.leaks, "distinct leak")} of ` +
      `${plural(items, "media item")}; combined false-accusation probability ` +
      `${pText(c.log10_p)} (strongest single file ${pText(c.strongest_log10_p)}), ` +
      `corrected for the ${plural(c.eligible, "recipient")} who received every item.`;
    const rows = c.file_list
      .map((f) => ({ handle: f.name + (f.reshare ? " (re-share)" : ""), score: -f.log10_p }))
      .sort((a, b) => b.score - a.score);
    const box = $("case-chart");
    const width = Math.max(280, Math.round(box.clientWidth) || 760);
    const chart = barChart(rows, CASE_THRESHOLD, true, width, {
      threshold: "threshold −log10 p",
      axis: "−log10 p",
      wide: true, // file names, longer than handles
    });
    chart.setAttribute("role", "img");
    chart.setAttribute("aria-label", `Evidence of ${plural(rows.length, "file")}`);
    box.replaceChildren(chart);
    $("case-chart-caption").textContent =
      "Evidence of each file: −log10 of its own false-accusation probability (longer is " +
      "stronger); a file names someone only beyond the dashed threshold. Re-shares of one " +
      "leak are the same evidence and count once.";
    const mediaName = new Map(c.media.map((m) => [m.id, m.name]));
    $("case-files").replaceChildren(
      ...c.file_list.map((f) =>
        el(
          "li",
          {},
          el("code", { text: f.name }),
          el("span", {
            class: "muted",
            text:
              ` — ${mediaName.get(f.media_id) || ""}, p = ${pText(f.log10_p)}` +
              (f.reshare ? `, re-share of leak ${f.leak}` : `, leak ${f.leak}`),
          }),
          " ",
          el("button", {
            type: "button",
            class: "btn btn-small",
            text: "Report",
            onclick: () =>
              openReportAt(f.report_url, `evidence-${f.trace_id}-${stem(f.name)}.html`, {
                status: "case-status",
                error: "case-error",
              }),
          }),
        ),
      ),
    );
  }

  async function exportCase() {
    const c = state.openCase;
    if (!c) return;
    showError("case-error", "");
    const button = $("case-export");
    busyButton(button, true, "Preparing…");
    setStatus("case-status", "Building the evidence bundle…", { busy: true });
    try {
      const where = $("case-found-at").value.trim();
      const url = c.export_url + (where ? `?found_at=${encodeURIComponent(where)}` : "");
      const { blob, filename } = await fetchBlob(url);
      saveBlob(new Blob([blob], { type: "application/zip" }), filename || `case-${c.id}.zip`);
      setStatus("case-status", "Download started. Check it later with: leaktrace cases verify", {
        kind: "ok",
      });
    } catch (err) {
      setStatus("case-status", "");
      if (err.status !== 401) showError("case-error", err.message);
    } finally {
      busyButton(button, false);
    }
  }

  function setupScanDrop() {
    dropTarget($("scan-drop"), scanFiles);
    $("scan-files").addEventListener("change", (e) => {
      const files = [...e.target.files];
      e.target.value = "";
      if (files.length) scanFiles(files);
    });
    $("case-export").addEventListener("click", exportCase);
    $("case-close").addEventListener("click", () => {
      $("case-view").hidden = true;
      state.openCase = null;
    });
  }

  // -- start -----------------------------------------------------------------------------

  async function showVersion() {
    try {
      const response = await fetch("/api/health", { cache: "no-store" });
      if (!response.ok) return;
      const health = await response.json();
      $("version").textContent = `leaktrace ${health.version}`;
    } catch {
      // the first authenticated call reports an unreachable service
    }
  }

  function init() {
    $("token-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut(""));
    $("recipient-form").addEventListener("submit", addRecipient);
    $("import-form").addEventListener("submit", importRecipients);
    $("media-form").addEventListener("submit", uploadMedia);
    $("recipients-filter").addEventListener("input", applyRecipientFilter);
    $("pick-all").addEventListener("change", toggleAll);
    $("make-copies").addEventListener("click", makeCopies);
    $("job-download").addEventListener("click", downloadZip);
    $("job-cancel").addEventListener("click", cancelJob);
    $("report-open").addEventListener("click", openReport);
    $("report-download").addEventListener("click", downloadReport);
    $("recipient-copies-close").addEventListener("click", () => {
      $("recipient-copies").hidden = true;
    });
    // The charts are drawn at the width they are shown at: again when it changes.
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        if (state.trace && !$("trace-result").hidden) renderTrace(state.trace);
        if (state.openCase && !$("case-view").hidden) renderCase(state.openCase);
      }, 150);
    });
    setupDropZone();
    setupScanDrop();
    showVersion();
    if (state.token) {
      enter().catch((err) => showError("global-error", err.message));
    } else {
      showTokenPanel("");
    }
  }

  init();
})();
