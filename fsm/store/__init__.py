"""Storage: the store protocols, the SQL store, its tables, schema migrations and leases."""
