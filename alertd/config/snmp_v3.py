"""SNMPv3 USM credentials, shared by polled targets and the trap receiver."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from alertd.config.types import StrictModel


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
