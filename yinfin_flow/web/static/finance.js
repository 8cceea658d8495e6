// Finance charts (Apache ECharts, vendored): every [data-chart] element draws the series
// of #chart-data named by it. Amounts arrive as strings (never floats made on the server).
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("chart-data");
    if (!source || !window.echarts) { return; }
    var data = JSON.parse(source.textContent);
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var spec = data[el.getAttribute("data-chart")];
      if (!spec) { return; }
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      var option;
      if (spec.series) {
        option = {
          tooltip: { trigger: "axis" },
          legend: { top: 0 },
          grid: { left: 70, right: 20, top: 30, bottom: 30 },
          xAxis: { type: "category", data: spec.labels },
          yAxis: { type: "value" },
          series: spec.series.map(function (s) { return { name: s.name, type: "bar", data: s.values }; })
        };
      } else {
        option = {
          tooltip: { trigger: "axis", valueFormatter: function (v) { return v + " %"; } },
          grid: { left: 90, right: 30, top: 10, bottom: 30 },
          xAxis: { type: "value", name: spec.name },
          yAxis: { type: "category", data: spec.labels },
          visualMap: { show: false, dimension: 0, pieces: [
            { lte: 80, color: "#3f9142" }, { gt: 80, lte: 100, color: "#e8a317" }, { gt: 100, color: "#d64545" }] },
          series: [{ type: "bar", data: spec.values }]
        };
      }
      chart.setOption(option);
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
