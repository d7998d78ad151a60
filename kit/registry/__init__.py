"""The artifact registry: run folders, and an index rebuilt from them."""
