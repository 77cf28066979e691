"""Schema of ``collectors/profiles/*.yaml``: what to read from a kind of SNMP device.

A profile is data, not code: scalars fetched with GET, tables walked with GETBULK, each
column or scalar mapped to a metric name. ``counter`` columns become per-second rates;
``derived`` metrics combine others (interface utilisation, percent used).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from alertd.config.types import StrictModel

_OID = re.compile(r"^\.?[0-2](\.\d+)+$")
_METRIC = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


def _check_oid(text: str) -> str:
    if not _OID.match(text):
        raise ValueError("expected a numeric OID such as 1.3.6.1.2.1.1.3.0")
    return text.lstrip(".")


OidText = Annotated[str, AfterValidator(_check_oid)]


class ScalarMetric(StrictModel):
    metric: str = Field(pattern=_METRIC)
    oid: OidText
    kind: Literal["gauge", "counter", "info"] = "gauge"  # info: 1, with the text as a label
    scale: float = 1.0
    label: str | None = None  # for ``info``: the label carrying the value

    @model_validator(mode="after")
    def _info_needs_label(self) -> Self:
        if (self.kind == "info") != (self.label is not None):
            raise ValueError("`label` is set exactly when kind is info")
        return self


class ColumnMetric(StrictModel):
    metric: str = Field(pattern=_METRIC)
    oid: OidText  # the column, without the row index
    fallback_oid: OidText | None = None  # read when ``oid`` is absent (32-bit counters)
    kind: Literal["gauge", "counter"] = "gauge"
    scale: float = 1.0


class Derived(StrictModel):
    """A metric computed from others of the same row (or of the scalars).

    ``utilization``: ``rate`` (bytes/s) * 8 / (``speed_mbps`` * 1e6) * 100.
    ``percent``: 100 * ``part`` / ``total`` (``part`` may be ``total - free`` via ``free``).
    ``link_down``: 1 when ``admin`` is up (1) and ``oper`` is down (2) or lowerLayerDown (7).
    """

    metric: str = Field(pattern=_METRIC)
    kind: Literal["utilization", "percent", "link_down"]
    rate: str | None = None
    speed_mbps: str | None = None
    part: str | None = None
    free: str | None = None
    total: str | None = None
    admin: str | None = None
    oper: str | None = None

    @model_validator(mode="after")
    def _inputs(self) -> Self:
        if self.kind == "utilization" and not (self.rate and self.speed_mbps):
            raise ValueError("utilization needs rate and speed_mbps")
        if self.kind == "percent" and not (self.total and bool(self.part) != bool(self.free)):
            raise ValueError("percent needs total and exactly one of part or free")
        if self.kind == "link_down" and not (self.admin and self.oper):
            raise ValueError("link_down needs admin and oper")
        return self

    def inputs(self) -> list[str]:
        names = [self.rate, self.speed_mbps, self.part, self.free, self.total, self.admin]
        names.append(self.oper)
        return [n for n in names if n]


class Table(StrictModel):
    name: str = Field(min_length=1)
    index_label: str = Field(min_length=1)
    labels: dict[str, OidText] = {}  # label name -> column giving its value
    metrics: list[ColumnMetric] = Field(min_length=1)
    derived: list[Derived] = []


class Profile(StrictModel):
    description: str = ""
    scalars: list[ScalarMetric] = []
    tables: list[Table] = []
    derived: list[Derived] = []  # over scalars
