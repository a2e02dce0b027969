// The owner's processing panel on a media page: poll the JSON API, update the bars, reload
// the page when processing ends. The page works without this script (it shows the state
// at load time and refreshes itself through <noscript>).
(function () {
  "use strict";
  var box = document.getElementById("processing");
  if (!box || !window.fetch) return;
  var api = box.getAttribute("data-api");
  var overall = document.getElementById("overall");
  var overallText = document.getElementById("overall-text");
  var delay = 1000;

  function percent(jobs) {
    var blocking = jobs.filter(function (j) { return j.blocking !== false; });
    if (!blocking.length) return 100;
    var sum = 0;
    blocking.forEach(function (j) { sum += j.state === "done" ? 1 : (j.progress || 0); });
    return Math.floor(100 * sum / blocking.length);
  }

  function update(data) {
    if (data.state !== "processing") { window.location.reload(); return false; }
    var p = percent(data.jobs || []);
    if (overall) overall.value = p;
    if (overallText) overallText.textContent = p + "%";
    (data.jobs || []).forEach(function (j) {
      var li = box.querySelector('li[data-step="' + (window.CSS && CSS.escape ? CSS.escape(j.step) : j.step) + '"]');
      if (!li) return;
      var state = li.querySelector('[data-role="state"]');
      if (state) { state.textContent = j.state; state.className = "badge " + j.state; }
      var bar = li.querySelector("progress");
      if (j.state === "running") {
        if (!bar) { bar = document.createElement("progress"); bar.max = 100; li.appendChild(bar); }
        bar.value = Math.round((j.progress || 0) * 100);
      } else if (bar) { bar.remove(); }
    });
    return true;
  }

  function poll() {
    fetch(api, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) { delay = 1000; if (update(data)) setTimeout(poll, delay); })
      .catch(function () { delay = Math.min(delay * 2, 15000); setTimeout(poll, delay); });
  }
  setTimeout(poll, delay);
})();
