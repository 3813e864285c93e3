// The result tables of the benchmark pages.

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
