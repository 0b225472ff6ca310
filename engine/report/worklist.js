// settlechain report.html: the worklists (disputes, unmatched, invalid rows).
// Sorting, filtering, paging and CSV download over the data embedded in the page.
// No network, no code from strings, no markup from data: every cell is set with textContent.
// The page's Content-Security-Policy admits this script by its SHA-256 hash only.
(function () {
  "use strict";

  var REASON_NAMES = {
    start_time: "Start time", duration: "Duration",
    charge_rate_mismatch: "Charge: rate mismatch", charge_rounding: "Charge: rounding",
    charge_unexplained: "Charge: unexplained"
  };
  var FORMULA = /^[=+\-@\t\r]/;

  // -- formatting (the page's Python renders the first page the same way) --------------

  function group(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }
  function count(n) { return group(n); }
  function yuan(fen) {
    var a = Math.abs(fen);
    var cents = a % 100;
    return (fen < 0 ? "\u2212" : "") + "\u00a5" + group((a - cents) / 100) + "." +
      (cents < 10 ? "0" : "") + cents;
  }
  function signedYuan(fen) { return (fen > 0 ? "+" : "") + yuan(fen); }
  function signedSeconds(s) {
    return (s > 0 ? "+" : s < 0 ? "\u2212" : "") + group(Math.abs(s)) + " s";
  }
  function isoLocal(epoch, offsetS) {
    return new Date((epoch + offsetS) * 1000).toISOString().slice(0, 19);
  }
  function localTime(epoch, offsetS) { return isoLocal(epoch, offsetS).replace("T", " "); }

  // -- one list -------------------------------------------------------------------------

  function WorkList(section, spec) {
    this.section = section;
    this.spec = spec;
    this.n = spec.data[spec.columns[0].name].length;
    this.filters = {};
    this.sortKey = spec.sort.key;
    this.sortDesc = spec.sort.desc;
    this.page = 0;
    this.order = [];
  }

  // the value of a list column at row i (categories decoded)
  WorkList.prototype.value = function (name, i) {
    var v = this.spec.data[name][i];
    var dict = this.spec.dicts[name];
    return dict && v !== null ? dict[v] : v;
  };

  WorkList.prototype.label = function (kind, columns, i) {
    var self = this;
    function v(k) { return self.value(columns[k], i); }
    if (kind === "direction") { return v(0) + " \u2192 " + v(1); }
    if (kind === "class") { return [v(0), v(1), v(2)].join(" \u00b7 "); }
    return v(0);
  };

  WorkList.prototype.sortValue = function (display, i) {
    var v = this.value(display.columns[0], i);
    if (display.kind === "call") {
      return [v, this.value("duration_s", i), this.value("volume_kb", i)];
    }
    if (display.kind === "direction" || display.kind === "class") {
      return [this.label(display.kind, display.columns, i)];
    }
    return [v];
  };

  WorkList.prototype.matches = function (i) {
    for (var key in this.filters) {
      var want = this.filters[key];
      if (want === "") { continue; }
      var f = this.filterSpec(key);
      if (f.kind === "reasons") {
        var codes = this.value(f.columns[0], i);
        if (codes === null || codes.split(",").indexOf(want) < 0) { return false; }
      } else if (this.label(f.kind, f.columns, i) !== want) {
        return false;
      }
    }
    return true;
  };

  WorkList.prototype.filterSpec = function (key) {
    for (var k = 0; k < this.spec.filters.length; k++) {
      if (this.spec.filters[k].key === key) { return this.spec.filters[k]; }
    }
    return null;
  };

  WorkList.prototype.display = function (key) {
    for (var k = 0; k < this.spec.display.length; k++) {
      if (this.spec.display[k].key === key) { return this.spec.display[k]; }
    }
    return null;
  };

  function compare(a, b) {
    for (var k = 0; k < a.length; k++) {
      var x = a[k], y = b[k];
      if (x === y) { continue; }
      if (x === null) { return 1; }   // nulls last, whichever the direction
      if (y === null) { return -1; }
      return x < y ? -1 : 1;
    }
    return 0;
  }

  WorkList.prototype.apply = function () {
    var order = [];
    for (var i = 0; i < this.n; i++) { if (this.matches(i)) { order.push(i); } }
    var display = this.display(this.sortKey);
    var desc = this.sortDesc;
    var keys = new Array(this.n);
    for (var j = 0; j < order.length; j++) { keys[order[j]] = this.sortValue(display, order[j]); }
    var rows = this.spec.data.row;
    order.sort(function (p, q) {
      var a = keys[p], b = keys[q];
      var nullA = a[0] === null, nullB = b[0] === null;
      var c = nullA || nullB ? compare(a, b) : (desc ? -compare(a, b) : compare(a, b));
      return c !== 0 ? c : rows[p] - rows[q];
    });
    this.order = order;
    var pages = Math.max(1, Math.ceil(order.length / this.spec.page_size));
    if (this.page >= pages) { this.page = pages - 1; }
    this.render();
  };

  WorkList.prototype.cell = function (display, i) {
    var td = document.createElement("td");
    if (display.numeric) {
      td.className = "num";
    } else if (display.kind === "direction" || display.kind === "class") {
      td.className = "nowrap";
    }
    var v = this.value(display.columns[0], i);
    var spec = this.spec;
    function text(t) { td.textContent = t; }
    function missing() {
      var span = document.createElement("span");
      span.className = "missing";
      span.textContent = "\u2014";
      td.appendChild(span);
    }
    switch (display.kind) {
      case "fen": if (v === null) { missing(); } else { text(yuan(v)); } break;
      case "diff_fen": if (v === null) { missing(); } else { text(signedYuan(v)); } break;
      case "diff_s": if (v === null) { missing(); } else { text(signedSeconds(v)); } break;
      case "time":
        if (v === null) { missing(); } else {
          var span = document.createElement("span");
          span.className = "nowrap";
          span.textContent = localTime(v, spec.offset_s);
          td.appendChild(span);
        }
        break;
      case "row":
        text(count(v));
        var merged = display.columns.length > 1 ? this.value(display.columns[1], i) : null;
        if (merged !== null) {
          var more = document.createElement("span");
          more.className = "muted merged";
          more.title = "input rows " + merged.split(";").join(", ");
          more.textContent = " (" + merged.split(";").length + " rows)";
          td.appendChild(more);
        }
        break;
      case "id":
        if (v === null) { missing(); } else {
          var rid = document.createElement("span");
          rid.className = v.length > 24 ? "rid long" : "rid";
          rid.textContent = v;
          td.appendChild(rid);
        }
        break;
      case "reasons":
        if (v === null) { missing(); } else {
          var codes = v.split(",");
          for (var k = 0; k < codes.length; k++) {
            var tag = document.createElement("span");
            tag.className = "tag";
            tag.textContent = REASON_NAMES[codes[k]] || codes[k];
            td.appendChild(tag);
            if (k + 1 < codes.length) { td.appendChild(document.createTextNode(" ")); }
          }
        }
        break;
      case "call":
        var service = v;
        var what = document.createElement("span");
        what.className = "muted";
        what.textContent = service;
        td.appendChild(what);
        var amount = service === "voice" ? count(this.value("duration_s", i)) + " s"
          : service === "data" ? count(this.value("volume_kb", i)) + " KB" : "";
        if (amount) { td.appendChild(document.createTextNode(" " + amount)); }
        break;
      case "direction":
      case "class":
        text(this.label(display.kind, display.columns, i));
        break;
      default:
        if (v === null) { missing(); } else { text(v); }
    }
    return td;
  };

  WorkList.prototype.render = function () {
    var size = this.spec.page_size;
    var start = this.page * size;
    var end = Math.min(this.order.length, start + size);
    var tbody = this.section.querySelector("table.worklist tbody");
    var fragment = document.createDocumentFragment();
    for (var p = start; p < end; p++) {
      var i = this.order[p];
      var tr = document.createElement("tr");
      for (var d = 0; d < this.spec.display.length; d++) {
        tr.appendChild(this.cell(this.spec.display[d], i));
      }
      fragment.appendChild(tr);
    }
    tbody.replaceChildren(fragment);
    var ths = this.section.querySelectorAll("table.worklist th[data-key]");
    for (var t = 0; t < ths.length; t++) {
      var th = ths[t];
      if (th.dataset.key === this.sortKey) {
        th.setAttribute("aria-sort", this.sortDesc ? "descending" : "ascending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
    var status = this.section.querySelector(".matching");
    var filtered = this.order.length !== this.n;
    status.textContent = (this.order.length === 0 ? "No rows" :
      "Rows " + count(start + 1) + "\u2013" + count(end) + " of " + count(this.order.length)) +
      (filtered ? " matching the filters (of " + count(this.n) + ")" : "");
    this.section.querySelector("[data-action=prev]").disabled = this.page === 0;
    this.section.querySelector("[data-action=next]").disabled = end >= this.order.length;
    var download = this.section.querySelector("[data-action=download]");
    download.textContent = "Download CSV (" + count(this.order.length) + " rows)";
    download.disabled = false;
  };

  // -- CSV (the same text as settlechain export writes; engine/report/lists.py) ---------

  WorkList.prototype.csvField = function (column, i) {
    var v = this.value(column.name, i);
    if (v === null) { return ""; }
    if (column.kind === "time") { v = isoLocal(v, this.spec.offset_s) + this.spec.offset; }
    if (typeof v !== "string") { return String(v); }
    if (FORMULA.test(v)) { v = "'" + v; }
    if (v === "") { return "\"\""; }
    if (/[",\n\r]/.test(v)) { return "\"" + v.replace(/"/g, "\"\"") + "\""; }
    return v;
  };

  WorkList.prototype.csv = function () {
    var columns = this.spec.columns;
    var lines = [columns.map(function (c) { return c.name; }).join(",")];
    for (var p = 0; p < this.order.length; p++) {
      var fields = [];
      for (var c = 0; c < columns.length; c++) { fields.push(this.csvField(columns[c], this.order[p])); }
      lines.push(fields.join(","));
    }
    return lines.join("\n") + "\n";
  };

  WorkList.prototype.download = function () {
    var blob = new Blob([this.csv()], {type: "text/csv;charset=utf-8"});
    var url = URL.createObjectURL(blob);
    var a = document.createElement("a");
    a.href = url;
    a.download = this.spec.file;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
  };

  // -- controls --------------------------------------------------------------------------

  WorkList.prototype.options = function (f) {
    var counts = {};
    for (var i = 0; i < this.n; i++) {
      var values;
      if (f.kind === "reasons") {
        var codes = this.value(f.columns[0], i);
        values = codes === null ? [] : codes.split(",");
      } else {
        values = [this.label(f.kind, f.columns, i)];
      }
      for (var k = 0; k < values.length; k++) {
        if (values[k] === null) { continue; }
        counts[values[k]] = (counts[values[k]] || 0) + 1;
      }
    }
    return Object.keys(counts).sort().map(function (v) { return [v, counts[v]]; });
  };

  WorkList.prototype.init = function () {
    var self = this;
    var controls = this.section.querySelector(".controls");
    var selects = controls.querySelectorAll("select[data-filter]");
    for (var s = 0; s < selects.length; s++) {
      var select = selects[s];
      var f = this.filterSpec(select.dataset.filter);
      var options = this.options(f);
      for (var o = 0; o < options.length; o++) {
        var option = document.createElement("option");
        option.value = options[o][0];
        option.textContent = (f.kind === "reasons" ? (REASON_NAMES[options[o][0]] || options[o][0])
          : options[o][0]) + " (" + count(options[o][1]) + ")";
        select.appendChild(option);
      }
      this.filters[f.key] = "";
      select.addEventListener("change", function (event) {
        self.filters[event.target.dataset.filter] = event.target.value;
        self.page = 0;
        self.apply();
      });
    }
    var buttons = this.section.querySelectorAll("th button[data-sort]");
    for (var b = 0; b < buttons.length; b++) {
      buttons[b].addEventListener("click", function (event) {
        var key = event.currentTarget.dataset.sort;
        if (key === self.sortKey) {
          self.sortDesc = !self.sortDesc;
        } else {
          self.sortKey = key;
          self.sortDesc = self.display(key).numeric;  // amounts: largest first
        }
        self.page = 0;
        self.apply();
      });
    }
    this.section.querySelector("[data-action=prev]").addEventListener("click", function () {
      if (self.page > 0) { self.page -= 1; self.render(); }
    });
    this.section.querySelector("[data-action=next]").addEventListener("click", function () {
      if ((self.page + 1) * self.spec.page_size < self.order.length) { self.page += 1; self.render(); }
    });
    this.section.querySelector("[data-action=download]").addEventListener("click", function () {
      self.download();
    });
    controls.hidden = false;
    this.section.querySelector(".pager").hidden = false;
    this.apply();
    this.section.dataset.ready = "true";
  };

  var sections = document.querySelectorAll("section[data-list]");
  for (var s = 0; s < sections.length; s++) {
    var data = sections[s].querySelector("script.list-data");
    if (!data) { continue; }
    new WorkList(sections[s], JSON.parse(data.textContent)).init();
  }
  document.documentElement.dataset.worklists = "ready";
}());
