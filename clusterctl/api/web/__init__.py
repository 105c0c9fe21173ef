"""The dashboard: pages the controller serves on its API port, signed in with a user's token.

Server-rendered (Jinja2) from the same route functions the API answers with, so a page shows
the figures and hides what the API hides; a little script swaps in fresh fragments the server
pushes (server-sent events). Nothing is loaded from anywhere but the controller."""
