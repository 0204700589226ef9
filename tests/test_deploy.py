"""The Grafana dashboard and the Prometheus alert rules under deploy/: every metric and label they use
is one the store exports (redis_sessions.observability.metrics.METRICS), the dashboard shows every
metric, and promtool accepts the rules and their unit tests (when promtool is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")
pytest.importorskip("yaml", reason="PyYAML is not installed")

import yaml

from redis_sessions.observability.metrics import METRICS, MetricInfo

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "redis-sessions.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
REQUIRED_ALERTS = {
    "RedisSessionsErrorRate",
    "RedisSessionsP99Latency",
    "RedisSessionsSweeperSilent",
    "RedisSessionsConflictSpike",
    "RedisSessionsInvalidationLag",
}
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not on PATH (Debian: the prometheus package; or a Prometheus release)",
)

NAME = re.compile(r"\bredis_sessions_[a-z_]+")
SELECTOR = re.compile(r"\b(redis_sessions_[a-z_]+)\{([^}]*)\}")
GROUPING = re.compile(r"\bby \(([^)]*)\)")


def dashboard_exprs() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in data["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict[str, str]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def metric_of(sample_name: str) -> MetricInfo:
    """The documented metric a sample name belongs to (histograms: _bucket, _sum, _count)."""
    for info in METRICS:
        if sample_name == info.name:
            return info
        if info.kind == "histogram" and sample_name in {
            info.name + suffix for suffix in ("_bucket", "_sum", "_count")
        }:
            return info
    raise AssertionError(f"{sample_name} is not a metric of the store")


def check_expr(expr: str) -> set[str]:
    """The metrics ``expr`` uses, after checking each name and label against METRICS."""
    used = {metric_of(name) for name in NAME.findall(expr)}
    assert used, expr
    for name, matchers in SELECTOR.findall(expr):
        info = metric_of(name)
        for matcher in filter(None, (m.strip() for m in matchers.split(","))):
            label = re.split(r"[=!~]", matcher, maxsplit=1)[0]
            allowed = {*info.labels, "le"} if name.endswith("_bucket") else set(info.labels)
            assert label in allowed, f"{name} has no label {label!r}: {expr}"
    known = {label for info in used for label in info.labels} | {"le"}
    for grouping in GROUPING.findall(expr):
        labels = {label.strip() for label in grouping.split(",")}
        assert labels <= known, f"grouping by {labels - known} in {expr}"
    return {info.name for info in used}


def test_the_dashboard_uses_only_real_metrics_and_shows_every_one() -> None:
    shown: set[str] = set()
    for expr in dashboard_exprs():
        shown |= check_expr(expr)
    assert shown == {info.name for info in METRICS}


def test_the_alert_rules_use_only_real_metrics() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS
    for rule in rules:
        check_expr(rule["expr"])
        assert rule["labels"]["severity"] in {"page", "warn"}
        assert rule["annotations"]["summary"]


def test_the_sweeper_alert_waits_three_default_intervals() -> None:
    from workers.sweeper import DEFAULT_INTERVAL

    (rule,) = [r for r in alert_rules() if r["alert"] == "RedisSessionsSweeperSilent"]
    assert f"> {3 * DEFAULT_INTERVAL}" in rule["expr"]


@needs_promtool
def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    assert PROMTOOL is not None
    for command in (["check", "rules", ALERTS.name], ["test", "rules", ALERT_TESTS.name]):
        done = subprocess.run(
            [PROMTOOL, *command],
            cwd=ALERTS.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    rules = [
        {"record": f"dashboard:query{n}", "expr": expr.replace("$__rate_interval", "5m")}
        for n, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readme_table_lists_every_metric_as_exported() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| `(redis_sessions_[a-z_]+)` \| (\w+) \| ([^|]*) \|", readme, re.MULTILINE
    )
    documented = [
        (name, kind, tuple(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows
    ]
    assert documented == [(info.name, info.kind, info.labels) for info in METRICS]
