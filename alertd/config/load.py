"""Load and validate a config directory as one unit.

Every file is parsed with marks, validated with its pydantic model, then cross-checked
(unknown teams or channels, level order, duplicate rule names, impact values). All problems
from all files are collected and raised together as one ``ConfigError``; nothing partial is
ever returned, which is what lets a reload keep the last good config.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from alertd.config.channels import ChannelsFile, Member, Route, Team
from alertd.config.collectors import CollectorsFile, HostTarget, SnmpTarget
from alertd.config.server import ServerFile
from alertd.config.snmp_profiles import Derived, Profile
from alertd.config.thresholds import Flapping, Rule, ThresholdsFile, check_order
from alertd.config.traps import TrapsConfig
from alertd.config.types import format_duration
from alertd.config.yaml_marks import Document, Path_, parse_file
from alertd.errors import ConfigError, ConfigProblem
from alertd.notify.channel_types import MEMBER_ADDRESS

DEFAULT_EVALUATION_INTERVAL = 15.0
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class RuleSource:
    """A validated rule and the file it came from."""

    rule: Rule
    file: str


@dataclass(frozen=True, slots=True)
class Config:
    """A whole, valid configuration."""

    directory: Path
    files: tuple[str, ...]
    rules: tuple[RuleSource, ...]
    evaluation_interval: float
    hosts: tuple[HostTarget, ...]
    channels: ChannelsFile
    snmp: tuple[SnmpTarget, ...] = ()
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    traps: TrapsConfig | None = None
    flapping: Flapping = field(default_factory=Flapping)
    server: ServerFile = field(default_factory=ServerFile)

    def summary(self) -> str:
        c = self.channels
        return (
            f"config OK: {len(self.files)} files, {len(self.rules)} rules, "
            f"{len(self.hosts)} host targets, {len(self.snmp)} SNMP targets, "
            f"{len(self.profiles)} SNMP profiles, {len(c.channels)} channels, "
            f"{len(c.teams)} teams, {len(c.routes)} routes"
        )


def load_config(directory: Path, env: Mapping[str, str] | None = None) -> Config:
    """Load ``directory``; raise ``ConfigError`` listing every problem found."""
    loader = _Loader(directory, env)
    return loader.load()


def _walk_loc(data: Any, loc: tuple[int | str, ...], names_key: bool) -> tuple[Path_, bool]:
    """Map a pydantic ``loc`` onto the real data path.

    Returns the path and whether its last element exists in the data. Elements that are not
    in the data (discriminator tags, model names) are skipped, except a final one when the
    error names a key (``names_key``: a missing or unknown key).
    """
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            path.append(part)
            node = node[part]
        elif last and names_key:
            path.append(part)
            return tuple(path), False
    return tuple(path), True


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f'unknown type "{ctx.get("tag")}" (known: {_plain(ctx.get("expected_tags"))})'
    if kind == "union_tag_not_found":
        return "required key is missing: type"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a mapping (key: value)" if err["input"] is not None else _EMPTY
    if kind == "list_type":
        return "expected a list" if err["input"] is not None else _EMPTY
    if kind == "finite_number":
        return "must be a finite number"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg  # never err["input"]: it may hold a secret


_EMPTY = "has no value (write [] or {} for none)"


def _plain(tags: object) -> str:
    return str(tags).replace("'", "")


# the parts of channels.yaml that name channels or teams
_NAMING_KEYS = {"channels", "teams", "routes", "rate_limits", "failover"}


@dataclass(frozen=True)
class _References:
    """The names channels.yaml uses, and where: from the validated file, or read from the raw
    YAML when the schema failed (so a reference problem shows in the same round)."""

    channels: frozenset[str]
    teams: dict[str, list[tuple[int, str]]]  # team -> (index, channel) of each channel
    route_targets: list[tuple[Path_, str]]  # (where, name) of every route's and step's target
    rate_limits: list[str]
    failover: dict[str, str]

    @staticmethod
    def of(ch: ChannelsFile) -> _References:
        """The names of a validated file: read the same way as the raw YAML, from its data."""
        return _References.read(ch.model_dump(include=_NAMING_KEYS))

    @staticmethod
    def read(data: Any) -> _References:
        """The same from raw YAML data; whatever is not the expected shape is left out (the
        schema has said what is wrong with it)."""

        def mapping(value: Any) -> dict[Any, Any]:
            return value if isinstance(value, dict) else {}

        def names(value: Any) -> list[tuple[int, str]]:
            items = value if isinstance(value, list) else []
            return [(j, n) for j, n in enumerate(items) if isinstance(n, str)]

        data = mapping(data)
        targets: list[tuple[Path_, str]] = []
        routes = data.get("routes")
        for i, route in enumerate(routes if isinstance(routes, list) else []):
            route = mapping(route)
            targets += [(("routes", i, "notify", j), n) for j, n in names(route.get("notify"))]
            steps = route.get("escalate")
            for k, step in enumerate(steps if isinstance(steps, list) else []):
                targets += [
                    (("routes", i, "escalate", k, "notify", j), n)
                    for j, n in names(mapping(step).get("notify"))
                ]
        return _References(
            frozenset(n for n in mapping(data.get("channels")) if isinstance(n, str)),
            {
                name: names(mapping(team).get("channels"))
                for name, team in mapping(data.get("teams")).items()
                if isinstance(name, str)
            },
            targets,
            [n for n in mapping(data.get("rate_limits")) if isinstance(n, str)],
            {
                k: v
                for k, v in mapping(data.get("failover")).items()
                if isinstance(k, str) and isinstance(v, str)
            },
        )


class _Loader:
    def __init__(self, directory: Path, env: Mapping[str, str] | None) -> None:
        self.directory = directory
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.files: list[str] = []
        self.substituted: set[str] = set()  # values taken from the environment (maybe secrets)
        self.invalid: dict[Path, Document] = {}  # files that failed their schema, as read

    def _name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.directory))
        except ValueError:
            return str(path)

    def _parse(self, path: Path, model: type[M]) -> tuple[Document, M] | None:
        name = self._name(path)
        self.files.append(name)
        doc, problems = parse_file(path, name, self.env, self.substituted)
        self.problems.extend(problems)
        if doc is None:
            return None
        if doc.data is None:
            doc.data = {}
        if not isinstance(doc.data, dict):
            self.problems.append(doc.problem((), "top level must be a mapping"))
            return None
        try:
            return doc, model.model_validate(doc.data)
        except ValidationError as exc:
            self.invalid[path] = doc
            for err in exc.errors():
                names_key = err["type"] in ("extra_forbidden", "missing")
                path_, exists = _walk_loc(doc.data, tuple(err["loc"]), names_key)
                if err["type"] == "union_tag_invalid":
                    path_ = (*path_, "type")  # point at the bad `type:` value itself
                key = err["type"] == "extra_forbidden"
                if path_ in doc.reported:
                    continue  # already explained (e.g. an unset ${VAR} left it empty)
                self.problems.append(doc.problem(path_, _message(err), key=key, exists=exists))
            return None

    def _files(self, sub: str) -> Iterator[Path]:
        folder = self.directory / sub
        if folder.is_dir():
            yield from sorted(p for p in folder.glob("*.yaml") if p.is_file())

    def load(self) -> Config:
        if not self.directory.is_dir():
            raise ConfigError([ConfigProblem(str(self.directory), 0, 0, "", "not a directory")])
        rules: list[tuple[Document, int, RuleSource]] = []
        interval = DEFAULT_EVALUATION_INTERVAL
        flapping = Flapping()
        threshold_files = [self.directory / "thresholds.yaml", *self._files("rules")]
        for path in threshold_files:
            if not path.exists():
                self.problems.append(ConfigProblem(self._name(path), 0, 0, "", "file not found"))
                continue
            parsed = self._parse(path, ThresholdsFile)
            if parsed is None:
                continue
            doc, tf = parsed
            if tf.flapping is not None:
                if path.name != "thresholds.yaml" or path.parent != self.directory:
                    self.problems.append(
                        doc.problem(("flapping",), "only allowed in thresholds.yaml")
                    )
                else:
                    flapping = tf.flapping
            if tf.evaluation_interval is not None:
                if path.name != "thresholds.yaml" or path.parent != self.directory:
                    self.problems.append(
                        doc.problem(("evaluation_interval",), "only allowed in thresholds.yaml")
                    )
                else:
                    interval = tf.evaluation_interval
            for i, rule in enumerate(tf.rules):
                rules.append((doc, i, RuleSource(rule, doc.file)))
        hosts: list[HostTarget] = []
        host_docs: list[tuple[Document, int, HostTarget]] = []
        snmp: list[SnmpTarget] = []
        snmp_docs: list[tuple[Document, int, SnmpTarget]] = []
        traps: TrapsConfig | None = None
        traps_file = ""
        for path in self._files("collectors"):
            parsed_c = self._parse(path, CollectorsFile)
            if parsed_c is not None:
                doc, cf = parsed_c
                hosts.extend(cf.hosts)
                host_docs.extend((doc, i, h) for i, h in enumerate(cf.hosts))
                snmp.extend(cf.snmp)
                snmp_docs.extend((doc, i, t) for i, t in enumerate(cf.snmp))
                if cf.traps is not None:
                    if traps is not None:
                        self.problems.append(
                            doc.problem(("traps",), f"traps: is already configured in {traps_file}")
                        )
                    else:
                        traps, traps_file = cf.traps, doc.file
                        self._check_files(doc, ("traps",), _trap_files(cf.traps))
        profiles: dict[str, Profile] = {}
        for path in self._files("collectors/profiles"):
            parsed_p = self._parse(path, Profile)
            if parsed_p is not None:
                self._check_profile(*parsed_p)
                profiles[path.stem] = parsed_p[1]
        self._check_snmp(snmp_docs, profiles)
        channels: ChannelsFile | None = None
        channels_doc: Document | None = None
        channels_path = self.directory / "channels.yaml"
        if channels_path.exists():
            parsed_ch = self._parse(channels_path, ChannelsFile)
            if parsed_ch is not None:
                channels_doc, channels = parsed_ch
            elif (invalid := self.invalid.get(channels_path)) is not None:
                # its names are checked anyway, so one round of fixes finds every problem
                self._check_references(invalid, _References.read(invalid.data))
        else:  # nobody would ever be told of an incident (user test: renamed to .yml)
            self.problems.append(
                ConfigProblem(
                    self._name(channels_path),
                    0,
                    0,
                    "",
                    "file not found: it says who is told about incidents, and without it "
                    "nobody would be",
                )
            )
        server = ServerFile()
        server_path = self.directory / "server.yaml"
        if server_path.exists():
            parsed_s = self._parse(server_path, ServerFile)
            if parsed_s is not None:
                server_doc, server = parsed_s
                if self._check_file_settings(server_doc, (), server):
                    self._check_secrets(server_doc, (), server)
                server = _resolve_files(server, self.directory)
                if server.tls is not None:
                    self._check_file_settings(server_doc, ("tls",), server.tls)
                    tls = _resolve_files(server.tls, self.directory)
                    server = server.model_copy(update={"tls": tls})
        self._check_rules(rules)
        if channels is not None:
            if channels_doc is not None:
                self._check_channels(channels_doc, channels)
                if not server.public_url:
                    self._check_callbacks(channels_doc, channels)
            self._check_impacts(
                [(d, ("hosts", i), h.labels) for d, i, h in host_docs]
                + [(d, ("snmp", i), t.labels) for d, i, t in snmp_docs],
                channels,
            )
        if self.problems:
            raise ConfigError([self._scrub(p) for p in self.problems])
        assert channels is not None
        return Config(
            directory=self.directory,
            files=tuple(self.files),
            rules=tuple(src for _, _, src in rules),
            evaluation_interval=interval,
            flapping=flapping,
            hosts=tuple(hosts),
            snmp=tuple(_snmp_files_relative_to(t, self.directory) for t in snmp),
            profiles=profiles,
            traps=None if traps is None else _traps_files_relative_to(traps, self.directory),
            channels=_files_relative_to(channels, self.directory),
            server=server,
        )

    def _scrub(self, problem: ConfigProblem) -> ConfigProblem:
        """Remove values that came from the environment (they may be secrets) from a message."""
        message = problem.message
        for value in sorted(self.substituted, key=len, reverse=True):
            if len(value) >= 3:
                # as given, and as repr() escapes it inside quotes in some messages
                for form in {value, repr(value)[1:-1], repr(value + '"')[1:-2]}:
                    message = message.replace(form, "<redacted>")
        if message == problem.message:
            return problem
        return replace(problem, message=message)

    def _check_rules(self, rules: list[tuple[Document, int, RuleSource]]) -> None:
        seen: dict[str, tuple[str, int]] = {}
        for doc, i, src in rules:
            rule = src.rule
            base: Path_ = ("rules", i)
            name = rule.rule_name
            if name in seen:
                file, line = seen[name]
                self.problems.append(
                    doc.problem(
                        (*base, "name" if rule.name else "metric"),
                        f'duplicate rule name "{name}" (first at {file}:{line}); '
                        "give one of them a distinct name",
                    )
                )
            else:
                mark = doc.mark_for(base)
                seen[name] = (doc.file, mark.line if mark else 0)
            direction = "above" if rule.above is not None else "below"
            for where, levels in [((*base, direction), rule.above or rule.below)]:
                assert levels is not None
                if (why := check_order(levels, direction)) is not None:
                    self.problems.append(doc.problem(where, why))
            for j, ov in enumerate(rule.overrides):
                opath: Path_ = (*base, "overrides", j)
                wrong = "below" if direction == "above" else "above"
                if getattr(ov, wrong) is not None:
                    self.problems.append(
                        doc.problem(
                            (*opath, wrong),
                            f"rule uses {direction}; an override cannot use {wrong}",
                        )
                    )
                levels_ov = getattr(ov, direction)
                if levels_ov is not None and (why := check_order(levels_ov, direction)):
                    self.problems.append(doc.problem((*opath, direction), why))

    def _check_file_settings(self, doc: Document, where: Path_, model: BaseModel) -> bool:
        """Every ``*_file`` setting of ``model`` must name a file (relative to the config dir);
        return whether all do."""
        found = True
        for setting, path in _secret_files(model).items():
            if not (self.directory / path).is_file():
                found = False
                self.problems.append(
                    doc.problem((*where, setting), f"cannot read {path}: no such file")
                )
        return found

    def _check_secrets(self, doc: Document, where: Path_, model: BaseModel) -> None:
        """Read each secret file as the daemon will (user test: an empty token file, or a
        url_file holding no URL, passed check-config and then stopped ``alertd run``)."""
        for setting, read in _SECRET_READERS:
            if getattr(model, setting, None) is None or not hasattr(model, read):
                continue
            try:
                getattr(_resolve_files(model, self.directory), read)()
            except ConfigError as exc:
                for problem in exc.problems:
                    message = f"{getattr(model, setting)}: {problem.message}"
                    self.problems.append(doc.problem((*where, setting), message))

    def _check_references(self, doc: Document, refs: _References) -> None:
        """Every name channels.yaml uses must be a channel (or a team, where one may be)."""
        known_channels = sorted(refs.channels)
        targets = sorted({*refs.channels, *refs.teams})
        for team_name, channels in refs.teams.items():
            for j, channel in channels:
                if channel not in refs.channels:
                    self.problems.append(
                        doc.problem(
                            ("teams", team_name, "channels", j),
                            f'unknown channel "{channel}" ({_known(known_channels)})',
                        )
                    )
        for where, name in refs.route_targets:
            if name not in refs.channels and name not in refs.teams:
                self.problems.append(
                    doc.problem(where, f'unknown team or channel "{name}" ({_known(targets)})')
                )
        for name in refs.rate_limits:
            if name not in refs.channels:
                self.problems.append(
                    doc.problem(
                        ("rate_limits", name),
                        f'unknown channel "{name}" ({_known(known_channels)})',
                        key=True,
                    )
                )
        for source, target in refs.failover.items():
            for name, is_key in ((source, True), (target, False)):
                if name not in refs.channels:
                    self.problems.append(
                        doc.problem(
                            ("failover", source),
                            f'unknown channel "{name}" ({_known(known_channels)})',
                            key=is_key,
                        )
                    )
        for source in refs.failover:
            seen, at = [source], refs.failover.get(source)
            while at is not None and at not in seen:
                seen.append(at)
                at = refs.failover.get(at)
            if at is not None and at == source:
                self.problems.append(
                    doc.problem(
                        ("failover", source),
                        "failover loops back: " + " -> ".join([*seen, at]),
                    )
                )

    def _check_channels(self, doc: Document, ch: ChannelsFile) -> None:
        refs = _References.of(ch)
        self._check_references(doc, refs)
        for where, name in refs.route_targets:
            if name in ch.channels and (why := _nobody_to_send_to(ch.channels[name])):
                self.problems.append(doc.problem(where, why))
        send_timeout = ch.delivery.send_timeout
        for channel_name, channel_cfg in ch.channels.items():
            at: Path_ = ("channels", channel_name)
            if self._check_file_settings(doc, at, channel_cfg):
                self._check_secrets(doc, at, channel_cfg)
            timeout = getattr(channel_cfg, "timeout", None)
            if timeout is not None and timeout >= send_timeout:  # user test: taken silently
                self.problems.append(
                    doc.problem(
                        (*at, "timeout"),
                        f"{format_duration(timeout)} is not below delivery.send_timeout "
                        f"({format_duration(send_timeout)}), which cuts every attempt short "
                        "first: lower this, or raise send_timeout",
                    )
                )
        self._check_teams(doc, ch)
        self._check_routes(doc, ch)
        for i, window in enumerate(ch.maintenance):
            for key, values in window.match.items():
                if not values:  # as in a route: it would cover nothing
                    where = ("maintenance", i, "match", key)
                    self.problems.append(doc.problem(where, _EMPTY_LIST))
        matrix = ch.priorities.matrix
        for impact, row in matrix.items():
            missing = [lv for lv in ("critical", "major", "minor") if lv not in row]
            if missing:
                self.problems.append(
                    doc.problem(
                        ("priorities", "matrix", impact),
                        f"missing level(s): {', '.join(missing)}",
                    )
                )
        if ch.priorities.default_impact not in matrix:
            self.problems.append(
                doc.problem(
                    ("priorities", "default_impact"),
                    f'"{ch.priorities.default_impact}" is not a row of the matrix '
                    f"(rows: {', '.join(matrix)})",
                )
            )

    def _check_callbacks(self, doc: Document, ch: ChannelsFile) -> None:
        """Twilio signs its status callbacks for the URL it calls, and alertd checks them
        against server.yaml's ``public_url``: without one, every callback is refused (403)
        (user test: taken silently)."""
        for name, channel in ch.channels.items():
            if getattr(channel, "status_callback_url", None):
                self.problems.append(
                    doc.problem(
                        ("channels", name, "status_callback_url"),
                        "needs server.yaml's public_url: alertd checks Twilio's signature "
                        "against it, and without it refuses every callback",
                    )
                )

    def _check_teams(self, doc: Document, ch: ChannelsFile) -> None:
        """A team's channel that needs a member's address none of them has reaches nobody:
        every page to it would fail at run time (user test)."""
        for team_name, team in ch.teams.items():
            for j, channel_name in enumerate(team.channels):
                channel = ch.channels.get(channel_name)
                if channel is not None and (why := _team_unreachable(team, channel)):
                    self.problems.append(doc.problem(("teams", team_name, "channels", j), why))

    def _check_routes(self, doc: Document, ch: ChannelsFile) -> None:
        """Matchers on priority and level take only the values alertd gives them, and a
        typo of those names is not a label (user test: ``priorty: [P1]`` sent every P1 to
        the log alone); and something must tell someone about an incident."""
        if not ch.routes and not any(c.type == "log" for c in ch.channels.values()):
            self.problems.append(
                doc.problem(
                    (),
                    "nothing here tells anyone about an incident: no routes, and no log "
                    "channel for the incidents no route matches",
                )
            )
        for i, route in enumerate(ch.routes):
            later = next(
                (j for j in range(i + 1, len(ch.routes)) if _always_with(ch.routes[j], route)),
                None,
            )
            if route.continue_ and len(route.escalate) > 1 and later is not None:
                self.problems.append(
                    doc.problem(
                        ("routes", i, "escalate"),
                        f"its later steps never run: routes[{later}] matches every incident "
                        "this route does, and only the last route an incident matches "
                        "escalates it (move the steps there, or leave out `continue` here)",
                    )
                )
            for key, values in route.match.items():
                where: Path_ = ("routes", i, "match", key)
                if (why := _matcher_problem(key, values)) is not None:
                    misnamed = bool(values) and key not in _ROUTE_FIELDS  # point at the key
                    self.problems.append(doc.problem(where, why, key=misnamed))

    def _check_impacts(
        self, targets: Sequence[tuple[Document, Path_, Mapping[str, str]]], ch: ChannelsFile
    ) -> None:
        rows = ch.priorities.matrix
        for doc, where, labels in targets:
            value = labels.get("criticality")
            if value is not None and value not in rows:
                self.problems.append(
                    doc.problem(
                        (*where, "labels", "criticality"),
                        f'"{value}" is not a row of the priority matrix (rows: {", ".join(rows)})',
                    )
                )

    def _check_snmp(
        self, targets: list[tuple[Document, int, SnmpTarget]], profiles: Mapping[str, Profile]
    ) -> None:
        for doc, i, target in targets:
            for j, name in enumerate(target.profiles):
                if name not in profiles:
                    self.problems.append(
                        doc.problem(
                            ("snmp", i, "profiles", j),
                            f'unknown profile "{name}" ({_known(sorted(profiles))} '
                            "in collectors/profiles/)",
                        )
                    )
            files: list[tuple[Path_, str | None]] = [(("community_file",), target.community_file)]
            if target.v3 is not None:
                files += [(("v3", "auth_key_file"), target.v3.auth_key_file)]
                files += [(("v3", "priv_key_file"), target.v3.priv_key_file)]
            self._check_files(doc, ("snmp", i), files)

    def _check_files(
        self, doc: Document, base: Path_, files: Sequence[tuple[Path_, str | None]]
    ) -> None:
        """Report every secret file that isn't there (relative ones: under the config dir)."""
        for where, file in files:
            if file and not (self.directory / file).is_file():
                self.problems.append(
                    doc.problem((*base, *where), f"cannot read {file}: no such file")
                )

    def _check_profile(self, doc: Document, profile: Profile) -> None:
        scalar_names = {m.metric for m in profile.scalars}
        groups: list[tuple[Path_, set[str], list[Derived]]] = [((), scalar_names, profile.derived)]
        for t, table in enumerate(profile.tables):
            names = {m.metric for m in table.metrics}
            groups.append((("tables", t), names, table.derived))
        for where, names, derived in groups:
            for d, item in enumerate(derived):
                for name in item.inputs():
                    if name not in names:
                        self.problems.append(
                            doc.problem(
                                (*where, "derived", d),
                                f'"{name}" is not a metric of this '
                                f"{'table' if where else 'profile'} ({_known(sorted(names))})",
                            )
                        )


def _address_needed(channel: BaseModel, members: Sequence[Member]) -> str:
    """The member address ``channel`` sends to ("phone", "email") that none of ``members``
    has; "" if one has it, or the channel needs none (its own destination, an email `to`)."""
    kind = getattr(channel, "type", "")
    field = MEMBER_ADDRESS.get(kind, "")
    if field not in ("phone", "email") or (kind == "email" and getattr(channel, "to", None)):
        return ""
    return "" if any(getattr(m, field) for m in members) else field


def _nobody_to_send_to(channel: BaseModel) -> str:
    """Why a route naming ``channel`` itself, with no team, would reach nobody ("" if it
    would not): every page to it would fail (user test)."""
    need = _address_needed(channel, ())
    if need == "phone":
        return (
            "an SMS channel sends to team members' phones: named here it reaches nobody "
            "(name a team whose channels include it)"
        )
    if need == "email":
        return (
            "this email channel has no `to`: named here it reaches nobody (set its `to`, "
            "or name a team whose channels include it)"
        )
    return ""


# what a route matches besides the labels, and the values alertd gives them
_ROUTE_FIELDS: dict[str, tuple[str, ...]] = {
    "priority": ("P1", "P2", "P3", "P4"),
    "level": ("critical", "major", "minor"),
    "rule": (),
}


# a secret file setting, and the method that reads it as the daemon does (raises ConfigError)
_SECRET_READERS = (
    ("url_file", "resolve_url"),
    ("secret_file", "resolve_secret"),
    ("auth_token_file", "resolve_auth_token"),
    ("password_file", "resolve_password"),
    ("link_secret_file", "read_link_secret"),
)


def _always_with(later: Route, route: Route) -> bool:
    """Whether ``later`` matches every incident ``route`` matches: each of its matchers is
    one of ``route``'s, allowing at least the values ``route`` allows."""
    return all(
        (key in route.match and set(route.match[key]) <= set(values))
        or (bool(_ROUTE_FIELDS.get(key)) and set(_ROUTE_FIELDS[key]) <= set(values))
        for key, values in later.match.items()
    )


_EMPTY_LIST = "an empty list matches nothing: list the values to match, or leave the key out"


def _matcher_problem(key: str, values: Sequence[str]) -> str | None:
    """Why a route's matcher ``key: values`` can never match as meant (None if it can)."""
    if not values:
        return _EMPTY_LIST
    allowed = _ROUTE_FIELDS.get(key)
    if allowed is None:
        close = difflib.get_close_matches(key, _ROUTE_FIELDS, n=1, cutoff=0.8)
        if close:
            return (
                f'"{key}" is not {close[0]}: a route matches the labels, plus priority, '
                f"level and rule (did you mean {close[0]}?)"
            )
        return None
    wrong = [v for v in values if allowed and v not in allowed]
    if wrong:
        return f"{key} is one of {', '.join(allowed)}, not {', '.join(map(repr, wrong))}"
    return None


def _team_unreachable(team: Team, channel: BaseModel) -> str:
    """Why ``team``'s pages on ``channel`` would reach nobody ("" if they would not)."""
    need = _address_needed(channel, team.members)
    if not need:
        return ""
    what = "an SMS channel" if need == "phone" else "an email channel with no `to`"
    address = "a phone" if need == "phone" else "an email"
    return f"{what}, and no member of this team has {address}: its pages would reach nobody"


def _known(names: list[str]) -> str:
    return f"known: {', '.join(names)}" if names else "none are defined"


def _files_relative_to(channels: ChannelsFile, directory: Path) -> ChannelsFile:
    """Resolve relative ``*_file`` paths against the config directory, as check-config does."""
    fixed = {name: _resolve_files(ch, directory) for name, ch in channels.channels.items()}
    return channels.model_copy(update={"channels": fixed})


def _secret_files(model: BaseModel) -> dict[str, Path]:
    """Return a model's file settings (every field named ``*_file``) that are set."""
    return {
        name: Path(value)
        for name in type(model).model_fields
        if name.endswith("_file") and (value := getattr(model, name)) is not None
    }


def _resolve_files(model: M, directory: Path) -> M:
    """Return ``model`` with its relative ``*_file`` paths made relative to ``directory``."""
    update = {
        name: directory / path
        for name, path in _secret_files(model).items()
        if not path.is_absolute()
    }
    return model.model_copy(update=update) if update else model


def _snmp_files_relative_to(target: SnmpTarget, directory: Path) -> SnmpTarget:
    """Resolve relative secret files (community, v3 keys) against the config directory."""
    if target.community_file and not Path(target.community_file).is_absolute():
        target = target.model_copy(
            update={"community_file": str(directory / target.community_file)}
        )
    v3 = target.v3
    if v3 is not None:
        update = {
            name: str(directory / path)
            for name in ("auth_key_file", "priv_key_file")
            if (path := getattr(v3, name)) and not Path(path).is_absolute()
        }
        if update:
            target = target.model_copy(update={"v3": v3.model_copy(update=update)})
    return target


def _trap_files(traps: TrapsConfig) -> list[tuple[Path_, str | None]]:
    files: list[tuple[Path_, str | None]] = [
        (("community_files", i), f) for i, f in enumerate(traps.community_files)
    ]
    for i, user in enumerate(traps.v3_users):
        files += [(("v3_users", i, "auth_key_file"), user.auth_key_file)]
        files += [(("v3_users", i, "priv_key_file"), user.priv_key_file)]
    return files


def _traps_files_relative_to(traps: TrapsConfig, directory: Path) -> TrapsConfig:
    """Resolve the trap receiver's secret files against the config directory."""

    def absolute(path: str | None) -> str | None:
        return path if path is None or Path(path).is_absolute() else str(directory / path)

    users = [
        u.model_copy(
            update={
                "auth_key_file": absolute(u.auth_key_file),
                "priv_key_file": absolute(u.priv_key_file),
            }
        )
        for u in traps.v3_users
    ]
    files = [absolute(f) or f for f in traps.community_files]
    return traps.model_copy(update={"v3_users": users, "community_files": files})
