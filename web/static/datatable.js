// Large tables rendered in the browser from JSON (window.TERAPIX_TABLES[name], loaded by a <script> so
// that the pages work from file:// as well as from any web server): paging, free-text search, filters
// (run id, filter, object, position and radius, dates, exposure time, status), sorting and CSV export of
// the whole filtered result.  No library, nothing sent anywhere.
(function () {
  "use strict";
  const RAD = Math.PI / 180;

  function distanceDeg(ra1, dec1, ra2, dec2) {  // haversine: exact at small separations
    const s = Math.sin((dec2 - dec1) * RAD / 2) ** 2 +
      Math.cos(dec1 * RAD) * Math.cos(dec2 * RAD) * Math.sin((ra2 - ra1) * RAD / 2) ** 2;
    return 2 * Math.asin(Math.min(1, Math.sqrt(s))) / RAD;
  }

  function text(value) { return value === null || value === undefined ? "" : String(value); }

  function fmt(value, type) {
    if (value === null || value === undefined || value === "") return "-";
    if (type === "date") return String(value).slice(0, 16).replace("T", " ");  // minutes: the CSV has seconds
    if (type === "day") return String(value).slice(0, 10);
    if (type === "num") {
      const x = Number(value);
      if (!isFinite(x)) return "-";
      return Math.abs(x) >= 1000 ? x.toFixed(1) : String(Number(x.toPrecision(6)));
    }
    return String(value);
  }

  function csvField(value) {
    const s = text(value);
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  class DataTable {
    constructor(root, data) {
      this.root = root;
      this.columns = data.columns;
      this.keys = data.keys;
      this.rows = data.rows.map((r) => { const o = {}; this.keys.forEach((k, i) => { o[k] = r[i]; }); return o; });
      this.form = document.getElementById(root.dataset.form);
      this.pageSize = 50;
      this.page = 0;
      this.sortKey = null;
      this.sortDir = 1;
      this.filtered = this.rows;
      this.build();
      this.fillChoices();
      this.apply();
    }

    build() {
      const table = document.createElement("table");
      table.className = "data datatable";
      const head = table.createTHead().insertRow();
      for (const c of this.columns) {
        const th = document.createElement("th");
        th.textContent = c.short !== undefined ? c.short : c.label;
        const unit = c.short_unit !== undefined ? c.short_unit : c.unit;
        if (unit) { const u = document.createElement("small"); u.textContent = " (" + unit + ")"; th.appendChild(u); }
        th.title = c.label + (c.unit ? " (" + c.unit + ")" : "");
        th.dataset.key = c.key;
        if (c.type !== "thumb") {
          th.classList.add("sortable");
          th.addEventListener("click", () => this.sortBy(c.key, th));
        }
        head.appendChild(th);
      }
      this.body = table.createTBody();
      this.info = document.createElement("p");
      this.info.className = "table-info";
      const pager = document.createElement("div");
      pager.className = "pager";
      this.prev = this.button("◀ previous", () => { this.page -= 1; this.render(); });
      this.next = this.button("next ▶", () => { this.page += 1; this.render(); });
      const size = document.createElement("select");
      size.setAttribute("aria-label", "rows per page");
      for (const n of [25, 50, 100, 500]) size.add(new Option(n + " per page", n, n === 50, n === 50));
      size.addEventListener("change", () => { this.pageSize = Number(size.value); this.page = 0; this.render(); });
      const csv = this.button("Export the whole result as CSV", () => this.downloadCsv());
      csv.id = this.root.id + "-csv";
      pager.append(this.prev, this.next, size, csv);
      const wrap = document.createElement("div");
      wrap.className = "table-wrap";
      wrap.appendChild(table);
      this.root.append(this.info, pager, wrap);
    }

    button(label, action) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.addEventListener("click", action);
      return b;
    }

    fillChoices() {
      if (!this.form) return;
      for (const select of this.form.querySelectorAll("select[data-choices]")) {
        const key = select.dataset.choices;
        const values = Array.from(new Set(this.rows.map((r) => r[key]).filter((v) => v !== null && v !== ""))).sort();
        for (const v of values) select.add(new Option(v, v));
      }
      this.form.addEventListener("input", () => { this.page = 0; this.apply(); });
      this.form.addEventListener("change", () => { this.page = 0; this.apply(); });
      this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.page = 0; this.apply(); });
      this.form.addEventListener("reset", () => setTimeout(() => { this.page = 0; this.apply(); }, 0));
    }

    criteria() {
      const c = {};
      if (!this.form) return c;
      for (const el of this.form.elements) {
        if (el.name && el.value !== "") c[el.name] = el.value.trim();
      }
      return c;
    }

    apply() {
      const c = this.criteria();
      const num = (name) => (c[name] !== undefined && c[name] !== "" && isFinite(Number(c[name])) ? Number(c[name]) : null);
      const q = (c.q || "").toLowerCase();
      const object = (c.object || "").toLowerCase();
      const ra = num("ra"), dec = num("dec"), radius = num("radius");
      const emin = num("exptime_min"), emax = num("exptime_max");
      const from = c.date_from || "", to = c.date_to || "";
      const keys = this.keys;
      this.filtered = this.rows.filter((r) => {
        if (q && !keys.some((k) => k !== "thumb" && k !== "href" && text(r[k]).toLowerCase().includes(q))) return false;
        for (const key of ["runid", "filter", "grade", "component", "qa_in", "processed", "qa_out", "delivered", "node"]) {
          if (c[key] !== undefined && text(r[key]) !== c[key]) return false;
        }
        if (object && !text(r.object).toLowerCase().includes(object)) return false;
        if (emin !== null && !(r.exptime >= emin)) return false;
        if (emax !== null && !(r.exptime <= emax)) return false;
        if (from && !(r.date_obs && r.date_obs.slice(0, from.length) >= from)) return false;
        if (to && !(r.date_obs && r.date_obs.slice(0, to.length) <= to)) return false;
        if (ra !== null && dec !== null && radius !== null) {
          if (r.ra === null || r.dec === null || distanceDeg(ra, dec, r.ra, r.dec) > radius) return false;
        }
        return true;
      });
      this.sort();
      this.render();
    }

    sortBy(key, th) {
      this.sortDir = this.sortKey === key ? -this.sortDir : 1;
      this.sortKey = key;
      for (const other of th.parentNode.cells) delete other.dataset.dir;
      th.dataset.dir = this.sortDir === 1 ? "asc" : "desc";
      this.sort();
      this.render();
    }

    sort() {
      const key = this.sortKey, dir = this.sortDir;
      if (!key) return;
      this.filtered.sort((a, b) => {
        const x = a[key], y = b[key];
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        if (typeof x === "number" && typeof y === "number") return dir * (x - y);
        return dir * String(x).localeCompare(String(y), undefined, {numeric: true});
      });
    }

    render() {
      const n = this.filtered.length;
      const pages = Math.max(1, Math.ceil(n / this.pageSize));
      this.page = Math.min(Math.max(this.page, 0), pages - 1);
      const start = this.page * this.pageSize;
      const slice = this.filtered.slice(start, start + this.pageSize);
      const body = document.createElement("tbody");
      for (const r of slice) {
        const tr = body.insertRow();
        tr.dataset.id = r.id;
        for (const c of this.columns) {
          const td = tr.insertCell();
          const value = r[c.key];
          if (c.type === "thumb") {
            if (value) {
              const img = document.createElement("img");
              img.src = value; img.alt = "thumbnail of " + r.filename; img.loading = "lazy"; img.className = "thumb";
              td.appendChild(img);
            }
          } else if (c.type === "link" && r.href) {
            const a = document.createElement("a");
            a.href = r.href; a.textContent = text(value);
            td.appendChild(a);
          } else if (c.key === "grade" && value) {
            const span = document.createElement("span");
            span.className = "grade grade-" + value;
            span.textContent = value;
            span.title = r.grade_source || "";
            td.appendChild(span);
            if (r.grade_source === "suggested") td.appendChild(document.createElement("small")).textContent = "?";
          } else {
            td.textContent = fmt(value, c.type);
            if (c.type === "num") td.className = "num";
            if (c.type === "flag") td.className = "flag flag-" + value;
          }
        }
      }
      this.body.replaceWith(body);
      this.body = body;
      this.info.textContent = n === 0 ? "No image matches." :
        `${slice.length} image(s) displayed (${start + 1}-${start + slice.length} of ${n} matching, ${this.rows.length} total); page ${this.page + 1} of ${pages}.`;
      this.info.dataset.matching = n;
      this.prev.disabled = this.page === 0;
      this.next.disabled = this.page >= pages - 1;
    }

    csv() {
      const cols = this.columns.filter((c) => c.type !== "thumb");
      const lines = [cols.map((c) => csvField(c.label + (c.unit ? " (" + c.unit + ")" : ""))).join(",")];
      for (const r of this.filtered) lines.push(cols.map((c) => csvField(r[c.key])).join(","));
      return lines.join("\n") + "\n";
    }

    downloadCsv() {
      const blob = new Blob([this.csv()], {type: "text/csv"});
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = (this.root.dataset.table || "table") + ".csv";
      document.body.appendChild(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    }
  }

  window.TerapixDataTable = DataTable;
  document.addEventListener("DOMContentLoaded", () => {
    for (const root of document.querySelectorAll("div.datatable-root")) {
      const data = (window.TERAPIX_TABLES || {})[root.dataset.table];
      if (!data) { root.textContent = "The table's data (" + root.dataset.table + ") could not be loaded."; continue; }
      root.datatable = new DataTable(root, data);
    }
  });
})();
