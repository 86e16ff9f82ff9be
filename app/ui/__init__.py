"""The desktop app (everything Qt), one package per feature.

``main`` starts it, ``main_window`` builds the window and wires the features,
which meet there and nowhere else (import-linter contracts in pyproject.toml):

* ``browse``: navigator tree, images and tags tables, details, deleting;
* ``storage``: the Storage tab (Berth's figures, charts, shared layers, GC; a plain
  OCI registry's scanned storage) and the toolbar's pending-GC button;
* ``oci``: what a plain OCI registry adds (capability banner, names added by hand,
  rows completed as details arrive, deleting the way the registry allows);
* ``connections``: profiles dialog, login, secrets, the embedded registry's status;
* ``common``: what every feature uses (tables, operations, actions, dialogs, the
  error bar, formatting, settings, the delete confirmation, the window's services);
* ``backends``: the Backend protocol and its two kinds, no Qt.

A new feature (``policies``, ``trash``) is a package of its own beside these, added
to the features' line of the layers contract.
"""
