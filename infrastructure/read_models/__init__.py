"""Read-model sinks: the stores the projection runtime writes its targets to."""
