"""The Storage tab (:mod:`.tabs`): a Berth workspace's figures, charts, shared
layers and GC panel (:mod:`.view`), kept current by the workspace's event stream;
for a plain OCI registry, the view of its scanned storage (:mod:`.oci_view`); and
the toolbar's pending-GC button (:mod:`.indicator`)."""
