"""The SMS channel (Twilio Programmable Messaging) and its inbound webhooks.

``config.py`` is the channel's config model, ``segments.py`` fits a text to a number of SMS
segments, ``twilio_api.py`` is the only module that imports the twilio library,
``notifier.py`` sends one SMS per notification and classifies failures, and ``hooks.py`` holds
the status-callback and reply-to-acknowledge webhooks the daemon mounts.
"""
