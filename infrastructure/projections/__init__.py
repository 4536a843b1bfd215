"""Adapters the projection runtime needs besides its sinks: the dead-letter store."""
