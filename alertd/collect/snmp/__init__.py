"""SNMP collection: the fast v1/v2c polling path (``ber``) and the pysnmp-backed rest."""
