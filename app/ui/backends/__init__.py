"""What the window talks to, whatever the registry: the :class:`Backend` protocol
(:mod:`.protocol`, with the kinds registered by name), its two kinds (:mod:`.berth`:
Berth's management API; :mod:`.oci`: any OCI registry through the Distribution API,
with its name tree and step-wise delete plans), and deleting in chunks
(:mod:`.deletion`). No Qt here (a contract keeps it so), and no UI package below."""
