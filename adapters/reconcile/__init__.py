"""Reconciliation: the provider-call journal, status checks, repair and deadlines."""
