//! Keyed GCRA rate limiters (user messages, admin and public endpoints) with bounded
//! memory, and the per-user WebSocket connection limiter whose slots are RAII guards.
