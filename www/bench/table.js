// The result tables of the benchmark pages, and how they hand their results to scripts/bench.mjs.

/** Appends a row of text `cells` to the body of the table matching `selector`. */
export function appendRow(selector, cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    td.textContent = cell;
    tr.append(td);
  }
  document.querySelector(`${selector} tbody`).append(tr);
}

/**
 * Publishes `window.benchResults`: the result of `run()`, started by the Run button or at once
 * when the page's URL has `?auto` (as scripts/bench.mjs opens it).
 */
export function publishResults(run) {
  let start;
  window.benchResults = new Promise((resolve, reject) => {
    start = () => run().then(resolve, reject);
  });
  document.getElementById("run").addEventListener("click", start);
  if (new URLSearchParams(location.search).has("auto")) start();
  else showRecordedCharts();
}

/**
 * Shows the charts of the last recorded run (`docs/charts/`, served at /charts/). Not in `?auto`
 * runs: those are the runs that draw them, and on a fresh checkout before the first one there may be none.
 */
function showRecordedCharts() {
  for (const img of document.querySelectorAll("img[data-chart]")) img.src = `/charts/${img.dataset.chart}`;
}
