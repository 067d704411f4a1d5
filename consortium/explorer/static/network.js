// The Network page, live: one server-sent event per second carries the whole snapshot, and this
// script redraws the node table, the tx/s chart, the event timeline and the latest block's
// consensus as inline SVG. No library: the explorer serves everything it uses.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const PHASES = ["pre_prepare", "prepared", "committed", "executed"];

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function text(value) { return value === null || value === undefined ? "-" : String(value); }
  function clock(seconds) { return new Date(seconds * 1000).toLocaleTimeString(); }

  function drawNodes(snapshot) {
    const body = document.querySelector("#nodes tbody");
    clear(body);
    for (const n of snapshot.nodes) {
      const row = document.createElement("tr");
      row.dataset.node = n.id;
      const cells = [n.id, n.role, n.health, text(n.view), text(n.primary), text(n.height),
        (n.head_hash || "").slice(0, 12), n.tx_per_s || 0, n.mempool || 0, n.view_changes || 0,
        n.rejected_msgs || 0];
      cells.forEach((value, i) => {
        const cell = document.createElement("td");
        cell.textContent = value;
        if (i === 2) cell.className = "health " + n.health.replace(" ", "-");
        if (i === 6) cell.className = "mono";
        row.appendChild(cell);
      });
      const metrics = document.createElement("td");
      if (n.metrics_url) {
        const link = document.createElement("a");
        link.href = n.metrics_url; link.textContent = "/metrics";
        metrics.appendChild(link);
      } else metrics.textContent = "-";
      row.appendChild(metrics);
      body.appendChild(row);
    }
  }

  function drawAlerts(snapshot) {
    const list = document.getElementById("alerts");
    clear(list);
    for (const a of snapshot.alerts) {
      const item = document.createElement("li");
      item.className = "alert " + a.level; item.textContent = a.text;
      list.appendChild(item);
    }
    const bus = document.getElementById("bus-problem");
    bus.hidden = !snapshot.bus_problem;
    bus.textContent = snapshot.bus_problem || "";
  }

  function drawChart(snapshot) {
    const svg = document.getElementById("tps-chart");
    clear(svg);
    const W = 900, H = 200, L = 50, B = 24, T = 10;
    const end = snapshot.now, start = end - snapshot.window_s;
    const points = snapshot.tx_per_s.filter(p => p[0] >= start);
    const top = Math.max(10, ...points.map(p => p[1]));
    const x = t => L + (t - start) / (end - start) * (W - L - 10);
    const y = v => H - B - v / top * (H - B - T);
    for (let i = 0; i <= 4; i++) {
      const v = top * i / 4;
      svg.appendChild(el("line", {x1: L, x2: W - 10, y1: y(v), y2: y(v), class: "axis"}));
      svg.appendChild(el("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end"}, Math.round(v)));
    }
    for (let m = 0; m <= snapshot.window_s / 60; m++) {
      const t = end - m * 60;
      svg.appendChild(el("text", {x: x(t), y: H - 6, "text-anchor": "middle"}, m === 0 ? "now" : "-" + m + " min"));
    }
    if (points.length > 1) {
      const line = points.map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
      svg.appendChild(el("polygon", {points: x(points[0][0]) + "," + y(0) + " " + line + " " + x(points[points.length - 1][0]) + "," + y(0), class: "area"}));
      svg.appendChild(el("polyline", {points: line, class: "line"}));
    }
  }

  function drawEvents(snapshot) {
    const svg = document.getElementById("event-timeline");
    clear(svg);
    const W = 900, L = 90, rowH = 22;
    const end = snapshot.now, start = end - snapshot.window_s;
    const x = t => L + (t - start) / (end - start) * (W - L - 10);
    const rows = {};
    snapshot.nodes.forEach((n, i) => {
      rows[n.id] = 14 + i * rowH;
      svg.appendChild(el("text", {x: 0, y: rows[n.id] + 4}, n.id));
      svg.appendChild(el("line", {x1: L, x2: W - 10, y1: rows[n.id], y2: rows[n.id], class: "axis"}));
    });
    const list = document.getElementById("event-list");
    clear(list);
    for (const e of snapshot.events) {
      if (!(e.node in rows)) continue;
      const mark = el("circle", {cx: x(e.at), cy: rows[e.node], r: 5, class: "ev " + e.kind});
      mark.appendChild(el("title", {}, clock(e.at) + " " + e.node + ": " + e.text));
      svg.appendChild(mark);
    }
    for (const e of snapshot.events.slice(-20).reverse()) {
      const item = document.createElement("li");
      item.textContent = clock(e.at) + "  " + e.node + ": " + e.text;
      list.appendChild(item);
    }
  }

  function drawLatest(snapshot) {
    const svg = document.getElementById("latest-timeline");
    clear(svg);
    const block = snapshot.latest_block;
    const label = document.getElementById("latest-height");
    if (!block) { label.textContent = "(none heard yet)"; return; }
    label.innerHTML = "";
    const link = document.createElement("a");
    link.href = "/blocks/" + block.height; link.textContent = "height " + block.height;
    label.appendChild(link);
    const W = 760, L = 110, rowH = 28;
    svg.setAttribute("viewBox", "0 0 " + (W + L + 40) + " " + (block.rows.length * rowH + 40));
    block.rows.forEach((r, i) => {
      const y = i * rowH + 20;
      svg.appendChild(el("text", {x: 0, y: y + 4, class: "label"}, r.node));
      svg.appendChild(el("line", {x1: L, x2: L + W, y1: y, y2: y, class: "axis"}));
      r.marks.forEach((m, j) => {
        if (j > 0) {
          const p = r.marks[j - 1];
          svg.appendChild(el("line", {x1: L + p.x * W, x2: L + m.x * W, y1: y, y2: y, class: "span " + m.phase}));
        }
        const dot = el("circle", {cx: L + m.x * W, cy: y, r: 5, class: "mark " + m.phase});
        dot.appendChild(el("title", {}, r.node + ": " + m.phase + " at +" + m.ms + " ms"));
        svg.appendChild(dot);
      });
    });
    const bottom = block.rows.length * rowH + 32;
    svg.appendChild(el("text", {x: L, y: bottom, class: "label"}, "0 ms"));
    svg.appendChild(el("text", {x: L + W, y: bottom, class: "label", "text-anchor": "end"}, block.span_ms + " ms"));
  }

  function draw(snapshot) {
    drawNodes(snapshot); drawAlerts(snapshot); drawChart(snapshot); drawEvents(snapshot); drawLatest(snapshot);
  }

  draw(JSON.parse(document.getElementById("initial-snapshot").textContent));
  const state = document.getElementById("live-state");
  const source = new EventSource("/api/events");
  source.onmessage = (message) => {
    const snapshot = JSON.parse(message.data);
    draw(snapshot);
    state.textContent = "live: updated " + clock(snapshot.now);
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  };
  source.onerror = () => { state.textContent = "live stream interrupted; reconnecting…"; };
})();
