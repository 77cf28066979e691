"""SNMPv3 (USM) polling through pysnmp: being written; see the SNMP issue."""

from __future__ import annotations

from alertd.collect.snmp.collector import Connector
from alertd.collect.snmp.walk import Accessor
from alertd.config.collectors import SnmpTarget
from alertd.errors import CollectError


def v3_connector(target: SnmpTarget) -> Connector:
    """Return how to reach a v3 ``target``."""

    async def connect() -> Accessor:
        raise CollectError(f"snmp {target.address}: SNMPv3 polling is not available yet")

    return connect
