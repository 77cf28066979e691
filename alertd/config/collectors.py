"""Schema of ``collectors/*.yaml``: what to poll and the labels each target carries."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from alertd.config.types import Duration, StrictModel


class HostTarget(StrictModel):
    """The local host, measured with psutil."""

    instance: str | None = Field(default=None, min_length=1)  # default: this host's name
    interval: Duration = Field(default=15.0, gt=0)
    labels: dict[str, str] = {}
    processes: list[str] = []
    exclude_fstypes: list[str] = []
    exclude_mountpoints: list[str] = []


class SnmpV3User(StrictModel):
    """SNMPv3 USM credentials; authPriv with SHA-2 and AES unless said otherwise."""

    user: str = Field(min_length=1)
    security_level: Literal["authPriv", "authNoPriv", "noAuthNoPriv"] = "authPriv"
    auth_protocol: Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] = "SHA256"
    auth_key: SecretStr | None = None
    auth_key_file: str | None = None
    priv_protocol: Literal["DES", "AES", "AES192", "AES256"] = "AES"
    priv_key: SecretStr | None = None
    priv_key_file: str | None = None
    context: str = ""

    @model_validator(mode="after")
    def _keys_for_level(self) -> Self:
        for kind in ("auth", "priv"):
            inline, file = getattr(self, f"{kind}_key"), getattr(self, f"{kind}_key_file")
            if inline is not None and file is not None:
                raise ValueError(f"{kind}_key and {kind}_key_file are exclusive; set one")
        needs_auth = self.security_level != "noAuthNoPriv"
        needs_priv = self.security_level == "authPriv"
        if needs_auth and self.auth_key is None and self.auth_key_file is None:
            raise ValueError(f"{self.security_level} needs auth_key or auth_key_file")
        if needs_priv and self.priv_key is None and self.priv_key_file is None:
            raise ValueError("authPriv needs priv_key or priv_key_file")
        return self


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
