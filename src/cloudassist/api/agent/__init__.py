"""The agent face: the Cloud Assistant agent protocol ("luban") over HTTPS and a websocket."""
