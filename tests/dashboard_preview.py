"""A preview of the Grafana dashboard (``deploy/grafana/openlines-dashboard.json``) drawn from
scrapes taken in a test run: each panel's title and its series as a small SVG line chart.

Grafana cannot run in the test environment, so this evaluates the dashboard's own PromQL over
the scrapes, with a small evaluator of just what the dashboard uses: selectors with label
matchers, ``rate(...[range])`` (no extrapolation to the window's edges, unlike Prometheus),
``sum``/``max``/``min``/``avg`` ``by (labels)`` and ``histogram_quantile``. Dashboard
variables are replaced before parsing: ``$__rate_interval`` by the window given, ``$line``
(and any other) by the value given, or by ``.*`` (All).
"""

import html
import itertools
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
Vector = dict[Labels, float]


@dataclass(frozen=True)
class Scrape:
    """One scrape: when (seconds, any origin) and its samples by sample name."""

    at: float
    samples: dict[str, Vector]


def parse_scrape(at: float, *texts: str) -> Scrape:
    """The samples of these Prometheus texts (later texts win on the same series)."""
    samples: dict[str, Vector] = defaultdict(dict)
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name][_labels(sample.labels)] = float(sample.value)
    return Scrape(at, dict(samples))


def _labels(labels: dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


# --- parsing ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<duration>\d+(?:\.\d+)?(?:ms|s|m|h))|(?P<number>\d+(?:\.\d+)?)"
    r'|(?P<name>[A-Za-z_:][\w:]*)|(?P<string>"(?:[^"\\]|\\.)*")'
    r"|(?P<op>=~|!~|!=|[=(){}\[\],]))"
)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": sum,
    "max": max,
    "min": min,
    "avg": lambda values: sum(values) / len(values),
}


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)


@dataclass(frozen=True)
class Rate:
    selector: Selector
    window_s: float


@dataclass(frozen=True)
class Aggregation:
    op: str
    by: tuple[str, ...]
    inner: "Expr"


@dataclass(frozen=True)
class Quantile:
    q: float
    inner: "Expr"


Expr = Selector | Rate | Aggregation | Quantile


def substitute(expr: str, rate_window: str, variables: dict[str, str] | None = None) -> str:
    """The expression with ``$__rate_interval`` and the dashboard's variables filled in."""
    expr = expr.replace("$__rate_interval", rate_window)
    values = variables or {}
    return re.sub(r"\$(\w+)", lambda m: values.get(m.group(1), ".*"), expr)


def parse(expr: str) -> Expr:
    """The syntax tree of one expression (after ``substitute``)."""
    parser = _Parser(_tokenize(expr))
    tree = parser.expression()
    parser.take("end")
    return tree


def _tokenize(expr: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expr.rstrip()):
        match = _TOKEN.match(expr, position)
        if match is None or match.end() == position:
            raise ValueError(f"cannot read {expr[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.at = tokens, 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self, kind: str, text: str | None = None) -> str:
        found = self.peek()
        if found[0] != kind or (text is not None and found[1] != text):
            raise ValueError(f"expected {text or kind}, found {found[1] or 'the end'}")
        self.at += 1
        return found[1]

    def expression(self) -> Expr:
        name = self.take("name")
        if name in AGGREGATIONS:
            by = self.grouping()
            self.take("op", "(")
            inner = self.expression()
            self.take("op", ")")
            by = by or self.grouping()
            return Aggregation(name, by, inner)
        if name == "rate":
            self.take("op", "(")
            selector = self.selector(self.take("name"))
            self.take("op", "[")
            window = self.take("duration")
            self.take("op", "]")
            self.take("op", ")")
            unit = re.sub(r"[\d.]", "", window)
            return Rate(selector, float(window.removesuffix(unit)) * _SECONDS[unit])
        if name == "histogram_quantile":
            self.take("op", "(")
            q = float(self.take("number"))
            self.take("op", ",")
            inner = self.expression()
            self.take("op", ")")
            return Quantile(q, inner)
        return self.selector(name)

    def grouping(self) -> tuple[str, ...]:
        if self.peek() != ("name", "by"):
            return ()
        self.take("name")
        self.take("op", "(")
        labels = [self.take("name")]
        while self.peek() == ("op", ","):
            self.take("op")
            labels.append(self.take("name"))
        self.take("op", ")")
        return tuple(labels)

    def selector(self, name: str) -> Selector:
        matchers = []
        if self.peek() == ("op", "{"):
            self.take("op")
            while self.peek() != ("op", "}"):
                label = self.take("name")
                op = self.take("op")
                if op not in ("=", "!=", "=~", "!~"):
                    raise ValueError(f"unknown matcher {op}")
                value = self.take("string")[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                matchers.append((label, op, value))
                if self.peek() == ("op", ","):
                    self.take("op")
            self.take("op", "}")
        return Selector(name, tuple(matchers))


def metric_names(tree: Expr) -> set[str]:
    """The sample names an expression reads."""
    if isinstance(tree, Selector):
        return {tree.name}
    if isinstance(tree, Rate):
        return {tree.selector.name}
    return metric_names(tree.inner)


def rated_names(tree: Expr) -> set[str]:
    """The sample names an expression reads through ``rate``."""
    if isinstance(tree, Rate):
        return {tree.selector.name}
    if isinstance(tree, Selector):
        return set()
    return rated_names(tree.inner)


# --- evaluation ------------------------------------------------------------------------


def evaluate(tree: Expr, scrapes: list[Scrape], index: int) -> Vector:
    """The expression's instant vector at ``scrapes[index]``."""
    if isinstance(tree, Selector):
        return _select(tree, scrapes[index])
    if isinstance(tree, Rate):
        return _rate(tree, scrapes, index)
    if isinstance(tree, Aggregation):
        groups: dict[Labels, list[float]] = defaultdict(list)
        for labels, value in evaluate(tree.inner, scrapes, index).items():
            groups[tuple((k, v) for k, v in labels if k in tree.by)].append(value)
        return {labels: AGGREGATIONS[tree.op](values) for labels, values in groups.items()}
    return _quantile(tree.q, evaluate(tree.inner, scrapes, index))


def _matches(labels: Labels, matchers: Iterable[tuple[str, str, str]]) -> bool:
    found = dict(labels)
    for label, op, wanted in matchers:
        value = found.get(label, "")
        if (op == "=" and value != wanted) or (op == "!=" and value == wanted):
            return False
        if op in ("=~", "!~") and (re.fullmatch(wanted, value) is not None) != (op == "=~"):
            return False
    return True


def _select(selector: Selector, scrape: Scrape) -> Vector:
    series = scrape.samples.get(selector.name, {})
    return {labels: v for labels, v in series.items() if _matches(labels, selector.matchers)}


def _rate(rate: Rate, scrapes: list[Scrape], index: int) -> Vector:
    """Per-second increase over the scrapes in (t - window, t], counter resets allowed for."""
    now = scrapes[index].at
    points: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
    for scrape in scrapes[: index + 1]:
        if scrape.at > now - rate.window_s:
            for labels, value in _select(rate.selector, scrape).items():
                points[labels].append((scrape.at, value))
    result: Vector = {}
    for labels, series in points.items():
        if len(series) < 2:
            continue
        increase = sum(b if b < a else b - a for (_, a), (_, b) in itertools.pairwise(series))
        result[labels] = increase / (series[-1][0] - series[0][0])
    return result


def _quantile(q: float, buckets: Vector) -> Vector:
    """Prometheus's ``histogram_quantile``: linear within the bucket holding the rank."""
    histograms: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
    for labels, count in buckets.items():
        found = dict(labels)
        if "le" in found:
            rest = tuple((k, v) for k, v in labels if k != "le")
            histograms[rest].append((float(found["le"]), count))
    result: Vector = {}
    for labels, series in histograms.items():
        series.sort()
        if len(series) < 2 or series[-1][0] != math.inf or series[-1][1] <= 0:
            continue  # NaN in Prometheus: no observations, or no +Inf bucket
        rank = q * series[-1][1]
        lower_bound, lower_count = 0.0, 0.0
        for upper_bound, count in series:
            if count >= rank:
                if upper_bound == math.inf:
                    result[labels] = lower_bound  # the highest finite bound
                elif count == lower_count:
                    result[labels] = upper_bound
                else:
                    fraction = (rank - lower_count) / (count - lower_count)
                    result[labels] = lower_bound + (upper_bound - lower_bound) * fraction
                break
            lower_bound, lower_count = upper_bound, count
    return result


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]  # (seconds since the first scrape, value)
    color: str | None = None  # a fixed colour from the panel's overrides


def panel_series(
    panel: dict[str, Any],
    scrapes: list[Scrape],
    rate_window: str = "2s",
    variables: dict[str, str] | None = None,
) -> list[Series]:
    """Every series of a panel's targets over the scrapes, named by their legend format."""
    start = scrapes[0].at
    found: dict[str, Series] = {}
    for target in panel.get("targets", []):
        tree = parse(substitute(target["expr"], rate_window, variables))
        for index, scrape in enumerate(scrapes):
            for labels, value in sorted(evaluate(tree, scrapes, index).items()):
                if math.isnan(value):
                    continue
                name = _legend(target.get("legendFormat", ""), dict(labels))
                series = found.setdefault(name, Series(name, [], _fixed_color(panel, name)))
                series.points.append((scrape.at - start, value))
    return list(found.values())


def _legend(template: str, labels: dict[str, str]) -> str:
    if not template or template == "__auto":
        return ", ".join(f"{k}={v}" for k, v in labels.items()) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def _fixed_color(panel: dict[str, Any], name: str) -> str | None:
    """The colour an override of the panel gives this series (by name or regex)."""
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        pattern = str(matcher.get("options", ""))
        if matcher.get("id") == "byName":
            hit = pattern == name
        elif matcher.get("id") == "byRegexp":
            hit = re.fullmatch(pattern.strip("/"), name) is not None
        else:
            hit = False
        for prop in override.get("properties", []) if hit else []:
            if prop.get("id") == "color":
                return _GRAFANA_COLORS.get(prop["value"].get("fixedColor"), "#ccccdc")
    return None


# --- drawing ---------------------------------------------------------------------------

_GRAFANA_COLORS = {
    "green": "#73bf69",
    "yellow": "#fade2a",
    "blue": "#5794f2",
    "orange": "#ff9830",
    "red": "#f2495c",
    "purple": "#b877d9",
}
_PALETTE = ["#73bf69", "#fade2a", "#5794f2", "#ff9830", "#b877d9", "#37872d", "#8ab8ff"]
# Charts are drawn at the size they take on the page (1568 px wide, 24 columns, 8 px gaps),
# so text reads alike in narrow and wide panels.
_HEIGHT, _LEFT, _BOTTOM = 180, 58, 20


def _width(columns: int) -> float:
    return (1568 - 23 * 8) / 24 * columns + 8 * (columns - 1) - 18


def format_value(value: float, unit: str) -> str:
    """A value as Grafana would show it in this unit (roughly)."""
    if unit == "s":
        if value == 0:
            return "0 s"
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    suffix = {"ops": " ops/s", "reqps": " req/s"}.get(unit, "")
    return f"{value:.3g}{suffix}"


def _chart(series: list[Series], unit: str, duration: float, columns: int) -> str:
    width = _width(columns)
    if not series:
        return (
            f'<svg viewBox="0 0 {width:.0f} {_HEIGHT}" class="chart">'
            f'<text x="{width / 2:.0f}" y="{_HEIGHT / 2}" class="nodata">No data</text></svg>'
        )
    top = max(value for s in series for _, value in s.points)
    top = _nice_ceiling(top)
    plot_w, plot_h = width - _LEFT - 8, _HEIGHT - _BOTTOM - 8
    parts = [f'<svg viewBox="0 0 {width:.0f} {_HEIGHT}" class="chart">']
    for step in range(5):
        value = top * step / 4
        y = 8 + plot_h - plot_h * step / 4
        parts.append(
            f'<line x1="{_LEFT}" x2="{width - 8:.0f}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        label = html.escape(format_value(value, unit))
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" class="ylabel">{label}</text>')
    for second in range(0, int(duration) + 1, max(1, int(duration // 6) or 1)):
        x = _LEFT + plot_w * second / max(duration, 1e-9)
        parts.append(f'<text x="{x:.1f}" y="{_HEIGHT - 4}" class="xlabel">{second}s</text>')
    for position, line in enumerate(series):
        color = line.color or _PALETTE[position % len(_PALETTE)]
        coords = " ".join(
            f"{_LEFT + plot_w * t / max(duration, 1e-9):.1f},{8 + plot_h - plot_h * v / top:.1f}"
            for t, v in line.points
        )
        parts.append(f'<polyline points="{coords}" stroke="{color}" class="series"/>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _legend_html(series: list[Series], unit: str) -> str:
    items = []
    for position, line in enumerate(series):
        color = line.color or _PALETTE[position % len(_PALETTE)]
        last = format_value(line.points[-1][1], unit)
        items.append(
            f'<li><span class="swatch" style="background:{color}"></span>'
            f"{html.escape(line.name)} <b>{html.escape(last)}</b></li>"
        )
    return f'<ul class="legend">{"".join(items)}</ul>'


_STYLE = """
body { background: #111217; color: #ccccdc; font: 13px/1.4 Inter, Helvetica, Arial, sans-serif;
       margin: 16px; width: 1568px; }
h1 { font-size: 20px; margin: 0 0 4px; color: #fff; }
.note { color: #8e8e99; margin: 0 0 12px; }
h2 { font-size: 15px; color: #fff; margin: 14px 0 6px; border-bottom: 1px solid #2c2d33;
     padding-bottom: 4px; }
.row { display: grid; grid-template-columns: repeat(24, 1fr); gap: 8px; }
.panel { background: #181b1f; border: 1px solid #2c2d33; border-radius: 3px; padding: 6px 8px; }
.panel h3 { font-size: 13px; margin: 0 0 2px; color: #fff; font-weight: 500; }
.chart { width: 100%; height: auto; display: block; }
.grid { stroke: #2c2d33; stroke-width: 1; }
.ylabel { fill: #8e8e99; font-size: 10px; text-anchor: end; }
.xlabel { fill: #8e8e99; font-size: 10px; text-anchor: middle; }
.nodata { fill: #8e8e99; font-size: 14px; text-anchor: middle; }
.series { fill: none; stroke-width: 2; }
.legend { list-style: none; margin: 2px 0 0; padding: 0; font-size: 11px; }
.legend li { display: inline-block; margin-right: 12px; }
.swatch { display: inline-block; width: 12px; height: 3px; margin-right: 4px;
          vertical-align: middle; }
"""


def render(
    dashboard: dict[str, Any],
    scrapes: list[Scrape],
    rate_window: str = "2s",
    variables: dict[str, str] | None = None,
) -> str:
    """The dashboard's rows and panels as one HTML page."""
    duration = scrapes[-1].at - scrapes[0].at
    chosen = ", ".join(f"${k} = {v}" for k, v in (variables or {}).items()) or "every variable All"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(dashboard['title'])} — preview</h1>",
        f"<p class='note'>openlines' preview of the dashboard's panels (not Grafana): its PromQL "
        f"evaluated over {len(scrapes)} scrapes of a test run ({duration:.1f} s), "
        f"$__rate_interval = {rate_window}; {html.escape(chosen)}.</p>",
    ]
    row: list[str] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            if row:
                parts.append(f'<div class="row">{"".join(row)}</div>')
            row = []
            parts.append(f"<h2>{html.escape(panel['title'])}</h2>")
            continue
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        series = panel_series(panel, scrapes, rate_window, variables)
        row.append(
            f'<div class="panel" style="grid-column: span {panel["gridPos"]["w"]}">'
            f"<h3>{html.escape(panel['title'])}</h3>"
            f"{_chart(series, unit, duration, panel['gridPos']['w'])}"
            f"{_legend_html(series, unit)}</div>"
        )
    if row:
        parts.append(f'<div class="row">{"".join(row)}</div>')
    parts.append("</body></html>")
    return "".join(parts)
