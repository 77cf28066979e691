"""Schema of ``collectors/*.yaml``: what to poll, the labels each target carries, and where
traps are received."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from alertd.config.snmp_v3 import SnmpV3User
from alertd.config.traps import TrapsConfig
from alertd.config.types import Duration, StrictModel


class HostTarget(StrictModel):
    """The local host, measured with psutil."""

    instance: str | None = Field(default=None, min_length=1)  # default: this host's name
    interval: Duration = Field(default=15.0, gt=0)
    labels: dict[str, str] = {}
    processes: list[str] = []
    exclude_fstypes: list[str] = []
    exclude_mountpoints: list[str] = []


class SnmpTarget(StrictModel):
    """A network device polled over SNMP."""

    address: str = Field(min_length=1)
    port: int = Field(default=161, ge=1, le=65535)
    instance: str | None = Field(default=None, min_length=1)  # default: the address
    version: Literal["v1", "v2c", "v3"] = "v2c"
    community: SecretStr | None = None
    community_file: str | None = None
    v3: SnmpV3User | None = None
    timeout: Duration = Field(default=2.0, gt=0)
    retries: int = Field(default=1, ge=0, le=10)
    interval: Duration = Field(default=60.0, gt=0)
    max_repetitions: int = Field(default=25, ge=1, le=200)
    unreachable_after: int = Field(default=3, ge=1)  # failed polls in a row before "down"
    labels: dict[str, str] = {}
    profiles: list[str] = Field(default=["system", "if-mib"], min_length=1)

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.version == "v3":
            if self.v3 is None:
                raise ValueError("version v3 needs a v3: {user: ..., auth_key: ..., ...} section")
            if self.community is not None or self.community_file is not None:
                raise ValueError("v3 uses the v3 section, not a community")
            return self
        if self.v3 is not None:
            raise ValueError(f"a v3 section needs version: v3 (this target is {self.version})")
        if self.community is not None and self.community_file is not None:
            raise ValueError("community and community_file are exclusive; set one")
        if self.community is None and self.community_file is None:
            raise ValueError("set community (e.g. ${SNMP_COMMUNITY}) or community_file")
        return self


class CollectorsFile(StrictModel):
    hosts: list[HostTarget] = []
    snmp: list[SnmpTarget] = []
    traps: TrapsConfig | None = None  # at most one file may say it
