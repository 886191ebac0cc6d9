"""The background service: watches folders, keeps the model and index warm, answers queries
on a Unix socket. `client` is standard-library only, so plugins can carry a copy of it."""
