// The admin panel's live view of running jobs: poll /admin/jobs.json, update the bars,
// reload when the set of running jobs changes. Without this script the page shows a snapshot.
(function () {
  "use strict";
  var table = document.getElementById("running");
  if (!table || !window.fetch) return;
  function ids(list) { return list.map(function (j) { return String(j.id); }).sort().join(","); }
  var shown = ids(Array.prototype.map.call(table.querySelectorAll("tr[data-job]"), function (tr) { return { id: tr.getAttribute("data-job") }; }));
  function poll() {
    fetch("/admin/jobs.json", { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (ids(data.running) !== shown) { window.location.reload(); return; }
        data.running.forEach(function (j) {
          var tr = table.querySelector('tr[data-job="' + j.id + '"]');
          if (!tr) return;
          var p = Math.floor((j.progress || 0) * 100);
          tr.querySelector("progress").value = p;
          tr.querySelector('[data-role="pct"]').textContent = p + "%";
        });
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 2000);
})();
