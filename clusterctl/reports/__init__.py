"""Report arithmetic: pure functions from allocations, usage records, the inventory and the
site's prices to rows and series. The controller loads the inputs; the CLI draws the plots."""
