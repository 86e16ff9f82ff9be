"""The flow tests' ``launch``: the app started on a real registry, driven by input events."""

from tests.ui.flows.conftest import launch  # noqa: F401 (a fixture, found by name)
