"""Recently deleted: the trash of the selected workspace, project or repository
(model: the entries as rows; view: filter, Restore with a result per entry, and
*Empty trash…* for admins behind a confirmation that says what GC will then free).
Talks to a Berth registry only; a plain OCI registry keeps no trash."""
