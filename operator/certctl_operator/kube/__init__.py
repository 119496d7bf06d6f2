"""The only code that talks to the API server besides Kopf itself."""
