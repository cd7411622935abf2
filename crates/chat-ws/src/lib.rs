//! The axum WebSocket endpoint: handshake (auth, origin check, connection slot),
//! bounded read/write pumps, heartbeat, and draining every socket on shutdown.
