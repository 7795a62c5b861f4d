// carbyne's page: a metric tree from /metrics/find, graphs drawn with
// uPlot from /render?format=json, the whole layout in the URL's fragment
// so a page can be bookmarked and shared. No other state anywhere.
"use strict";
(function () {
  // graphite-web's default colours, in its order.
  const COLORS = ["#6464ff", "#00c800", "#c80032", "#c864ff", "#966432", "#c8c800",
    "#009696", "#afafaf", "#ff00ff", "#ff6464", "#c8c800", "#c896c8"];
  const state = { from: "-1d", until: "now", refresh: 0, graphs: [] };
  const cards = [];   // per graph: { el, chart, seq }
  let selected = 0;
  let functions = {};
  let timer = null;
  // What the tests read: the graphs' state and uPlot's data.
  window.carbynePage = { state: state, cards: cards };

  const $ = (sel, root) => (root || document).querySelector(sel);

  // --- the URL ----------------------------------------------------------
  function encode() {
    const p = new URLSearchParams();
    p.set("from", state.from);
    p.set("until", state.until);
    if (state.refresh) p.set("refresh", String(state.refresh));
    state.graphs.forEach((g, i) => {
      p.append("g", String(i));
      g.targets.forEach((t) => p.append(i + ".target", t));
      if (g.title) p.set(i + ".title", g.title);
      if (g.areaMode !== "none") p.set(i + ".areaMode", g.areaMode);
      if (g.lineMode !== "slope") p.set(i + ".lineMode", g.lineMode);
    });
    return p.toString();
  }

  function decode(hash) {
    const p = new URLSearchParams(hash.replace(/^#/, ""));
    state.from = p.get("from") || "-1d";
    state.until = p.get("until") || "now";
    state.refresh = Number(p.get("refresh")) || 0;
    state.graphs = p.getAll("g").map((i) => ({
      targets: p.getAll(i + ".target"),
      title: p.get(i + ".title") || "",
      areaMode: p.get(i + ".areaMode") || "none",
      lineMode: p.get(i + ".lineMode") || "slope",
    }));
  }

  function save() {
    history.replaceState(null, "", "#" + encode());
  }

  // --- the server -------------------------------------------------------
  async function getJson(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const msg = body && body.error ? body.error : r.status + " " + r.statusText;
      throw new Error(msg);
    }
    return body;
  }

  function renderQuery(g, extra) {
    const p = new URLSearchParams();
    g.targets.forEach((t) => p.append("target", t));
    p.set("from", state.from);
    p.set("until", state.until);
    Object.keys(extra).forEach((k) => p.set(k, extra[k]));
    return p.toString();
  }

  // --- the metric tree --------------------------------------------------
  async function loadBranch(ul, prefix) {
    let nodes;
    try {
      nodes = await getJson("/metrics/find?query=" + encodeURIComponent(prefix ? prefix + ".*" : "*"));
    } catch (e) {
      ul.textContent = e.message;
      return;
    }
    ul.textContent = "";
    nodes.sort((a, b) => a.text.localeCompare(b.text));
    for (const n of nodes) {
      const li = document.createElement("li");
      const span = document.createElement("span");
      span.className = "node " + (n.leaf ? "leaf" : "branch");
      span.textContent = n.text;
      span.dataset.path = n.id;
      li.appendChild(span);
      if (n.leaf) {
        span.addEventListener("click", () => addTarget(selected, n.id));
      } else {
        const sub = document.createElement("ul");
        sub.hidden = true;
        li.appendChild(sub);
        span.addEventListener("click", () => {
          const open = sub.hidden;
          sub.hidden = !open;
          span.classList.toggle("open", open);
          if (open && !sub.dataset.loaded) {
            sub.dataset.loaded = "1";
            loadBranch(sub, n.id);
          }
        });
      }
      ul.appendChild(li);
    }
  }

  // --- functions for the target box ---------------------------------------
  async function loadFunctions() {
    try {
      functions = await getJson("/functions");
    } catch (e) {
      return;
    }
    const list = $("#function-names");
    Object.keys(functions).sort().forEach((name) => {
      const o = document.createElement("option");
      o.value = name + "(";
      list.appendChild(o);
    });
  }

  function signature(text) {
    const m = /([A-Za-z][A-Za-z0-9]*)\(\s*[^()]*$/.exec(text);
    const f = m && functions[m[1]];
    if (!f) return "";
    const params = (f.params || []).map((p) => {
      const name = p.name + (p.multiple ? "…" : "");
      return p.required ? name : "[" + name + "]";
    });
    return m[1] + "(" + params.join(", ") + ")";
  }

  // --- graphs -----------------------------------------------------------
  function addGraph(g) {
    state.graphs.push(g || { targets: [], title: "", areaMode: "none", lineMode: "slope" });
    selected = state.graphs.length - 1;
    build();
    save();
  }

  function addTarget(i, target) {
    if (!state.graphs.length) {
      addGraph({ targets: [target], title: "", areaMode: "none", lineMode: "slope" });
      return;
    }
    const g = state.graphs[Math.min(i, state.graphs.length - 1)];
    g.targets.push(target);
    save();
    build();
  }

  function build() {
    const root = $("#graphs");
    // The server's pictures of the URL's graphs (preview.js), for the
    // first build only; each stays in its graph until uPlot's replaces it.
    const previews = window.carbynePreviews || {};
    window.carbynePreviews = {};
    cards.forEach((c) => c.chart && c.chart.destroy());
    cards.length = 0;
    root.textContent = "";
    state.graphs.forEach((g, i) => {
      const el = $("#graph-card").content.firstElementChild.cloneNode(true);
      const card = { el: el, chart: null, seq: 0 };
      cards.push(card);
      el.classList.toggle("selected", i === selected);
      el.addEventListener("focusin", () => select(i));
      el.addEventListener("click", () => select(i));
      const title = $(".title", el);
      title.value = g.title;
      title.addEventListener("change", () => { g.title = title.value; save(); draw(i); });
      const area = $(".area-mode", el);
      area.value = g.areaMode;
      area.addEventListener("change", () => { g.areaMode = area.value; save(); draw(i, true); });
      const line = $(".line-mode", el);
      line.value = g.lineMode;
      line.addEventListener("change", () => { g.lineMode = line.value; save(); draw(i, true); });
      $(".remove", el).addEventListener("click", (ev) => {
        ev.stopPropagation();
        state.graphs.splice(i, 1);
        selected = Math.max(0, Math.min(selected, state.graphs.length - 1));
        save();
        build();
      });
      const list = $(".targets", el);
      g.targets.forEach((t, k) => {
        const li = document.createElement("li");
        const input = document.createElement("input");
        input.type = "text";
        input.value = t;
        input.setAttribute("list", "function-names");
        input.setAttribute("aria-label", "target");
        input.addEventListener("change", () => {
          g.targets[k] = input.value;
          save();
          draw(i, true);
        });
        const del = document.createElement("button");
        del.type = "button";
        del.textContent = "×";
        del.title = "remove this target";
        del.addEventListener("click", () => { g.targets.splice(k, 1); save(); build(); });
        li.appendChild(input);
        li.appendChild(del);
        list.appendChild(li);
      });
      const add = $(".new-target", el);
      const sig = $(".signature", el);
      add.addEventListener("input", () => { sig.textContent = signature(add.value); });
      add.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" && add.value.trim()) {
          g.targets.push(add.value.trim());
          save();
          build();
        }
      });
      root.appendChild(el);
      if (previews[String(i)]) $(".chart", el).appendChild(previews[String(i)]);
      draw(i, true);
    });
  }

  function select(i) {
    if (selected === i) return;
    selected = i;
    cards.forEach((c, k) => c.el.classList.toggle("selected", k === i));
  }

  // One graph from /render?format=json; `rebuild`: a new uPlot rather than
  // new data in the old one.
  async function draw(i, rebuild) {
    const g = state.graphs[i];
    const card = cards[i];
    if (!g || !card) return;
    const el = card.el;
    const seq = ++card.seq;
    const chartEl = $(".chart", el);
    const errorEl = $(".error", el);
    $(".png", el).href = "/render?" + renderQuery(g, {
      width: 800, height: 400, title: g.title, areaMode: g.areaMode, lineMode: g.lineMode,
    });
    if (!g.targets.length) {
      el.dataset.state = "empty";
      chartEl.textContent = "";
      return;
    }
    const width = Math.max(300, chartEl.clientWidth || 500);
    let series;
    try {
      series = await getJson("/render?" + renderQuery(g, { format: "json", maxDataPoints: width }));
    } catch (e) {
      if (seq !== card.seq) return;
      $(".preview", chartEl)?.remove();
      errorEl.hidden = false;
      errorEl.textContent = e.message;
      el.dataset.state = "error";
      return;
    }
    if (seq !== card.seq) return;
    errorEl.hidden = true;
    // The union of the series' times; each series' value at each (null where it has none).
    const times = new Set();
    series.forEach((s) => s.datapoints.forEach((p) => times.add(p[1])));
    const xs = Array.from(times).sort((a, b) => a - b);
    const at = new Map(xs.map((t, k) => [t, k]));
    const data = [xs];
    series.forEach((s) => {
      const ys = new Array(xs.length).fill(null);
      s.datapoints.forEach((p) => { ys[at.get(p[1])] = p[0]; });
      data.push(ys);
    });
    const stacked = g.areaMode === "stacked";
    if (stacked) {
      for (let k = 2; k < data.length; k++) {
        data[k] = data[k].map((v, j) => (v === null ? null : v + (data[k - 1][j] || 0)));
      }
    }
    const shapes = series.map((s) => s.target).join("\n") + g.areaMode + g.lineMode;
    if (card.chart && !rebuild && card.shapes === shapes) {
      card.chart.setData(data);
    } else {
      if (card.chart) card.chart.destroy();
      chartEl.textContent = "";
      const paths = g.lineMode === "staircase" ? uPlot.paths.stepped({ align: 1 }) : undefined;
      card.chart = new uPlot({
        width: width,
        height: 300,
        title: g.title || undefined,
        scales: { x: { time: true } },
        series: [{ label: "time" }].concat(series.map((s, k) => ({
          label: s.target,
          stroke: COLORS[k % COLORS.length],
          width: 1.2,
          fill: g.areaMode === "none" ? undefined : COLORS[k % COLORS.length] + "66",
          paths: paths,
          spanGaps: false,
        }))),
        axes: [{}, { size: 60 }],
      }, data, chartEl);
      card.shapes = shapes;
    }
    el.dataset.state = "drawn";
    el.dataset.series = String(series.length);
  }

  function drawAll() {
    state.graphs.forEach((g, i) => draw(i, false));
  }

  // --- the time range and refresh ----------------------------------------
  function toLocalInput(unix) {
    return new Date(unix * 1000).toISOString().slice(0, 16);
  }

  function fromLocalInput(v) {
    const t = Date.parse(v + ":00Z");
    return isNaN(t) ? null : String(Math.floor(t / 1000));
  }

  function setupRange() {
    const range = $("#range");
    const custom = $("#custom");
    const from = $("#from");
    const until = $("#until");
    const relative = Array.from(range.options).some((o) => o.value === state.from) && state.until === "now";
    range.value = relative ? state.from : "custom";
    custom.hidden = relative;
    if (!relative && /^\d+$/.test(state.from)) from.value = toLocalInput(Number(state.from));
    if (!relative && /^\d+$/.test(state.until)) until.value = toLocalInput(Number(state.until));
    range.addEventListener("change", () => {
      if (range.value === "custom") {
        custom.hidden = false;
        const now = Math.floor(Date.now() / 1000);
        from.value = toLocalInput(now - 86400);
        until.value = toLocalInput(now);
        state.from = fromLocalInput(from.value);
        state.until = fromLocalInput(until.value);
      } else {
        custom.hidden = true;
        state.from = range.value;
        state.until = "now";
      }
      save();
      drawAll();
    });
    [from, until].forEach((input) => input.addEventListener("change", () => {
      const f = fromLocalInput(from.value);
      const u = fromLocalInput(until.value);
      if (f && u) {
        state.from = f;
        state.until = u;
        save();
        drawAll();
      }
    }));
    const refresh = $("#refresh");
    refresh.value = String(state.refresh);
    if (refresh.value !== String(state.refresh)) refresh.value = "0";
    refresh.addEventListener("change", () => {
      state.refresh = Number(refresh.value) || 0;
      save();
      schedule();
    });
    schedule();
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = state.refresh > 0 ? setInterval(drawAll, state.refresh * 1000) : null;
  }

  window.addEventListener("resize", () => {
    cards.forEach((c) => {
      const w = $(".chart", c.el).clientWidth;
      if (c.chart && w > 0) c.chart.setSize({ width: w, height: 300 });
    });
  });

  decode(location.hash);
  $("#add-graph").addEventListener("click", () => addGraph());
  setupRange();
  build();
  loadBranch($("#tree"), "");
  loadFunctions();
})();
