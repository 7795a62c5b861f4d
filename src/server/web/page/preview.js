// The page's first look: each graph of the URL is shown as the server draws
// it (/render's PNG, in the page's colours) before uPlot (51 KB) and the
// page's script are even loaded: parsing them holds the browser's main
// thread for longer than the server takes to draw. Once the pictures are on
// screen (or after 1.5 s), uPlot and page.js are loaded; page.js moves the
// pictures into their graphs, and each interactive chart replaces its
// picture once drawn.
"use strict";
(function () {
  const p = new URLSearchParams(location.hash.replace(/^#/, ""));
  const root = document.getElementById("graphs");
  // One column of cards: the graph area less the cards' padding and borders.
  const width = Math.max(300, Math.min(root.clientWidth - 48, 1600));
  const previews = {};
  window.carbynePreviews = previews;
  let pending = 0;
  let started = false;
  // uPlot, then the page's script, in that order.
  function start() {
    if (started) return;
    started = true;
    ["/static/uPlot.iife.min.js", "/static/page.js"].forEach((src) => {
      const s = document.createElement("script");
      s.src = src;
      s.async = false;
      document.body.appendChild(s);
    });
  }
  // After the last picture's frame is painted.
  function settle() {
    pending -= 1;
    if (pending <= 0) requestAnimationFrame(() => setTimeout(start, 0));
  }
  p.getAll("g").forEach((i) => {
    const targets = p.getAll(i + ".target");
    if (!targets.length) return;
    const q = new URLSearchParams();
    targets.forEach((t) => q.append("target", t));
    q.set("from", p.get("from") || "-1d");
    q.set("until", p.get("until") || "now");
    q.set("width", String(width));
    q.set("height", "300");
    q.set("bgcolor", "ffffff");
    q.set("fgcolor", "333333");
    q.set("majorGridLineColor", "dddddd");
    q.set("minorGridLineColor", "eeeeee");
    ["title", "areaMode", "lineMode"].forEach((k) => {
      const v = p.get(i + "." + k);
      if (v) q.set(k, v);
    });
    const img = new Image(width, 300);
    img.className = "preview";
    img.alt = targets.join(", ");
    img.addEventListener("load", () => {
      // When it is on screen: the first graph the user sees.
      requestAnimationFrame(() => {
        if (window.carbynePreviewShown === undefined) window.carbynePreviewShown = performance.now();
      });
    });
    img.addEventListener("load", settle);
    // A graph the server cannot draw shows its error once page.js asks.
    img.addEventListener("error", () => { img.hidden = true; settle(); });
    img.src = "/render?" + q.toString();
    previews[i] = img;
    pending += 1;
    root.appendChild(img);
  });
  if (pending === 0) start();
  else setTimeout(start, 1500);
})();
