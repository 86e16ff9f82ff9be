"""Online garbage collection and the accounting it relies on (DESIGN.md §1, race
safety; §2, cost rule).

Bottom to top (an import-linter contract keeps the order): ``usage`` (the reference
graph kept incrementally, in the same transaction as every tag change), ``reviews``
(queueing reviews in the event's own transaction) and ``storage`` (the figures read
from that graph); ``review`` (what a review of queued manifests and blobs decides)
and ``samples`` (storage figures over time); ``collector`` (review passes, a deleted
blob's object removed only after its commit, the record of runs) and ``fsck`` (the
check that recomputes the graph, and the sweep of leaked objects); ``worker`` (the
serve process's task that runs passes when reviews fall due). The bookkeeping at the
bottom never imports what it accounts for (content, service, the APIs).
"""
