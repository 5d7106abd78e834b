/* The optimize reports (see report_html.h): captured --explain output, the
 * JSON report's optional parts, and the HTML report.
 *
 * The HTML page, top to bottom (each section only with its data):
 *   header     input -> output, level, tacoc version
 *   summary    cards: nodes, parameter bytes, rewrites, rejected candidates,
 *              pass time, the p50 speed-up (--bench), max_batch_size (Triton)
 *   passes     the per-pass table (#passes-table)
 *   ops        node counts per op before/after: a bar chart and #ops-table
 *   rejected   fusion candidates left alone, per pass and one by one
 *              (#rejected-table), as --explain prints them
 *   benchmark  latency bars before/after per batch and runtime, #bench-table,
 *              #accuracy-table
 *   precision  per-layer error bars (#layer-table), when there are any
 *   triton     the batch curve, the settings picked, config.pbtxt
 * Numbers in table cells carry their exact value in data-v (as the JSON
 * report writes it) for the sorting script and for tests. The script only
 * sorts tables and, as its last step, marks #tc-script data-status="ok". */
#include "report_html.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* ---- capturing stream ---- */

static ssize_t capture_write(void *cookie, const char *data, size_t n) {
  tc_capture *c = cookie;
  if (c->echo)
    fwrite(data, 1, n, c->echo);
  if (c->oom)
    return (ssize_t)n;
  if (c->len + n + 1 > c->cap) {
    size_t cap = c->cap ? c->cap : 4096;
    while (cap < c->len + n + 1)
      cap *= 2;
    char *buf = realloc(c->buf, cap);
    if (!buf) {
      c->oom = true;
      return (ssize_t)n;
    }
    c->buf = buf;
    c->cap = cap;
  }
  memcpy(c->buf + c->len, data, n);
  c->len += n;
  c->buf[c->len] = '\0';
  return (ssize_t)n;
}

FILE *tc_capture_open(tc_capture *c, FILE *echo) {
  c->echo = echo;
  cookie_io_functions_t io = {.write = capture_write};
  FILE *f = fopencookie(c, "w", io);
  if (f)
    setvbuf(f, NULL, _IOLBF, 0); /* lines reach the echo as they are written */
  return f;
}

void tc_capture_free(tc_capture *c) {
  free(c->buf);
  memset(c, 0, sizeof *c);
}

/* ---- the rejected candidates ---- */

typedef struct explain_item {
  const char *pass, *node, *op, *reason;
} explain_item;

typedef struct explain_list {
  explain_item *items;
  size_t n;
  char *copy; /* the text, cut into the items' strings */
} explain_list;

static void explain_free(explain_list *l) {
  free(l->items);
  free(l->copy);
  memset(l, 0, sizeof *l);
}

/* Splits "PASS: node 'N' (Op): reason" lines; a line of another form is
 * kept whole as the reason. -1 on OOM. */
static int explain_parse(const char *text, explain_list *l) {
  memset(l, 0, sizeof *l);
  if (!text || !*text)
    return 0;
  size_t lines = 1;
  for (const char *p = text; *p; p++)
    lines += *p == '\n';
  if (!(l->copy = strdup(text)) || !(l->items = calloc(lines, sizeof *l->items))) {
    explain_free(l);
    return -1;
  }
  for (char *line = l->copy; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = '\0';
    if (*line) {
      explain_item *it = &l->items[l->n++];
      char *sep = strstr(line, ": node '");
      char *q = sep ? strstr(sep + 8, "' (") : NULL;
      char *r = q ? strstr(q + 3, "): ") : NULL;
      if (r) {
        *sep = *q = *r = '\0';
        *it = (explain_item){line, sep + 8, q + 3, r + 3};
      } else {
        *it = (explain_item){"", "", "", line};
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

/* ---- JSON ---- */

int tc_report_json_fields(tc_json *j, const tc_opt_report *r) {
  explain_list ex;
  if (explain_parse(r->explain, &ex))
    return -1;
  tc_json_key(j, "tacoc_version");
  tc_json_string(j, tc_version());
  tc_json_key(j, "explain");
  tc_json_begin_array(j);
  for (size_t i = 0; i < ex.n; i++) {
    tc_json_begin_object(j);
    tc_json_key(j, "pass");
    tc_json_string(j, ex.items[i].pass);
    tc_json_key(j, "node");
    tc_json_string(j, ex.items[i].node);
    tc_json_key(j, "op");
    tc_json_string(j, ex.items[i].op);
    tc_json_key(j, "reason");
    tc_json_string(j, ex.items[i].reason);
    tc_json_end_object(j);
  }
  tc_json_end_array(j);
  explain_free(&ex);
  tc_json_key(j, "bench");
  if (r->bench) {
    tc_json_begin_object(j);
    tc_bench_json_fields(j, r->bench);
    tc_json_end_object(j);
  } else {
    tc_json_null(j);
  }
  tc_json_key(j, "triton");
  if (r->triton)
    tc_triton_json(j, r->triton);
  else
    tc_json_null(j);
  if (r->n_layer_errors) {
    tc_json_key(j, "layer_errors");
    tc_json_begin_object(j);
    tc_json_key(j, "metric");
    tc_json_string(j, r->layer_error_metric);
    tc_json_key(j, "layers");
    tc_json_begin_array(j);
    for (size_t i = 0; i < r->n_layer_errors; i++) {
      tc_json_begin_object(j);
      tc_json_key(j, "layer");
      tc_json_string(j, r->layer_errors[i].layer);
      tc_json_key(j, "op");
      tc_json_string(j, r->layer_errors[i].op);
      tc_json_key(j, "error");
      tc_json_double(j, r->layer_errors[i].error);
      tc_json_end_object(j);
    }
    tc_json_end_array(j);
    tc_json_end_object(j);
  }
  return 0;
}

/* ---- HTML helpers ---- */

static void esc(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&#39;", f); break;
    default: fputc(*s, f);
    }
  }
}

/* A label cut to at most max bytes (on a UTF-8 character boundary) with an ellipsis. */
static void esc_short(FILE *f, const char *s, size_t max) {
  size_t n = strlen(s);
  if (n <= max) {
    esc(f, s);
    return;
  }
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
    max--;
  char buf[256];
  snprintf(buf, sizeof buf, "%.*s", (int)(max < sizeof buf - 1 ? max : sizeof buf - 1), s);
  esc(f, buf);
  fputs("&#8230;", f);
}

static const char *fmt_ms(double v, char *buf, size_t cap) {
  if (!isfinite(v))
    snprintf(buf, cap, "n/a");
  else
    snprintf(buf, cap, v >= 100 ? "%.2f" : v >= 1 ? "%.3f" : "%.4f", v);
  return buf;
}

/* A numeric cell: shown text, exact value in data-v. */
static void td_num(FILE *f, double v, const char *shown) {
  if (isfinite(v))
    fprintf(f, "<td class=\"n\" data-v=\"%.9g\">", v);
  else
    fputs("<td class=\"n\">", f);
  esc(f, shown);
  fputs("</td>", f);
}

static void td_uint(FILE *f, unsigned long long v) {
  fprintf(f, "<td class=\"n\" data-v=\"%llu\">%llu</td>", v, v);
}

static void td_text(FILE *f, const char *s) {
  fputs("<td>", f);
  esc(f, s);
  fputs("</td>", f);
}

static void th_row(FILE *f, const char *const *cols) {
  fputs("<thead><tr>", f);
  for (; *cols; cols++) {
    fputs("<th>", f);
    esc(f, *cols);
    fputs("</th>", f);
  }
  fputs("</tr></thead>\n", f);
}

/* ---- SVG bar charts ---- */

typedef struct chart_series {
  const char *name;
  const double *v;
} chart_series;

typedef struct chart {
  const char *title;
  const char *unit; /* after each value, e.g. " ms" */
  const char *const *labels;
  size_t n;
  const chart_series *series; /* at most 4; colours s0..s3 in the CSS */
  size_t n_series;
  bool log; /* log10 scale (values spanning orders of magnitude) */
} chart;

#define CH_W 900
#define CH_LABEL 240
#define CH_VALUE 120
#define CH_BAR 14
#define CH_TOP 30

static double bar_width(const chart *c, double v, double lo, double hi) {
  double area = CH_W - CH_LABEL - CH_VALUE - 8;
  if (!isfinite(v) || v <= 0)
    return 0;
  double x = c->log ? (log10(v) - lo) / (hi - lo) : v / hi;
  x = x < 0 ? 0 : x > 1 ? 1 : x;
  return x * area < 1 ? 1 : x * area;
}

/* Horizontal grouped bars: one group per label, one bar per series. */
static void svg_chart(FILE *f, const chart *c) {
  double hi = 0, lo = INFINITY;
  for (size_t s = 0; s < c->n_series; s++)
    for (size_t i = 0; i < c->n; i++) {
      double v = c->series[s].v[i];
      if (isfinite(v) && v > hi)
        hi = v;
      if (isfinite(v) && v > 0 && v < lo)
        lo = v;
    }
  if (c->log) {
    lo = isfinite(lo) ? floor(log10(lo)) : 0;
    hi = hi > 0 ? ceil(log10(hi)) : lo + 1;
    if (hi <= lo)
      hi = lo + 1;
  }
  int group = (int)c->n_series * (CH_BAR + 2) + 10;
  int h = CH_TOP + (int)c->n * group + 6;
  fprintf(f,
          "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
          "aria-label=\"",
          CH_W, h, CH_W, h);
  esc(f, c->title);
  fputs("\">\n", f);
  for (size_t s = 0; s < c->n_series; s++) {
    int x = CH_LABEL + (int)s * 190;
    fprintf(f, "<rect class=\"s%zu\" x=\"%d\" y=\"8\" width=\"12\" height=\"12\"/>", s, x);
    fprintf(f, "<text x=\"%d\" y=\"18\">", x + 17);
    esc(f, c->series[s].name);
    fputs("</text>\n", f);
  }
  if (c->log)
    fprintf(f,
            "<text class=\"axis\" x=\"%d\" y=\"18\" text-anchor=\"end\">log scale, 1e%d to "
            "1e%d</text>\n",
            CH_W - 4, (int)lo, (int)hi);
  fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", CH_LABEL,
          CH_TOP - 4, CH_LABEL, h - 4);
  char num[64];
  for (size_t i = 0; i < c->n; i++) {
    int y0 = CH_TOP + (int)i * group;
    fprintf(f, "<g><text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"end\"><title>",
            CH_LABEL - 8, y0 + (group - 10) / 2 + 4);
    esc(f, c->labels[i]);
    fputs("</title>", f);
    esc_short(f, c->labels[i], 34);
    fputs("</text>", f);
    for (size_t s = 0; s < c->n_series; s++) {
      double v = c->series[s].v[i];
      double w = bar_width(c, v, lo, hi);
      int y = y0 + (int)s * (CH_BAR + 2);
      snprintf(num, sizeof num, !isfinite(v) ? "n/a" : v >= 1e4 ? "%.0f" : "%.4g", v);
      fprintf(f, "<rect class=\"s%zu\" x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\"><title>", s,
              CH_LABEL, y, w, CH_BAR);
      esc(f, c->labels[i]);
      fputs(", ", f);
      esc(f, c->series[s].name);
      fprintf(f, ": %s", num);
      esc(f, c->unit);
      fprintf(f, "</title></rect><text class=\"value\" x=\"%.1f\" y=\"%d\">%s", CH_LABEL + w + 4,
              y + CH_BAR - 3, num);
      esc(f, c->unit);
      fputs("</text>", f);
    }
    fputs("</g>\n", f);
  }
  fputs("</svg>\n", f);
}

/* ---- the page ---- */

static const char CSS[] =
    ":root{--fg:#1d232b;--muted:#5b6673;--line:#d8dde3;--bg:#fff;--soft:#f4f6f8;--s0:#7b8da6;"
    "--s1:#e8731a;--s2:#2f9e6e;--s3:#8e5cc7}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;padding:24px 32px 40px;font:14px/1.45 system-ui,-apple-system,'Segoe UI',"
    "Roboto,'Helvetica Neue',Arial,sans-serif;color:var(--fg);background:var(--bg)}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;"
    "border-bottom:1px solid var(--line)}\n"
    "p{margin:6px 0}.sub,.note{color:var(--muted)}code,pre{font:12.5px/1.4 ui-monospace,"
    "'DejaVu Sans Mono',Menlo,Consolas,monospace}\n"
    "pre{background:var(--soft);padding:10px 12px;border-radius:6px;overflow-x:auto}\n"
    ".cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid var(--line);"
    "border-radius:8px;padding:10px 14px;min-width:170px;background:var(--soft)}\n"
    ".card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}"
    ".card .v{font-size:20px;font-weight:600}.card .d{color:var(--muted);font-size:12px}\n"
    "table{border-collapse:collapse;margin:8px 0 4px;font-size:13px}th,td{padding:3px 10px;"
    "border-bottom:1px solid var(--line);text-align:left;vertical-align:top}\n"
    "th{background:var(--soft);font-weight:600;white-space:nowrap}td.n,th.n{text-align:right;"
    "font-variant-numeric:tabular-nums}\n"
    "table.sortable th{cursor:pointer}th[data-dir=asc]::after{content:' \\25B2'}"
    "th[data-dir=desc]::after{content:' \\25BC'}\n"
    "tr.idle td{color:var(--muted)}td.up{color:#b3261e}td.down{color:#1e7b4a}\n"
    ".scroll{max-height:520px;overflow:auto;border:1px solid var(--line);border-radius:6px;"
    "display:inline-block;max-width:100%}.scroll table{margin:0}\n"
    "svg.chart{display:block;max-width:100%;height:auto;margin:8px 0}svg.chart text{font-size:"
    "12px;fill:var(--fg)}svg.chart text.value,svg.chart text.axis{fill:var(--muted)}"
    "svg.chart line.axis{stroke:var(--line)}\n"
    ".s0{fill:var(--s0)}.s1{fill:var(--s1)}.s2{fill:var(--s2)}.s3{fill:var(--s3)}\n"
    "footer{margin-top:32px;color:var(--muted);font-size:12px}\n"
    "@media print{.scroll{max-height:none;overflow:visible}}\n";

/* Sorts a table by the column clicked (numbers by data-v); marks itself done last. */
static const char SCRIPT[] =
    "(function () {\n"
    "  'use strict';\n"
    "  function value(cell) {\n"
    "    var v = cell.getAttribute('data-v');\n"
    "    return v === null ? NaN : parseFloat(v);\n"
    "  }\n"
    "  function sortBy(table, col, th) {\n"
    "    var body = table.tBodies[0];\n"
    "    if (!body) return;\n"
    "    var asc = th.getAttribute('data-dir') !== 'asc';\n"
    "    var rows = Array.prototype.slice.call(body.rows);\n"
    "    rows.sort(function (a, b) {\n"
    "      var x = a.cells[col], y = b.cells[col];\n"
    "      if (!x || !y) return 0;\n"
    "      var nx = value(x), ny = value(y);\n"
    "      var r = !isNaN(nx) && !isNaN(ny) ? nx - ny : "
    "x.textContent.localeCompare(y.textContent);\n"
    "      return asc ? r : -r;\n"
    "    });\n"
    "    rows.forEach(function (row) { body.appendChild(row); });\n"
    "    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {\n"
    "      h.removeAttribute('data-dir');\n"
    "    });\n"
    "    th.setAttribute('data-dir', asc ? 'asc' : 'desc');\n"
    "  }\n"
    "  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (t) {\n"
    "    if (!t.tHead || !t.tHead.rows.length) return;\n"
    "    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (th, col) {\n"
    "      th.title = 'sort by this column';\n"
    "      th.addEventListener('click', function () { sortBy(t, col, th); });\n"
    "    });\n"
    "  });\n"
    "  var mark = document.getElementById('tc-script');\n"
    "  mark.textContent = 'Click a column heading to sort its table.';\n"
    "  mark.setAttribute('data-status', 'ok');\n"
    "})();\n";

/* Sum of the rewrites of every pass and of their times. */
static void pass_totals(const tc_pipeline *p, size_t *rewrites, double *ms) {
  *rewrites = 0;
  *ms = 0;
  for (size_t i = 0; i < p->n; i++) {
    *ms += p->records[i].ms;
    for (size_t k = 0; k < p->records[i].n_kinds; k++)
      *rewrites += p->records[i].rewrites[k].count;
  }
}

static void card(FILE *f, const char *key, const char *value, const char *detail) {
  fputs("<div class=\"card\"><div class=\"k\">", f);
  esc(f, key);
  fputs("</div><div class=\"v\">", f);
  esc(f, value);
  fputs("</div><div class=\"d\">", f);
  esc(f, detail);
  fputs("</div></div>\n", f);
}

static const char *change(double before, double after, char *buf, size_t cap) {
  if (before > 0)
    snprintf(buf, cap, "%+.1f%%", 100.0 * (after - before) / before);
  else
    snprintf(buf, cap, "unchanged");
  return buf;
}

/* The tacort rows of the first batch: original (model 0) and optimized (model 1). */
static bool bench_pair(const tc_bench *b, const tc_bench_row **orig, const tc_bench_row **opt) {
  if (!b || !b->n_batches || b->batches[0].n_rows < 2 || b->o.n_models < 2)
    return false;
  *orig = &b->batches[0].rows[0];
  *opt = &b->batches[0].rows[1];
  return true;
}

static void section_summary(FILE *f, const tc_opt_report *r, size_t n_rejected) {
  char v[96], d[96], x[32], y[32];
  size_t rewrites;
  double ms;
  pass_totals(r->pipeline, &rewrites, &ms);
  fputs("<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">\n", f);
  snprintf(v, sizeof v, "%zu \u2192 %zu", r->before->nodes, r->after->nodes);
  card(f, "Nodes", v, change((double)r->before->nodes, (double)r->after->nodes, d, sizeof d));
  tc_bench_format_bytes((int64_t)r->before->params.bytes, x, sizeof x);
  tc_bench_format_bytes((int64_t)r->after->params.bytes, y, sizeof y);
  snprintf(v, sizeof v, "%s \u2192 %s", x, y);
  card(f, "Parameters", v,
       change((double)r->before->params.bytes, (double)r->after->params.bytes, d, sizeof d));
  snprintf(v, sizeof v, "%zu", rewrites);
  snprintf(d, sizeof d, "in %zu passes, %.1f ms", r->pipeline->n, ms);
  card(f, "Rewrites", v, d);
  snprintf(v, sizeof v, "%zu", n_rejected);
  card(f, "Rejected candidates", v, "fusions left alone, with reasons");
  const tc_bench_row *orig, *opt;
  if (bench_pair(r->bench, &orig, &opt) && opt->stats.p50 > 0) {
    snprintf(v, sizeof v, "%.2f\u00d7", orig->stats.p50 / opt->stats.p50);
    snprintf(d, sizeof d, "p50 %s \u2192 %s ms, batch %lld, %s", fmt_ms(orig->stats.p50, x, 32),
             fmt_ms(opt->stats.p50, y, 32), (long long)r->bench->batches[0].batch,
             tc_bench_runtime_name(orig->rt));
    card(f, "Speed-up", v, d);
  }
  if (r->triton) {
    snprintf(v, sizeof v, "%lld", (long long)r->triton->max_batch_size);
    card(f, "Triton max_batch_size", v,
         r->triton->max_batch_size > 0 ? "with dynamic batching" : "no batching");
  }
  fputs("</div></section>\n", f);
}

static void section_passes(FILE *f, const tc_opt_report *r) {
  const tc_pipeline *p = r->pipeline;
  fputs("<section id=\"passes\"><h2>Passes</h2>\n", f);
  if (!p->n) {
    fputs("<p class=\"note\">No pass ran (-O0).</p></section>\n", f);
    return;
  }
  fputs("<p class=\"note\">In pipeline order; greyed rows changed nothing. Node counts include "
        "subgraphs.</p>\n",
        f);
  fputs("<table id=\"passes-table\" class=\"sortable\">", f);
  static const char *const cols[] = {"#",
                                     "pass",
                                     "nodes before",
                                     "nodes after",
                                     "\u0394 nodes",
                                     "initializers before",
                                     "initializers after",
                                     "rewrites",
                                     "time ms",
                                     NULL};
  th_row(f, cols);
  fputs("<tbody>\n", f);
  char buf[64];
  for (size_t i = 0; i < p->n; i++) {
    const tc_pass_record *rec = &p->records[i];
    bool idle = !rec->n_kinds && rec->nodes_before == rec->nodes_after;
    fprintf(f, "<tr%s>", idle ? " class=\"idle\"" : "");
    td_uint(f, i + 1);
    td_text(f, rec->name);
    td_uint(f, rec->nodes_before);
    td_uint(f, rec->nodes_after);
    long long delta = (long long)rec->nodes_after - (long long)rec->nodes_before;
    fprintf(f, "<td class=\"n%s\" data-v=\"%lld\">%+lld</td>",
            delta < 0   ? " down"
            : delta > 0 ? " up"
                        : "",
            delta, delta);
    td_uint(f, rec->inits_before);
    td_uint(f, rec->inits_after);
    fputs("<td>", f);
    for (size_t k = 0; k < rec->n_kinds; k++) {
      fputs(k ? ", " : "", f);
      esc(f, rec->rewrites[k].kind);
      fprintf(f, " \u00d7%zu", rec->rewrites[k].count);
    }
    fputs("</td>", f);
    unsigned long long us = (unsigned long long)(rec->ms * 1000.0); /* as the JSON has it */
    snprintf(buf, sizeof buf, "%.3f", (double)us / 1000.0);
    td_num(f, (double)us / 1000.0, buf);
    fputs("</tr>\n", f);
  }
  fputs("</tbody></table></section>\n", f);
}

typedef struct op_row {
  const char *op;
  size_t before, after;
} op_row;

static int cmp_op_rows(const void *a, const void *b) {
  const op_row *x = a, *y = b;
  bool cx = x->before != x->after, cy = y->before != y->after;
  if (cx != cy)
    return cx ? -1 : 1;
  size_t mx = x->before > x->after ? x->before : x->after;
  size_t my = y->before > y->after ? y->before : y->after;
  if (mx != my)
    return mx > my ? -1 : 1;
  return strcmp(x->op, y->op);
}

/* The union of the two op histograms, by op name. */
static op_row *merge_ops(const tc_model_summary *before, const tc_model_summary *after, size_t *n) {
  op_row *rows = calloc(before->ops.n + after->ops.n + 1, sizeof *rows);
  *n = 0;
  if (!rows)
    return NULL;
  size_t i = 0, j = 0;
  while (i < before->ops.n || j < after->ops.n) {
    int c = i >= before->ops.n  ? 1
            : j >= after->ops.n ? -1
                                : strcmp(before->ops.items[i].key, after->ops.items[j].key);
    op_row *row = &rows[(*n)++];
    row->op = c <= 0 ? before->ops.items[i].key : after->ops.items[j].key;
    row->before = c <= 0 ? before->ops.items[i++].count : 0;
    row->after = c >= 0 ? after->ops.items[j++].count : 0;
  }
  return rows;
}

#define CHART_MAX_OPS 40

static int section_ops(FILE *f, const tc_opt_report *r) {
  size_t n;
  op_row *rows = merge_ops(r->before, r->after, &n);
  if (!rows)
    return -1;
  fputs("<section id=\"ops\"><h2>Nodes per op</h2>\n", f);
  if (n) {
    size_t shown = n < CHART_MAX_OPS ? n : CHART_MAX_OPS;
    op_row *order = malloc(n * sizeof *order);
    const char **labels = calloc(shown, sizeof *labels);
    double *vb = calloc(shown, sizeof *vb), *va = calloc(shown, sizeof *va);
    if (!order || !labels || !vb || !va) {
      free(order), free(labels), free(vb), free(va), free(rows);
      return -1;
    }
    memcpy(order, rows, n * sizeof *order);
    qsort(order, n, sizeof *order, cmp_op_rows);
    for (size_t i = 0; i < shown; i++) {
      labels[i] = order[i].op;
      vb[i] = (double)order[i].before;
      va[i] = (double)order[i].after;
    }
    chart_series s[2] = {{"before", vb}, {"after", va}};
    svg_chart(f, &(chart){"Nodes per op, before and after", "", labels, shown, s, 2, false});
    if (shown < n)
      fprintf(f,
              "<p class=\"note\">The chart shows %zu of %zu ops: those whose count changed, "
              "then the most frequent. The table has them all.</p>\n",
              shown, n);
    free(order), free(labels), free(vb), free(va);
  }
  fputs("<table id=\"ops-table\" class=\"sortable\">", f);
  static const char *const cols[] = {"op", "before", "after", "\u0394", NULL};
  th_row(f, cols);
  fputs("<tbody>\n", f);
  for (size_t i = 0; i < n; i++) {
    long long delta = (long long)rows[i].after - (long long)rows[i].before;
    fprintf(f, "<tr%s>", delta ? "" : " class=\"idle\"");
    td_text(f, rows[i].op);
    td_uint(f, rows[i].before);
    td_uint(f, rows[i].after);
    fprintf(f, "<td class=\"n%s\" data-v=\"%lld\">%+lld</td></tr>\n",
            delta < 0   ? " down"
            : delta > 0 ? " up"
                        : "",
            delta, delta);
  }
  fputs("</tbody><tfoot>", f);
  fprintf(f,
          "<tr id=\"ops-total\"><th>(all nodes)</th><td class=\"n\" data-v=\"%zu\">%zu</td>"
          "<td class=\"n\" data-v=\"%zu\">%zu</td><td></td></tr>",
          r->before->nodes, r->before->nodes, r->after->nodes, r->after->nodes);
  fprintf(f,
          "<tr id=\"ops-params\"><th>(parameter bytes)</th><td class=\"n\" data-v=\"%zu\">%zu"
          "</td><td class=\"n\" data-v=\"%zu\">%zu</td><td></td></tr>",
          r->before->params.bytes, r->before->params.bytes, r->after->params.bytes,
          r->after->params.bytes);
  fputs("</tfoot></table></section>\n", f);
  free(rows);
  return 0;
}

#define HTML_MAX_REJECTED 2000

static void section_rejected(FILE *f, const explain_list *ex) {
  fputs("<section id=\"rejected\"><h2>Rejected fusion candidates</h2>\n", f);
  if (!ex->n) {
    fputs("<p class=\"note\">No pass rejected a near match.</p></section>\n", f);
    return;
  }
  fputs("<p class=\"note\">Nodes that nearly matched a pass's pattern and were left alone, with "
        "the reason (what <code>--explain</code> prints).</p>\n",
        f);
  /* Per pass, in order of first appearance. */
  fputs("<table id=\"rejected-summary\"><thead><tr><th>pass</th><th class=\"n\">rejected</th>"
        "</tr></thead><tbody>\n",
        f);
  for (size_t i = 0; i < ex->n; i++) {
    bool seen = false;
    for (size_t k = 0; k < i && !seen; k++)
      seen = strcmp(ex->items[k].pass, ex->items[i].pass) == 0;
    if (seen)
      continue;
    size_t count = 0;
    for (size_t k = i; k < ex->n; k++)
      count += strcmp(ex->items[k].pass, ex->items[i].pass) == 0;
    fputs("<tr>", f);
    td_text(f, ex->items[i].pass);
    td_uint(f, count);
    fputs("</tr>\n", f);
  }
  fputs("</tbody></table>\n<div class=\"scroll\"><table id=\"rejected-table\" "
        "class=\"sortable\">",
        f);
  static const char *const cols[] = {"pass", "node", "op", "reason", NULL};
  th_row(f, cols);
  fputs("<tbody>\n", f);
  size_t shown = ex->n < HTML_MAX_REJECTED ? ex->n : HTML_MAX_REJECTED;
  for (size_t i = 0; i < shown; i++) {
    fputs("<tr>", f);
    td_text(f, ex->items[i].pass);
    fputs("<td><code>", f);
    esc(f, ex->items[i].node);
    fputs("</code></td>", f);
    td_text(f, ex->items[i].op);
    td_text(f, ex->items[i].reason);
    fputs("</tr>\n", f);
  }
  fputs("</tbody></table></div>\n", f);
  if (shown < ex->n)
    fprintf(f, "<p class=\"note\">%zu more in the JSON report.</p>\n", ex->n - shown);
  fputs("</section>\n", f);
}

static const char *model_role(size_t k) { return k == 0 ? "original" : "optimized"; }

static int section_bench(FILE *f, const tc_opt_report *r) {
  const tc_bench *b = r->bench;
  if (!b || !b->n_batches)
    return 0;
  char c[8][32], label[160];
  fputs("<section id=\"benchmark\"><h2>Benchmark</h2>\n<p class=\"note\">", f);
  fprintf(f, "Generated inputs, warm-up %ld, ", b->o.warmup);
  if (b->o.time_s > 0)
    fprintf(f, "timed for %g s", b->o.time_s);
  else
    fprintf(f, "%ld timed runs per model", b->o.iters);
  fputs(", the two models interleaved run by run (as <code>tacoc bench</code>). Bars: p50 "
        "latency, lower is better.</p>\n",
        f);
  size_t groups = 0;
  for (size_t i = 0; i < b->n_batches; i++)
    groups += b->batches[i].n_rows / (b->o.n_models ? b->o.n_models : 1);
  const char **labels = calloc(groups + 1, sizeof *labels);
  char(*label_buf)[64] = calloc(groups + 1, sizeof *label_buf);
  double *v0 = calloc(groups + 1, sizeof *v0), *v1 = calloc(groups + 1, sizeof *v1);
  if (!labels || !label_buf || !v0 || !v1) {
    free(labels), free(label_buf), free(v0), free(v1);
    return -1;
  }
  size_t g = 0, n = b->o.n_models;
  for (size_t i = 0; i < b->n_batches; i++) {
    const tc_bench_batch *bb = &b->batches[i];
    for (size_t row = 0; n >= 2 && row + 1 < bb->n_rows; row += n, g++) {
      snprintf(label_buf[g], sizeof label_buf[g], "batch %lld, %s", (long long)bb->batch,
               tc_bench_runtime_name(bb->rows[row].rt));
      labels[g] = label_buf[g];
      v0[g] = bb->rows[row].stats.p50;
      v1[g] = bb->rows[row + 1].stats.p50;
    }
  }
  chart_series s[2] = {{"original", v0}, {"optimized", v1}};
  if (g)
    svg_chart(f, &(chart){"p50 latency before and after", " ms", labels, g, s, 2, false});
  free(labels), free(label_buf), free(v0), free(v1);
  fputs("<table id=\"bench-table\" class=\"sortable\">", f);
  static const char *const cols[] = {"batch",  "model",    "runtime",   "p50 ms", "p90 ms",
                                     "p99 ms", "mean ms",  "min ms",    "max ms", "runs",
                                     "inf/s",  "peak mem", "p50/first", NULL};
  th_row(f, cols);
  fputs("<tbody>\n", f);
  for (size_t i = 0; i < b->n_batches; i++) {
    const tc_bench_batch *bb = &b->batches[i];
    for (size_t k = 0; k < bb->n_rows; k++) {
      const tc_bench_row *row = &bb->rows[k];
      const tc_bench_stats *st = &row->stats;
      fputs("<tr>", f);
      td_uint(f, (unsigned long long)bb->batch);
      snprintf(label, sizeof label, "%s (%s)", model_role(row->model), b->o.models[row->model]);
      td_text(f, label);
      td_text(f, tc_bench_runtime_name(row->rt));
      td_num(f, st->p50, fmt_ms(st->p50, c[0], 32));
      td_num(f, st->p90, fmt_ms(st->p90, c[1], 32));
      td_num(f, st->p99, fmt_ms(st->p99, c[2], 32));
      td_num(f, st->mean, fmt_ms(st->mean, c[3], 32));
      td_num(f, st->min, fmt_ms(st->min, c[4], 32));
      td_num(f, st->max, fmt_ms(st->max, c[5], 32));
      td_uint(f, st->n);
      snprintf(c[6], 32, "%.1f", row->throughput);
      td_num(f, row->throughput, c[6]);
      tc_bench_format_bytes(row->peak_bytes, c[7], 32);
      td_num(f, row->peak_bytes >= 0 ? (double)row->peak_bytes : NAN, c[7]);
      snprintf(c[6], 32, "%.2f\u00d7", row->ratio);
      td_num(f, row->ratio, c[6]);
      fputs("</tr>\n", f);
    }
  }
  fputs("</tbody></table>\n", f);
  if (b->batches[0].n_rows > 1) {
    const tc_bench_row *ref = &b->batches[0].rows[0];
    fprintf(f,
            "<p class=\"note\">Accuracy against the original in %s: max abs error, max "
            "relative error, cosine similarity, per output.</p>\n",
            tc_bench_runtime_name(ref->rt));
    fputs("<table id=\"accuracy-table\" class=\"sortable\">", f);
    static const char *const acols[] = {"batch",       "model",       "runtime", "output",
                                        "max abs err", "max rel err", "cosine",  NULL};
    th_row(f, acols);
    fputs("<tbody>\n", f);
    for (size_t i = 0; i < b->n_batches; i++) {
      const tc_bench_batch *bb = &b->batches[i];
      for (size_t k = 1; k < bb->n_rows; k++) {
        const tc_bench_row *row = &bb->rows[k];
        for (size_t o = 0; o < row->n_acc; o++) {
          const tc_bench_acc *a = &row->acc[o];
          fputs("<tr>", f);
          td_uint(f, (unsigned long long)bb->batch);
          td_text(f, model_role(row->model));
          td_text(f, tc_bench_runtime_name(row->rt));
          td_text(f, a->output);
          snprintf(c[0], 32, "%.3g", a->max_abs);
          td_num(f, a->max_abs, c[0]);
          snprintf(c[1], 32, "%.3g", a->max_rel);
          td_num(f, a->max_rel, c[1]);
          snprintf(c[2], 32, "%.6f", a->cos);
          td_num(f, a->cos, c[2]);
          fputs("</tr>\n", f);
        }
      }
    }
    fputs("</tbody></table>\n", f);
  }
  fputs("</section>\n", f);
  return 0;
}

static int section_precision(FILE *f, const tc_opt_report *r) {
  size_t n = r->n_layer_errors;
  if (!n)
    return 0;
  const char *metric = r->layer_error_metric ? r->layer_error_metric : "error";
  const char **labels = calloc(n, sizeof *labels);
  double *v = calloc(n, sizeof *v);
  if (!labels || !v) {
    free(labels), free(v);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    labels[i] = r->layer_errors[i].layer;
    v[i] = r->layer_errors[i].error;
  }
  fputs("<section id=\"precision\"><h2>Per-layer error</h2>\n", f);
  chart_series s[1] = {{metric, v}};
  svg_chart(f, &(chart){"Per-layer error against the original", "", labels, n, s, 1, true});
  free(labels), free(v);
  fputs("<table id=\"layer-table\" class=\"sortable\">", f);
  const char *cols[] = {"layer", "op", metric, NULL};
  th_row(f, cols);
  fputs("<tbody>\n", f);
  char buf[32];
  for (size_t i = 0; i < n; i++) {
    fputs("<tr>", f);
    td_text(f, r->layer_errors[i].layer);
    td_text(f, r->layer_errors[i].op ? r->layer_errors[i].op : "");
    snprintf(buf, sizeof buf, "%.3g", r->layer_errors[i].error);
    td_num(f, r->layer_errors[i].error, buf);
    fputs("</tr>\n", f);
  }
  fputs("</tbody></table></section>\n", f);
  return 0;
}

/* The tuner's decisions: built-in vs winning kernel per signature, then
 * every candidate's time. */
static int section_tuning(FILE *f, const tc_opt_report *r) {
  const tc_report_tuning *t = r->tuning;
  if (!t)
    return 0;
  fputs("<section id=\"tuning\"><h2>Generated kernels and tuning</h2>\n<p class=\"note\">", f);
  fprintf(f, "--tune %s, CPU <code>", t->mode);
  esc(f, t->cpu);
  fputs("</code>; ", f);
  if (t->library) {
    fputs("kernel library <code>", f);
    esc(f, t->library);
    fputs("</code>", f);
  } else {
    fputs("no kernel library written", f);
  }
  if (t->model_checked)
    fprintf(f, "; whole model %.3f ms with libtacort's kernels, %.3f ms with the generated ones",
            t->builtin_ms, t->generated_ms);
  if (t->note) {
    fputs(". ", f);
    esc(f, t->note);
  }
  fputs("</p>\n", f);
  size_t n = t->n;
  const char **labels = calloc(n + 1, sizeof *labels);
  double *b = calloc(n + 1, sizeof *b), *w = calloc(n + 1, sizeof *w);
  if (!labels || !b || !w) {
    free(labels), free(b), free(w);
    return -1;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const tc_report_tune_decision *d = &t->d[i];
    double wt = NAN;
    for (size_t c = 0; c < d->n_cands; c++)
      if (!strcmp(d->cands[c].name, d->winner))
        wt = d->cands[c].median_us;
    if (d->n_cands && !isnan(d->cands[0].median_us) && !isnan(wt)) {
      labels[k] = d->signature;
      b[k] = d->cands[0].median_us;
      w[k++] = wt;
    }
  }
  if (k) {
    chart_series s[2] = {{"libtacort's kernel", b}, {"chosen", w}};
    svg_chart(f, &(chart){"Kernel time per signature (median)", " us", labels, k, s, 2, false});
  }
  free(labels), free(b), free(w);
  fputs("<table id=\"tuning-table\" class=\"sortable\">", f);
  const char *cols[] = {"signature", "op", "nodes", "winner", "candidates (median us)",
                        "reason",    NULL};
  th_row(f, cols);
  fputs("<tbody>\n", f);
  for (size_t i = 0; i < n; i++) {
    const tc_report_tune_decision *d = &t->d[i];
    fputs("<tr>", f);
    td_text(f, d->signature);
    td_text(f, d->op);
    td_uint(f, d->nodes);
    td_text(f, d->winner);
    fputs("<td>", f);
    for (size_t c = 0; c < d->n_cands; c++) {
      fputs(c ? ", " : "", f);
      esc(f, d->cands[c].name);
      if (!isnan(d->cands[c].median_us))
        fprintf(f, " %.1f", d->cands[c].median_us);
    }
    fputs("</td>", f);
    td_text(f, d->cached ? "from the tuning cache" : d->reason);
    fputs("</tr>\n", f);
  }
  fputs("</tbody></table></section>\n", f);
  return 0;
}

static bool is_preferred(const tc_triton_plan *p, int64_t batch) {
  for (size_t i = 0; i < p->n_preferred; i++)
    if (p->preferred[i] == batch)
      return true;
  return false;
}

/* config.pbtxt as written, in a <pre>. */
static void embed_file(FILE *f, const char *path) {
  FILE *in = fopen(path, "r");
  if (!in)
    return;
  fputs("<pre id=\"triton-config\">", f);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf - 1, in)) > 0) {
    buf[n] = '\0';
    esc(f, buf);
  }
  fclose(in);
  fputs("</pre>\n", f);
}

static int section_triton(FILE *f, const tc_opt_report *r) {
  const tc_triton_plan *p = r->triton;
  if (!p)
    return 0;
  fputs("<section id=\"triton\"><h2>Triton model repository</h2>\n<p><code>", f);
  esc(f, p->model_dir);
  fputs("</code>: <code>config.pbtxt</code> and <code>1/model.onnx</code> for the ONNX Runtime "
        "backend.</p>\n",
        f);
  if (p->max_batch_size <= 0) {
    fputs("<p>max_batch_size 0, no dynamic batching: ", f);
    esc(f, p->unbatched);
    fputs(".</p>\n", f);
  } else {
    fprintf(f, "<p>Batch dim <code>");
    esc(f, p->batch_dim);
    fprintf(f,
            "</code>. max_batch_size <b>%lld</b> (the best throughput measured), "
            "preferred_batch_size <b>",
            (long long)p->max_batch_size);
    for (size_t i = 0; i < p->n_preferred; i++)
      fprintf(f, "%s%lld", i ? ", " : "", (long long)p->preferred[i]);
    fprintf(f,
            "</b> (within 90%% of it), max_queue_delay_microseconds <b>%llu</b> (p50 of the "
            "smallest preferred batch, at least 100). Measured in libtacort, batches doubling up "
            "to %lld "
            "until throughput gains less than 5%%.</p>\n",
            (unsigned long long)p->queue_delay_us, (long long)p->max_batch_limit);
    const char **labels = calloc(p->n_curve + 1, sizeof *labels);
    char(*lb)[64] = calloc(p->n_curve + 1, sizeof *lb);
    double *v = calloc(p->n_curve + 1, sizeof *v);
    if (!labels || !lb || !v) {
      free(labels), free(lb), free(v);
      return -1;
    }
    for (size_t i = 0; i < p->n_curve; i++) {
      const tc_triton_point *pt = &p->curve[i];
      snprintf(lb[i], sizeof lb[i], "batch %lld%s%s", (long long)pt->batch,
               pt->batch == p->max_batch_size ? " (max)" : "",
               is_preferred(p, pt->batch) ? " (preferred)" : "");
      labels[i] = lb[i];
      v[i] = pt->throughput;
    }
    chart_series s[1] = {{"throughput (inferences/s)", v}};
    svg_chart(f, &(chart){"Throughput per batch size", "/s", labels, p->n_curve, s, 1, false});
    free(labels), free(lb), free(v);
    fputs("<table id=\"triton-table\">", f);
    static const char *const cols[] = {"batch", "p50 ms", "inf/s", "picked", NULL};
    th_row(f, cols);
    fputs("<tbody>\n", f);
    char c[2][32];
    for (size_t i = 0; i < p->n_curve; i++) {
      const tc_triton_point *pt = &p->curve[i];
      fputs("<tr>", f);
      td_uint(f, (unsigned long long)pt->batch);
      td_num(f, pt->p50_ms, fmt_ms(pt->p50_ms, c[0], 32));
      snprintf(c[1], 32, "%.1f", pt->throughput);
      td_num(f, pt->throughput, c[1]);
      fprintf(f, "<td>%s%s%s</td></tr>\n", pt->batch == p->max_batch_size ? "max_batch_size" : "",
              pt->batch == p->max_batch_size && is_preferred(p, pt->batch) ? ", " : "",
              is_preferred(p, pt->batch) ? "preferred" : "");
    }
    fputs("</tbody></table>\n", f);
  }
  embed_file(f, p->config_path);
  fputs("</section>\n", f);
  return 0;
}

static int write_page(FILE *f, const tc_opt_report *r) {
  explain_list ex;
  if (explain_parse(r->explain, &ex))
    return -1;
  fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>tacoc optimize report: ",
        f);
  esc(f, r->input);
  fprintf(f,
          "</title>\n<style>\n%s</style>\n</head>\n<body>\n<header>\n"
          "<h1>tacoc optimize report</h1>\n<p class=\"sub\"><code>",
          CSS);
  esc(f, r->input);
  fputs("</code> \u2192 <code>", f);
  esc(f, r->output);
  fputs("</code> \u00b7 ", f);
  if (r->passes) {
    fputs("<code>--passes ", f);
    esc(f, r->passes);
    fputs("</code>", f);
  } else {
    fprintf(f, "-O%d", r->level);
  }
  fputs(" \u00b7 tacoc ", f);
  esc(f, tc_version());
  fputs("</p>\n</header>\n", f);
  section_summary(f, r, ex.n);
  section_passes(f, r);
  int rc = section_ops(f, r);
  if (!rc) {
    section_rejected(f, &ex);
    rc = section_bench(f, r);
  }
  if (!rc)
    rc = section_precision(f, r);
  if (!rc)
    rc = section_tuning(f, r);
  if (!rc)
    rc = section_triton(f, r);
  fputs("<footer>Written by tacoc ", f);
  esc(f, tc_version());
  fputs(". The page needs no network; times vary from run to run. <span id=\"tc-script\" "
        "data-status=\"off\">(Scripts are off: tables are not sortable.)</span></footer>\n",
        f);
  fprintf(f, "<script>\n%s</script>\n</body>\n</html>\n", SCRIPT);
  explain_free(&ex);
  return rc;
}

int tc_report_write_html(const tc_opt_report *r, const char *path) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f)
    return tc_cli_error("%s: cannot write the report: %s", path, strerror(errno));
  int oom = write_page(f, r);
  bool bad = ferror(f) != 0;
  bad |= fclose(f) != 0;
  if (oom || bad || rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    if (oom)
      return tc_cli_error("out of memory");
    return tc_cli_error("%s: cannot write the report: %s", path, strerror(e ? e : EIO));
  }
  return 0;
}
