"""The Cleanup policies view: a workspace's or repository's rules, edited with the
registry's live preview of them beside the editor.

What lives here:

* :mod:`.view` — :class:`~.view.PoliciesView`, the tab: rules on the left, the
  preview (every tag with Go/Stay and the deciding rule, counts per image, the
  storage chart) on the right, the history of runs below the rules.
* :mod:`.rules_editor` — the rule rows, checked as the registry checks them
  (:func:`app.core.cleanup.Rule.make`), with the schedule.
* :mod:`.models` — the table columns of preview tags, preview images and runs.
* :mod:`.chart` — storage now vs after the run and GC (QtCharts).
* :mod:`.confirm` — the *Run now…* and *Remove policy…* confirmations (seams).
* :mod:`.tab` — :class:`~.tab.PoliciesTab`: the view added to the window (through
  ``app.ui.common.window.Window``); the window connects its ``connected`` and
  ``scopeChanged`` to it. Nothing here imports the main window or another feature.

Every figure the view states (tags that go, bytes GC frees) comes from the
server's preview or the server's delete impact, never from counting rows here.
"""

from app.ui.policies.tab import PoliciesTab

__all__ = ["PoliciesTab"]
