"""The building blocks every Tierserve dashboard is made of, over Grafana's Python SDK.

A panel is a title, a unit, a legend and one or more PromQL queries (:class:`Q`); a
query marked ``target`` is a reference line (a deployment's own SLO target or objective,
read from the operator's ``tierserve_deployment_slo_*`` series, never typed in) that
Grafana draws dashed, through a field override on its query. The snapshot renderer
reads the same overrides, so both draw the same lines.

Selectors use the template variables with regex matchers, so "All" (``.*``) and
multi-value selections both work; :data:`DEP` filters per-deployment series (engines,
operator, autoscaler), :data:`ROUTE` the router's per-route series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap as hb
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.builders import stat as sb
from grafana_foundation_sdk.builders import timeseries as tb
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models import prometheus as pm

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Per-deployment series (engines, operator's deployment state, autoscaler).
DEP = 'namespace=~"$namespace", deployment=~"$deployment"'
NS = 'namespace=~"$namespace"'
# The router's series: route is the route's model name (empty on requests refused
# before a route was known: their own panel shows them). Its deployment label may be the
# bare name or "namespace/name" (a router serves deployments of several namespaces).
# They are not selected by namespace: their `namespace` label is the router pod's own
# (the chart's release namespace), not the routes' namespaces; the route and
# deployment variables, which the namespace variable narrows, select them instead.
ROUTE = 'route=~"$route", route!=""'
ROUTE_5XX = ROUTE + ', status=~"5.."'
ROUTER_DEP = 'deployment=~"(${namespace}/)?${deployment}"'
ROUTER = ""  # router-wide series (refusals before routing)
RATE = "$__rate_interval"
TARGET_STYLE = {"fill": "dash", "dash": [10, 10]}
Panel = cogbuilder.Builder[dm.Panel]


@dataclass(frozen=True)
class Q:
    """One query of a panel; ``target`` marks a reference line (SLO target, objective)."""

    expr: str
    legend: str
    target: bool = False


def rate(metric: str, sel: str, window: str = RATE) -> str:
    return f"rate({metric}{{{sel}}}[{window}])"


def quantile(q: float, histogram: str, sel: str, by: str, window: str = RATE) -> str:
    """``q``-quantile of a histogram family, aggregated ``by`` these labels."""
    return (f"histogram_quantile({q:g}, sum by ({by}, le) "
            f"({rate(histogram + '_bucket', sel, window)}))")


def zero_filled(numerator: str, denominator: str) -> str:
    """``numerator / denominator`` where a numerator with no series yet counts as 0 (no
    5xx so far is a 0 % error rate, not "No data")."""
    return f"(({numerator}) or ({denominator}) * 0) / ({denominator})"


def _targets(panel: tb.Panel | sb.Panel | hb.Panel, queries: Sequence[Q]) -> None:
    for i, q in enumerate(queries):
        ref = chr(ord("A") + i)
        panel.with_target(pb.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(ref))
        if q.target:
            panel.override_by_query(ref, [
                dm.DynamicConfigValue(id_val="custom.lineStyle", value=TARGET_STYLE),
                dm.DynamicConfigValue(id_val="custom.lineWidth", value=2),
                dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0)])


def _legend() -> cb.VizLegendOptions:
    return (cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"]))


def _steps(lines: Sequence[tuple[float, str]]) -> db.ThresholdsConfig:
    steps = [dm.Threshold(value=None, color="green")]
    steps += [dm.Threshold(value=v, color=c) for v, c in lines]
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps)


def timeseries(title: str, unit: str, *queries: Q, description: str = "", span: int = 12,
               height: int = 8, min_val: float | None = 0, max_val: float | None = None,
               lines: Sequence[tuple[float, str]] = (), stack: bool = False) -> tb.Panel:
    """A time series panel; ``lines`` are fixed thresholds drawn dashed (burn-rate alert
    factors: constants of the method, not of a deployment)."""
    p = (tb.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
         .span(span).height(height).legend(_legend()).line_width(1).fill_opacity(10)
         .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI)
                  .sort(cm.SortOrder.DESCENDING)))
    if min_val is not None:
        p.min(min_val)
    if max_val is not None:
        p.max(max_val)
    if lines:
        p.thresholds(_steps(lines)).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.DASHED))
    if stack:
        p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(40)
    _targets(p, queries)
    return p


def stat(title: str, unit: str, *queries: Q, description: str = "", span: int = 4,
         height: int = 4, lines: Sequence[tuple[float, str]] = ()) -> sb.Panel:
    """A single-number panel (last value), with a sparkline of its history."""
    p = (sb.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
         .span(span).height(height).graph_mode(cm.BigValueGraphMode.AREA)
         .color_mode(cm.BigValueColorMode.VALUE).text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
         .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    p.thresholds(_steps(lines))
    _targets(p, queries)
    return p


def heatmap(title: str, unit: str, histogram: str, sel: str, description: str = "",
            span: int = 8, height: int = 8) -> hb.Panel:
    """A latency heatmap: requests per bucket per interval (Grafana turns the cumulative
    ``le`` buckets into per-bucket counts with the heatmap format)."""
    expr = f"sum by (le) (increase({histogram}_bucket{{{sel}}}[{RATE}]))"
    p = (hb.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
         .span(span).height(height).calculate(False)
         .y_axis(hb.YAxisConfig().unit(unit))
         .cell_values(hb.CellValues().unit("short"))
         .color(hb.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME).scheme("Oranges")
                .steps(64).exponent(0.5))
         .show_legend().show_tooltip())
    p.with_target(pb.Dataquery().expr(expr).legend_format("{{le}}").ref_id("A")
                  .format(pm.PromQueryFormat.HEATMAP))
    return p


def variables() -> list[cogbuilder.Builder[dm.VariableModel]]:
    """datasource, namespace, model, deployment, route: each from ``label_values`` of
    the operator's info series, chained (a namespace narrows the models and routes, a
    model the deployments)."""
    def query(name: str, label: str, expr: str) -> db.QueryVariable:
        return (db.QueryVariable(name).label(label).datasource(DATASOURCE)
                .query(f"label_values({expr}, {name})")
                .multi(True).include_all(True).all_value(".*")
                .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(dm.VariableSort.ALPHABETICAL_ASC))
    return [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        query("namespace", "Namespace", "tierserve_deployment_info"),
        query("model", "Model", 'tierserve_deployment_info{namespace=~"$namespace"}'),
        query("deployment", "Deployment",
              'tierserve_deployment_info{namespace=~"$namespace", model=~"$model"}'),
        query("route", "Route", 'tierserve_route_info{namespace=~"$namespace"}'),
    ]


def scale_events() -> db.AnnotationQuery:
    """An annotation wherever a deployment's desired replica count changed."""
    expr = f"changes(tierserve_deployment_replicas_desired{{{DEP}}}[1m]) > 0"
    return (db.AnnotationQuery().name("Scale events").datasource(DATASOURCE).enable(True)
            .icon_color("orange").expr(expr))


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


def dashboard(uid: str, title: str, doc: str | None, rows: Sequence[Row],
              annotations: Sequence[db.AnnotationQuery] = ()) -> dm.Dashboard:
    """The dashboard model, described by the first paragraph of its module's ``doc``;
    panel ids are numbered in order so the JSON is stable."""
    description = " ".join((doc or "").split("\n\n")[0].split())
    d = (db.Dashboard(title).uid(uid).description(description).tags(["tierserve"])
         .time("now-1h", "now").refresh("30s").timezone("browser").editable()
         .tooltip(dm.DashboardCursorSync.CROSSHAIR))
    for v in variables():
        d.with_variable(v)
    for a in annotations:
        d.annotation(a)
    for row in rows:
        d.with_row(db.Row(row.title))
        for p in row.panels:
            d.with_panel(p)
    model = d.build()
    for i, panel in enumerate(model.panels or [], start=1):
        panel.id_val = i
    return model
