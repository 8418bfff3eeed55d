"""Persistence behind one interface (`store.store.Store`), on SQLite or PostgreSQL."""
