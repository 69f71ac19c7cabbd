"""HTTP API (FastAPI), live events (Socket.IO + WebSocket) and the web UI's backend."""
