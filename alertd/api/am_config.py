"""alertd's routing seen as Alertmanager's: receivers, the receivers of an alert, and the
configuration text ``GET /api/v2/status`` shows (``amtool config show`` prints it).

Receivers are alertd's teams and channels (a name that is both is listed once), plus
``alertd``: the root route's receiver, which takes what no route matches (alertd sends that
to every ``log`` channel). The configuration is channels.yaml rendered as an Alertmanager
``route`` tree: one child route per target of a route's first step (``match`` becomes
``matchers``; a list of values becomes a regex alternation; ``priority``, ``level`` and
``rule`` match the incident's fields as if they were labels); later escalation steps and
maintenance windows are listed in comments. It holds no secrets (no channel settings) and
passes ``amtool check-config``, but Alertmanager could not deliver with it: it is a view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from alertd.config.channels import ChannelsFile, Route
from alertd.config.load import Config
from alertd.incidents.routing import matching_routes
from alertd.model import Incident
from alertd.state.maintenance import as_label_matchers

ROOT_RECEIVER = "alertd"


def receiver_names(channels: ChannelsFile) -> list[str]:
    """Return every receiver: the root one, the teams, then the channels."""
    names = [ROOT_RECEIVER]
    for name in [*channels.teams, *channels.channels]:
        if name not in names:
            names.append(name)
    return names


def routed(incident: Incident, channels: ChannelsFile) -> list[tuple[str, Route | None]]:
    """Return who is paged at once for ``incident`` and through which route, in route order:
    ``[(team or channel, route)]``, or ``[("alertd", None)]`` when no route matches."""
    out: list[tuple[str, Route | None]] = []
    for route in matching_routes(incident, channels):
        for target in route.steps[0].notify:
            if all(target != t for t, _ in out):
                out.append((target, route))
    return out or [(ROOT_RECEIVER, None)]


def go_duration(seconds: float) -> str:
    """Format a duration as Prometheus does: ``1h30m``, ``5m``, ``0s``."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out + (f"{ms}ms" if ms else "")


def _matchers(route: Route) -> list[str]:
    return [str(m) for m in as_label_matchers(route.match)]


def _routes(channels: ChannelsFile) -> tuple[list[dict[str, Any]], list[str]]:
    routes: list[dict[str, Any]] = []
    notes: list[str] = []
    for index, route in enumerate(channels.routes):
        targets = route.steps[0].notify
        for i, target in enumerate(targets):
            child: dict[str, Any] = {"receiver": target}
            if route.match:
                child["matchers"] = _matchers(route)
            if route.group_by:
                child["group_by"] = list(route.group_by)
                child["group_wait"] = go_duration(route.group_wait)
                if route.group_interval:  # (off in alertd; Alertmanager has no "off")
                    child["group_interval"] = go_duration(route.group_interval)
            if route.repeat is not None:
                child["repeat_interval"] = go_duration(route.repeat)
            if i < len(targets) - 1 or route.continue_:
                child["continue"] = True
            routes.append(child)
        for step in route.steps[1:]:
            who = ", ".join(step.notify)
            notes.append(f"routes[{index}] escalates to {who} after {go_duration(step.after)}")
    return routes, notes


def render_config(config: Config, version: str) -> str:
    """Return the Alertmanager-style YAML of ``config`` (see the module docstring)."""
    channels = config.channels
    routes, notes = _routes(channels)
    logs = [name for name, c in channels.channels.items() if c.type == "log"]
    body: dict[str, Any] = {
        "global": {"resolve_timeout": go_duration(config.server.ingest.resolve_timeout)},
        "route": {"receiver": ROOT_RECEIVER, "group_by": ["..."]},
        "receivers": [{"name": name} for name in receiver_names(channels)],
    }
    if routes:
        body["route"]["routes"] = routes
    header = [
        f"# alertd {version}: channels.yaml as an Alertmanager configuration (a read-only view)",
        f"# receiver {ROOT_RECEIVER}: alerts no route matches; alertd sends them to "
        + (", ".join(logs) if logs else "no channel (configure a log channel)"),
        *(f"# team {name}: channels {', '.join(t.channels)}" for name, t in channels.teams.items()),
        *(f"# channel {name}: {c.type}" for name, c in channels.channels.items()),
        *(f"# {note}" for note in notes),
        *(f"# {_window(w.name, w.reason)}" for w in channels.maintenance),
    ]
    text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return "\n".join(_one_line(h) for h in header) + "\n" + text


def _window(name: str, reason: str) -> str:
    return f"maintenance window {name}: {reason}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def receivers_json(names: Sequence[str]) -> list[dict[str, str]]:
    return [{"name": name} for name in names]
