"""Use cases: one method per API operation, over the Store and the pure domain."""
