"""What the window does differently for a plain OCI registry (the "oci" kind,
:mod:`app.ui.backends.oci`): the capability banner and status, repository names
added by hand, table rows completed as details arrive, deleting the way the
registry allows (:mod:`.controller`). Its storage tab is the storage package's."""
