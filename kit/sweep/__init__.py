"""`kit sweep`: many `kit train` runs at once as Ray tasks, on one machine or a cluster."""
