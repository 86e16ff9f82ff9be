"""What every feature uses: the paged table model and its panel, the one async
operation helper (busy state, failures in one place), the actions shared by
toolbar, menus and context menus, dialog helpers and the exception dialog, the
error bar, formatting, settings, the delete confirmation, and :class:`Window`
(:mod:`.window`), the window's services a feature is handed. Imports no feature."""
