// The dashboard's own script: the symbol page's chart (uPlot), its forecast and the progress of
// a job, read from the JSON API. Plain ES2017, no build step.
"use strict";
(function () {
  const dataEl = document.getElementById("chart-data");
  const data = dataEl ? JSON.parse(dataEl.textContent) : null;
  const urls = dataEl ? dataEl.dataset : {};

  function day(iso) { return Date.parse(iso + "T00:00:00Z") / 1000; }
  function fmt(v) { return v == null ? "—" : Number(v).toFixed(2); }

  async function getJson(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    return { status: r.status, body: await r.json() };
  }

  // Follow a queued job (202) to its end; the finished record.
  async function finished(statusUrl, onProgress) {
    for (;;) {
      const { body } = await getJson(statusUrl);
      if (onProgress) onProgress(body);
      if (["succeeded", "failed", "cancelled"].includes(body.state)) return body;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  let plot = null;

  function draw(forecast) {
    const box = document.getElementById("chart");
    if (!box || !data || !data.dates.length || typeof uPlot === "undefined") return;
    const xs = data.dates.map(day);
    const close = data.close.slice();
    const n = xs.length;
    const hits = new Array(n).fill(null), misses = new Array(n).fill(null);
    const index = new Map(xs.map((x, i) => [x, i]));
    for (const r of data.realised) {
      const i = index.get(day(r.date));
      if (i === undefined) continue;
      (r.hit === false ? misses : hits)[i] = r.actual;
    }
    const point = new Array(n).fill(null), low = new Array(n).fill(null), high = new Array(n).fill(null);
    if (forecast && forecast.length) {
      point[n - 1] = low[n - 1] = high[n - 1] = close[n - 1];  // the forecast starts at the last close
      for (const row of forecast) {
        xs.push(day(row.date));
        close.push(null); hits.push(null); misses.push(null);
        point.push(row.price);
        low.push(row.interval ? row.interval[0] : null);
        high.push(row.interval ? row.interval[1] : null);
      }
    }
    const width = Math.max(280, box.clientWidth);
    const opts = {
      width: width,
      height: width < 600 ? 260 : 380,
      scales: { x: { time: true } },
      series: [
        {},
        { label: "Close", stroke: "#1a1a1a", width: 1 },
        { label: "Forecast", stroke: "#0b57d0", width: 2, dash: [6, 4] },
        { label: "80 % low", stroke: "rgba(11,87,208,.35)", width: 1 },
        { label: "80 % high", stroke: "rgba(11,87,208,.35)", width: 1 },
        { label: "Hit", stroke: "#146c2e", paths: () => null, points: { show: true, size: 7, fill: "#146c2e" } },
        { label: "Miss", stroke: "#b3261e", paths: () => null, points: { show: true, size: 7, fill: "#b3261e" } },
      ],
      bands: [{ series: [4, 3], fill: "rgba(11,87,208,.15)" }],
      axes: [{}, { size: 60 }],
    };
    box.textContent = "";
    plot = new uPlot(opts, [xs, close, point, low, high, hits, misses], box);
    range(forecast && forecast.length ? 252 : 1260);
    // When the history, then the forecast, first showed (make bench reads these marks).
    const mark = forecast ? "forecast-drawn" : "chart-drawn";
    if (!performance.getEntriesByName(mark).length) performance.mark(mark);
  }

  function range(sessions) {
    if (!plot) return;
    const xs = plot.data[0];
    const last = xs[xs.length - 1];
    const first = sessions > 0 && xs.length > sessions ? xs[xs.length - sessions] : xs[0];
    plot.setScale("x", { min: first, max: last });
  }

  function forecastTable(rows) {
    const table = document.getElementById("forecast-table");
    if (!table) return;
    const body = table.querySelector("tbody");
    body.textContent = "";
    for (const row of rows) {
      const tr = document.createElement("tr");
      const cells = [row.horizon, row.date, fmt(row.price),
        row.interval ? fmt(row.interval[0]) : "—", row.interval ? fmt(row.interval[1]) : "—"];
      cells.forEach((text, i) => {
        const cell = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) cell.scope = "row";
        cell.textContent = text;
        tr.appendChild(cell);
      });
      body.appendChild(tr);
    }
    table.hidden = false;
  }

  async function loadForecast() {
    const status = document.getElementById("forecast-status");
    if (!status || !data || !data.horizon) return null;
    status.textContent = "Computing the forecast…";
    let { status: code, body } = await getJson(urls.predictUrl + "?horizon=" + data.horizon);
    if (code === 202) {
      const job = await finished(body.status_url);
      if (job.state !== "succeeded") {
        status.textContent = "The forecast failed: " + ((job.error && job.error.message) || job.state);
        return null;
      }
      body = job.result;
    } else if (code !== 200) {
      status.textContent = "No forecast: " + (body.detail || body.error);
      return null;
    }
    status.textContent = "Forecast by " + body.forecaster + " (version " + body.model_version +
      ") from the close of " + body.as_of + ".";
    forecastTable(body.predictions);
    return body.predictions;
  }

  async function followJob() {
    const box = document.getElementById("job");
    if (!box) return;
    const bar = document.getElementById("job-progress");
    const state = document.getElementById("job-state");
    const job = await finished(box.dataset.statusUrl, (record) => {
      const p = record.progress;
      if (p && p.epochs) {
        bar.max = p.epochs;
        bar.value = p.epoch;
        state.textContent = record.state + ": epoch " + p.epoch + " of " + p.epochs;
      } else {
        state.textContent = record.state || "unknown";
      }
    });
    bar.max = 1;
    bar.value = job.state === "succeeded" ? 1 : 0;
    state.textContent = job.state === "succeeded" ? "succeeded: reloading the page…"
      : job.state + ((job.error && job.error.message) ? ": " + job.error.message : "");
    box.dataset.finished = job.state;
    if (job.state === "succeeded") {
      const url = new URL(window.location.href);
      url.searchParams.delete("job");
      window.location.replace(url.toString());
    }
  }

  // No cached history yet: ask the API for it (it queues a refresh); true when the page reloads.
  async function fetchPrices() {
    if (!document.getElementById("no-prices") || !urls.historicalUrl) return false;
    let { status, body } = await getJson(urls.historicalUrl + "?days=1");
    if (status === 202) body = await finished(body.status_url);
    if (status !== 200 && body.state !== "succeeded") return false;
    window.location.reload();
    return true;
  }

  for (const button of document.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () => range(Number(button.dataset.range)));
  }
  window.addEventListener("resize", () => {
    const box = document.getElementById("chart");
    if (plot && box) plot.setSize({ width: Math.max(280, box.clientWidth), height: plot.height });
  });

  async function main() {
    if (data) {
      draw(null);
      followJob();
      if (await fetchPrices()) return;  // the reloaded page says when it is ready
      const forecast = await loadForecast();
      if (forecast) draw(forecast);
    }
    document.documentElement.dataset.ready = "true";
  }
  main().catch((err) => { console.warn("dashboard:", err); document.documentElement.dataset.ready = "true"; });
})();
