"""Schema of ``collectors/*.yaml``: what to poll and the labels each target carries."""

from __future__ import annotations

from pydantic import Field

from alertd.config.types import Duration, StrictModel


class HostTarget(StrictModel):
    """The local host, measured with psutil."""

    instance: str | None = Field(default=None, min_length=1)  # default: this host's name
    interval: Duration = Field(default=15.0, gt=0)
    labels: dict[str, str] = {}
    processes: list[str] = []
    exclude_fstypes: list[str] = []
    exclude_mountpoints: list[str] = []


class CollectorsFile(StrictModel):
    hosts: list[HostTarget] = []
