// contentgremlin's browser uploader: a small tus 1.0.0 client (core + creation) in plain JS.
//
// Each file is created with POST (Upload-Length, Upload-Metadata), then sent in chunks with
// PATCH (Upload-Offset). The upload URL is remembered in localStorage under a fingerprint of
// the file, so choosing the same file again after a reload resumes it. After a dropped
// connection or a server restart the client asks the server for the offset (HEAD) and goes on,
// retrying with capped exponential backoff. The final PATCH's response names the media
// (Gremlin-Media-Id); the client then follows processing through the JSON API.
(function () {
  "use strict";
  var root = document.getElementById("uploader");
  if (!root || !window.XMLHttpRequest || !window.FormData) return;
  root.hidden = false;
  var plain = document.getElementById("plain");
  if (plain) plain.open = false;

  var ENDPOINT = root.getAttribute("data-endpoint");
  var MEDIA_PAGE = root.getAttribute("data-media");
  var MEDIA_API = root.getAttribute("data-api");
  var MAX_BYTES = Number(root.getAttribute("data-max")) || Infinity;
  // The limit exactly as the page states it (render.human_size), never formatted again here.
  var MAX_TEXT = root.getAttribute("data-max-text") || size(MAX_BYTES);
  var CHUNK = 16 * 1024 * 1024;
  var PARALLEL = 2;
  var BACKOFF = [1000, 2000, 4000, 8000, 15000, 30000];
  var STORE_PREFIX = "gremlin.tus:";
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";

  var drop = document.getElementById("drop");
  var input = document.getElementById("files");
  var list = document.getElementById("list");
  var visibility = document.getElementById("up-visibility");
  var queue = [];
  var active = 0;

  // -- remembering uploads ----------------------------------------------------------------
  function fingerprint(file) {
    return STORE_PREFIX + [file.name, file.size, file.lastModified, file.type].join("/");
  }
  function remember(file, url) {
    try { localStorage.setItem(fingerprint(file), JSON.stringify({ url: url, name: file.name, at: Date.now() })); } catch (e) { /* private mode */ }
  }
  function recall(file) {
    try { var v = JSON.parse(localStorage.getItem(fingerprint(file)) || "null"); return v && v.url; } catch (e) { return null; }
  }
  function forget(file) {
    try { localStorage.removeItem(fingerprint(file)); } catch (e) { /* ignore */ }
  }
  function unfinished() {
    var names = [];
    try {
      for (var i = 0; i < localStorage.length; i++) {
        var key = localStorage.key(i);
        if (key && key.indexOf(STORE_PREFIX) === 0) {
          var v = JSON.parse(localStorage.getItem(key) || "null");
          if (v && Date.now() - v.at < 7 * 86400e3) names.push(v.name); else localStorage.removeItem(key);
        }
      }
    } catch (e) { /* ignore */ }
    return names;
  }

  // -- HTTP -------------------------------------------------------------------------------
  function b64(text) {
    return btoa(unescape(encodeURIComponent(text)));
  }
  function request(method, url, headers, body, onProgress) {
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url, true);
      xhr.withCredentials = true;
      xhr.setRequestHeader("Tus-Resumable", "1.0.0");
      if (CSRF) xhr.setRequestHeader("X-CSRF-Token", CSRF);
      Object.keys(headers || {}).forEach(function (k) { xhr.setRequestHeader(k, headers[k]); });
      if (onProgress && xhr.upload) {
        xhr.upload.onprogress = function (ev) { if (ev.lengthComputable) onProgress(ev.loaded); };
      }
      xhr.onload = function () { resolve(xhr); };
      xhr.onerror = xhr.ontimeout = xhr.onabort = function () { resolve(null); };
      xhr.send(body === undefined ? null : body);
    });
  }
  function errorText(xhr) {
    try { var data = JSON.parse(xhr.responseText); if (data.error) return data.error.message; } catch (e) { /* not JSON */ }
    return "HTTP " + xhr.status;
  }
  function retryable(xhr) {
    // No answer (dropped connection, server restarting), or a transient status.
    return !xhr || xhr.status === 0 || xhr.status === 409 || xhr.status === 423 ||
      xhr.status === 429 || xhr.status >= 500 && xhr.status !== 507;
  }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // -- one file ---------------------------------------------------------------------------
  function Row(file) {
    var li = document.createElement("li");
    li.className = "pending";
    var name = document.createElement("div"); name.className = "name"; name.textContent = file.name;
    var bar = document.createElement("progress"); bar.max = 100; bar.value = 0;
    var state = document.createElement("div"); state.className = "state"; state.textContent = "Waiting…";
    li.appendChild(name); li.appendChild(bar); li.appendChild(state);
    list.appendChild(li);
    this.li = li; this.bar = bar; this.state = state;
  }
  Row.prototype.show = function (cls, text, percent) {
    this.li.className = cls;
    this.state.textContent = text;
    if (percent !== undefined) this.bar.value = percent;
  };
  Row.prototype.link = function (mediaId, text) {
    this.state.textContent = "";
    var a = document.createElement("a");
    a.href = MEDIA_PAGE + encodeURIComponent(mediaId);
    a.textContent = text;
    this.state.appendChild(a);
  };

  function pct(n, total) { return total ? Math.floor(100 * n / total) : 100; }
  // The same rule as gremlin/web/render.py's human_size (the page's sizes): whole bytes under
  // 1 KiB, else one decimal in the largest binary unit below 1024 (up to TiB).
  function size(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i ? n.toFixed(1) + " " + units[i] : Math.round(n) + " B";
  }

  async function offsetOf(url) {
    var xhr = await request("HEAD", url, {});
    if (xhr && xhr.status >= 200 && xhr.status < 300) {
      return { offset: Number(xhr.getResponseHeader("Upload-Offset")), mediaId: xhr.getResponseHeader("Gremlin-Media-Id") };
    }
    if (xhr && (xhr.status === 404 || xhr.status === 410 || xhr.status === 403)) return -1; // gone: start over
    return null; // unknown right now: retry later
  }

  async function create(file) {
    var meta = [
      "filename " + b64(file.name),
      "filetype " + b64(file.type || "application/octet-stream"),
      "visibility " + b64(visibility ? visibility.value : "public")
    ].join(",");
    var xhr = await request("POST", ENDPOINT, { "Upload-Length": String(file.size), "Upload-Metadata": meta });
    if (xhr && xhr.status === 201) {
      var url = new URL(xhr.getResponseHeader("Location"), window.location.href).href;
      remember(file, url);
      return { url: url };
    }
    return { xhr: xhr };
  }

  async function send(file, row) {
    var url = recall(file);
    var offset = 0;
    var failures = 0;
    for (;;) {
      if (!url) {
        row.show("active", "Starting…");
        var made = await create(file);
        if (!made.url) {
          if (!retryable(made.xhr)) { row.show("error", "Refused: " + errorText(made.xhr)); return; }
          await backoff(row, failures++);
          continue;
        }
        url = made.url; offset = 0;
      } else {
        var known = await offsetOf(url);
        if (known === -1) { forget(file); url = null; continue; }
        if (known === null) { await backoff(row, failures++); continue; }
        if (known.mediaId) { forget(file); follow(known.mediaId, row); return; } // committed already
        offset = known.offset;
      }
      // Send chunks from the server's offset until the end (or a failure).
      // At least one PATCH, even when the server already has every byte: its answer to the
      // last chunk names the media (a lost answer is asked again with an empty PATCH).
      for (var first = true; first || offset < file.size; first = false) {
        var end = Math.min(offset + CHUNK, file.size);
        var start = offset;
        row.show("active", "Uploading " + size(start) + " of " + size(file.size), pct(start, file.size));
        var xhr = await request("PATCH", url, {
          "Upload-Offset": String(start), "Content-Type": "application/offset+octet-stream"
        }, file.slice(start, end), function (loaded) {
          row.show("active", "Uploading " + size(start + loaded) + " of " + size(file.size), pct(start + loaded, file.size));
        });
        if (xhr && xhr.status === 204) {
          failures = 0;
          offset = Number(xhr.getResponseHeader("Upload-Offset"));
          var mediaId = xhr.getResponseHeader("Gremlin-Media-Id");
          if (mediaId) { forget(file); follow(mediaId, row); return; }
          if (offset >= file.size) { row.show("error", "The server has the file but did not confirm it; try again later."); return; }
          continue;
        }
        if (xhr && (xhr.status === 404 || xhr.status === 410)) { forget(file); url = null; break; }
        if (!retryable(xhr)) { row.show("error", "Refused: " + errorText(xhr)); forget(file); return; }
        await backoff(row, failures++);
        break; // ask the server where it stands (HEAD), then go on
      }
    }
  }

  async function backoff(row, failures) {
    var wait = BACKOFF[Math.min(failures, BACKOFF.length - 1)];
    wait = wait / 2 + Math.random() * wait / 2;
    row.show("active", "Connection lost; trying again in " + Math.ceil(wait / 1000) + " s…");
    await sleep(wait);
  }

  // After the upload: show processing until the media is ready (or failed).
  async function follow(mediaId, row) {
    row.show("active", "Uploaded; processing…", 100);
    var delay = 1000;
    for (var i = 0; i < 3600; i++) {
      await sleep(delay);
      try {
        var r = await fetch(MEDIA_API + encodeURIComponent(mediaId), { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!r.ok) throw new Error("HTTP " + r.status);
        var data = await r.json();
        if (data.state === "ready") { row.li.className = "done"; row.link(mediaId, "Ready: open " + (data.title || "the media")); return; }
        if (data.state === "failed") { row.li.className = "error"; row.link(mediaId, "Processing failed: " + (data.reason || "see the media page")); return; }
        var jobs = data.jobs || [];
        var p = 0;
        jobs.forEach(function (j) { p += j.state === "done" ? 1 : (j.progress || 0); });
        row.show("active", "Processing " + (jobs.length ? Math.floor(100 * p / jobs.length) : 0) + "%…");
        delay = Math.min(delay * 1.3, 5000);
      } catch (e) {
        delay = Math.min(delay * 2, 15000);
      }
    }
  }

  // -- the queue --------------------------------------------------------------------------
  function add(files) {
    Array.prototype.forEach.call(files, function (file) {
      var row = new Row(file);
      if (!file.size) { row.show("error", "The file is empty."); return; }
      if (file.size > MAX_BYTES) { row.show("error", "Too large: this site accepts up to " + MAX_TEXT + " each."); return; }
      queue.push({ file: file, row: row });
    });
    pump();
  }
  function pump() {
    while (active < PARALLEL && queue.length) {
      var item = queue.shift();
      active++;
      send(item.file, item.row).catch(function (e) { item.row.show("error", String(e)); })
        .then(function () { active--; pump(); });
    }
  }

  drop.addEventListener("click", function () { input.click(); });
  drop.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", function () { add(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) { if (e.dataTransfer && e.dataTransfer.files) add(e.dataTransfer.files); });

  var left = unfinished();
  if (left.length) {
    var note = document.getElementById("resumable");
    note.hidden = false;
    note.textContent = "Unfinished uploads: " + left.join(", ") + ". Choose the same files again to resume where they stopped.";
  }
})();
