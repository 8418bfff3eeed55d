"""The server's faces: the ECS RPC API (`rpc/`) and the application that mounts it (`app.py`)."""
