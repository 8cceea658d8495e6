// The books-side finance pages: charts (ECharts) and workflow diagrams (Mermaid).
// Amounts arrive as strings and stay strings: ECharts reads numeric text itself.
(function () {
  "use strict";

  function data(name) {
    var el = document.querySelector('script[data-chart-data="' + name + '"]');
    return el ? JSON.parse(el.textContent) : null;
  }

  function budgetVsActual(el) {
    var d = data("bva");
    if (!d || !window.echarts) { return; }
    var chart = echarts.init(el);
    var keys = ["budget", "actual", "ledger"];
    chart.setOption({
      tooltip: { trigger: "axis" },
      legend: { top: 0, data: keys.map(function (k) { return d.names[k]; }) },
      grid: { left: 80, right: 20, top: 40, bottom: 100 },
      xAxis: { type: "category", data: d.labels, axisLabel: { rotate: 30, interval: 0 } },
      yAxis: { type: "value" },
      series: keys.map(function (k) { return { name: d.names[k], type: "bar", data: d.series[k] }; })
    });
    chart.on("click", function (p) {
      var links = document.querySelectorAll('[data-testid="drill"]');
      if (links[p.dataIndex]) { window.location.href = links[p.dataIndex].href; }
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function diagrams() {
    var nodes = document.querySelectorAll("pre.mermaid");
    if (!nodes.length || !window.mermaid) { return; }
    mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
    mermaid.run({ nodes: nodes });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('[data-chart="bva"]').forEach(budgetVsActual);
    diagrams();
  });
  // A draft checked in the page arrives by htmx: draw its diagram too.
  document.addEventListener("htmx:afterSettle", diagrams);
})();
