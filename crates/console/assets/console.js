// stackbill console: draws the charts whose data a page embeds as JSON. Pages work without
// it; only the charts need it.
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("usage-data");
    var target = document.getElementById("usage-charts");
    if (!source || !target || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var width = Math.max(260, Math.min(target.clientWidth, 560));
    data.meters.forEach(function (meter) {
      var box = document.createElement("figure");
      box.className = "chart";
      box.setAttribute("data-meter", meter.id);
      var caption = document.createElement("figcaption");
      caption.textContent = meter.name + " (" + meter.unit + " per day)";
      box.appendChild(caption);
      target.appendChild(box);
      new uPlot({
        width: width,
        height: 180,
        legend: { show: false },
        scales: { x: { time: true } },
        axes: [{ stroke: "currentColor" }, { stroke: "currentColor", size: 60 }],
        series: [{}, { label: meter.name, stroke: "#0a5bd3", fill: "rgba(10,91,211,0.15)", width: 1.5 }]
      }, [data.days, meter.values], box);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
