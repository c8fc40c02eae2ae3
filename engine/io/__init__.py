"""Reading the world: Haxby-layout subject directories and BIDS datasets.

:mod:`nidecode.io.haxby` reads labels, BOLD blocks and masks;
:mod:`nidecode.io.bids` reads runs, sidecars, events and confounds.
"""

#: The label of scans between blocks, left out of the default category pairs.
REST = "rest"
