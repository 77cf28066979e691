"""The generic webhook channel: an Alertmanager-style JSON payload, optionally HMAC-signed."""
