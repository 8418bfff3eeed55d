"""The ECS RPC wire protocol: parameters in, signatures checked, JSON or XML out."""
