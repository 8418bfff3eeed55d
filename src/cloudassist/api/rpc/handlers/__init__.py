"""Thin handlers: declared parameters in, a service call, the response shape out."""
