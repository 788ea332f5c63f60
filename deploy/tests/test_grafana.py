"""The Grafana dashboard queries only series the daemon exports, with the labels they carry.

The exported series are read from the Rust sources: every `counter!`, `gauge!` and
`histogram!` name with its label keys, named as metrics-exporter-prometheus writes them (a
counter keeps its name unless recommended naming is switched on, which would add `_total`; a
histogram with buckets becomes `_bucket`, `_sum` and `_count`, one without a summary with
`_sum` and `_count`). A renamed metric or label in the daemon fails this test.
"""

import functools
import json
import pathlib
import re

import pytest

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
REPO = DEPLOY.parent
DASHBOARD = DEPLOY / "grafana" / "cognito-hasura-sync.json"

METRIC_CALL = re.compile(
    r'(?:metrics::)?(counter|gauge|histogram)!\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"(.*?)\)\s*'
    r"\.\s*(?:increment|set|record|absolute)\(", re.S)
# Labels Prometheus adds when it scrapes, and the bucket bound of a histogram.
SCRAPE_LABELS = {"job", "instance"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                "and", "or", "unless", "inf", "nan"}
REQUIRED = {
    "lag": {"daemon_apply_latency_seconds_bucket", "daemon_queue_messages_visible"},
    "message outcomes": {"daemon_messages_applied_total", "daemon_messages_ignored_total",
                         "daemon_messages_failed_total"},
    "cognito": {"cognito_calls_total", "cognito_throttled_total"},
    "reconcile": {"reconcile_runs_total", "reconcile_last_finished_timestamp_seconds"},
}


def rust_sources():
    return {path: path.read_text(encoding="utf-8")
            for path in sorted((REPO / "src").rglob("*.rs"))}


@functools.lru_cache(maxsize=None)
def exported():
    """{series name in the exposition: label keys} for every metric the daemon records."""
    sources = "\n".join(rust_sources().values())
    recommended = re.search(r"with_recommended_naming\(\s*true\s*\)", sources) is not None
    bucketed = set(re.findall(r'set_buckets_for_metric\(\s*Matcher::Full\(\s*"(\w+)"', sources))
    every_histogram_bucketed = re.search(r"\.set_buckets\(", sources) is not None
    series = {}
    for kind, name, arguments in METRIC_CALL.findall(sources):
        labels = set(re.findall(r'"(\w+)"\s*=>', arguments))
        if kind == "counter":
            names = {name if name.endswith("_total") or not recommended else f"{name}_total"}
        elif kind == "gauge":
            names = {name}
        elif name in bucketed or every_histogram_bucketed:
            names = {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            series.setdefault(f"{name}_bucket", set()).add("le")
        else:
            names = {name, f"{name}_sum", f"{name}_count"}
            series.setdefault(name, set()).add("quantile")
        for exposed in names:
            series.setdefault(exposed, set()).update(labels)
    return series


def dashboard():
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def queries():
    return [(panel["title"], target["expr"]) for panel in dashboard()["panels"]
            for target in panel.get("targets", [])]


def metric_names(expression):
    """Series names in a PromQL expression: strings, matchers, ranges, grouping, numbers and
    durations removed, then every identifier that is not a function call or a keyword."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    # Numbers and durations (0.95, 1e3, 1h30m after offset).
    text = re.sub(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])\d*)*\b", " ", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end():].lstrip()
        if following.startswith("(") or match.group(0).lower() in PROMQL_WORDS:
            continue
        names.add(match.group(0))
    return names


def grouping_labels(expression):
    labels = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expression):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    return labels


def test_the_daemon_exports_what_this_test_reads():
    series = exported()
    assert "daemon_messages_applied_total" in series
    assert {"daemon_apply_latency_seconds_bucket", "daemon_apply_latency_seconds_sum"} <= set(series)
    assert series["cognito_calls_total"] == {"operation", "category", "outcome"}


def test_dashboard_is_valid_grafana_json():
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


@pytest.mark.parametrize("title,expression", queries(), ids=lambda value: value[:60])
def test_every_query_uses_exported_series_and_labels(title, expression):
    series = exported()
    names = metric_names(expression)
    assert names, expression
    unknown = names - set(series)
    assert not unknown, f"{title}: the daemon exports no {sorted(unknown)}"
    known_labels = set().union(*(series[name] for name in names)) | SCRAPE_LABELS
    assert grouping_labels(expression) <= known_labels, (title, expression)
    for matcher in re.findall(r"\{([^}]*)\}", expression):
        for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matcher):
            assert label in known_labels, (title, label)


def test_dashboard_shows_lag_outcomes_cognito_and_reconcile():
    used = set()
    for _, expression in queries():
        used |= metric_names(expression)
    for topic, needed in REQUIRED.items():
        assert needed <= used, topic
