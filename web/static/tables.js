// Click a column heading of a table.data to sort its rows (numbers numerically, text alphabetically);
// click again to reverse.  Plain static pages: no library, nothing sent anywhere.
document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.data")) {
    const head = table.tHead, body = table.tBodies[0];
    if (!head || !body || body.rows.length < 2) continue;
    Array.from(head.rows[0].cells).forEach((th, col) => {
      th.classList.add("sortable");
      th.addEventListener("click", () => {
        const dir = th.dataset.dir === "asc" ? -1 : 1;
        for (const other of head.rows[0].cells) delete other.dataset.dir;
        th.dataset.dir = dir === 1 ? "asc" : "desc";
        const key = (row) => (row.cells[col] ? row.cells[col].textContent.trim() : "");
        const rows = Array.from(body.rows);
        rows.sort((a, b) => {
          const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
          if (!isNaN(nx) && !isNaN(ny) && nx !== ny) return dir * (nx - ny);
          return dir * x.localeCompare(y, undefined, {numeric: true});
        });
        for (const row of rows) body.appendChild(row);
      });
    });
  }
});
