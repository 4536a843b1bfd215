"""Tenant provisioning: an operator creates tenants; accounts register only into those."""
