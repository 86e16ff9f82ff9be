"""Cleanup policies in the registry: where they apply, the one planner behind
previews and runs, and the executor (``plans``); runs on a schedule or started
through the API inside ``serve`` (``worker``); and ``berth-registry policy`` on the
command line (``cli``)."""
