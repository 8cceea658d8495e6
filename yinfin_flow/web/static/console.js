// The console's few behaviours beyond htmx: pick a budget line, add a line, select all.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) {
      // Refusals (4xx) carry the API's error as a fragment: show it, as for a success.
      htmx.config.responseHandling = [
        { code: "204", swap: false },
        { code: "[23]..", swap: true },
        { code: "[4]..", swap: true, error: false },
        { code: "...", swap: false, error: true }
      ];
    }
  });

  function renumber() {
    document.querySelectorAll("#lines .line-row").forEach(function (row, i) {
      var ref = row.querySelector(".ref");
      if (ref) { ref.textContent = String(i + 1); }
    });
  }

  document.addEventListener("click", function (ev) {
    var target = ev.target instanceof Element ? ev.target : null;
    if (!target) { return; }
    var pick = target.closest("[data-pick]");
    if (pick) {
      var row = pick.closest(".line-row");
      row.querySelector(".line-id").value = pick.getAttribute("data-pick");
      row.querySelector(".picked").textContent = pick.getAttribute("data-label");
      row.querySelector(".choices").innerHTML = "";
      row.querySelector(".line-q").value = "";
      document.body.dispatchEvent(new Event("preview"));
      return;
    }
    if (target.closest("[data-add-line]")) {
      var tpl = document.getElementById("line-template");
      var body = document.getElementById("lines");
      var n = body.querySelectorAll(".line-row").length;
      var html = tpl.innerHTML.split("__n__").join(String(n));
      body.insertAdjacentHTML("beforeend", html);
      if (window.htmx) { htmx.process(body.lastElementChild); }
      renumber();
    }
  });

  document.addEventListener("change", function (ev) {
    var target = ev.target instanceof Element ? ev.target : null;
    if (target && target.matches("[data-select-all]")) {
      document.querySelectorAll("input[name=task]").forEach(function (box) { box.checked = target.checked; });
    }
  });

  // A search answer that arrives after a line was picked (the box is empty again) is late: drop it.
  document.addEventListener("htmx:beforeSwap", function (ev) {
    var target = ev.detail && ev.detail.target;
    if (target && target.classList && target.classList.contains("choices")) {
      var q = target.closest(".line-row").querySelector(".line-q");
      if (q && !q.value.trim()) { ev.detail.shouldSwap = false; }
    }
  });

  document.addEventListener("DOMContentLoaded", renumber);
})();
