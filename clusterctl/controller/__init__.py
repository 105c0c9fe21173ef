"""The controller process: HTTP API, scheduler loop and the files it keeps (logs, packages)."""
