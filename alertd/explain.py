"""``alertd explain``: the effective thresholds for one series and where each came from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alertd.collect.schedule import host_labels
from alertd.config.load import Config
from alertd.config.thresholds import Override
from alertd.config.types import format_duration
from alertd.evaluate.thresholds import resolve


def series_labels(config: Config, instance: str, extra: Mapping[str, str]) -> dict[str, str]:
    """Return the labels a series of ``instance`` carries: its target's labels plus ``extra``."""
    labels = {"instance": instance}
    for target in config.hosts:
        candidate = dict(host_labels(target))
        if candidate["instance"] == instance:
            labels = candidate
            break
    labels.update(extra)
    return labels


def explain(config: Config, instance: str, metric: str, extra: Mapping[str, str]) -> str:
    """Return a human-readable account of every rule on ``metric`` for the series."""
    labels = series_labels(config, instance, extra)
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    lines = [f"series {metric}{{{shown}}}"]
    found = False
    for src in config.rules:
        rule = src.rule
        if rule.metric != metric:
            continue
        found = True
        lines.append(f"rule {rule.rule_name} ({src.file})")
        th = resolve(rule, labels)
        if th is None:
            why = "its match does not select this series"
            if not rule.match or all(labels.get(k, "") in v for k, v in rule.match.items()):
                why = "disabled by an override"
            lines.append(f"  does not apply: {why}")
            continue
        word = "above" if th.above else "below"
        sign = "-" if th.above else "+"
        levels = ", ".join(f"{lv.label} {limit:g}" for lv, limit in th.levels)
        sources = {key: _describe(src_name, rule.overrides) for key, src_name in th.sources.items()}
        lines.append(f"  {word}: {levels}    from {sources['levels']}")
        lines.append(f"  for: {format_duration(th.for_)}    from {sources['for']}")
        lines.append(f"  clear: {th.clear:g}    from {sources['clear']}")
        for level, limit in th.levels:
            clears = limit - th.clear if th.above else limit + th.clear
            lines.append(
                f"  {level.label}: fires when {word} {limit:g} for {format_duration(th.for_)}, "
                f"clears once {'at or below' if th.above else 'at or above'} "
                f"{clears:g} ({limit:g} {sign} {th.clear:g})"
            )
    if not found:
        lines.append(f"no rule watches {metric}")
    return "\n".join(lines)


def _describe(source: str, overrides: Sequence[Override]) -> str:
    if source == "rule":
        return "the rule"
    index = int(source.removeprefix("overrides[").removesuffix("]"))
    match = overrides[index].match
    shown = ", ".join(f"{k}: {v[0] if len(v) == 1 else v}" for k, v in match.items())
    return f"{source} (match {{{shown}}})"
