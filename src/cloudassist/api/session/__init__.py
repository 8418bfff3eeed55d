"""Session Manager: the relay between the client websocket and the agent data websocket."""
