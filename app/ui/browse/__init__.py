"""Browsing a registry: the navigator (workspaces → projects → repositories, or a
plain registry's namespaces), the images and tags tables, the details pane, the
bulk delete panel, and :class:`~.controller.BrowseController`: what a selection
lists, the actions' state, copying, deleting, and following deletes made
elsewhere (:mod:`.updates`)."""
