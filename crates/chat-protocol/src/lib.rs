//! Wire types of the chatbox WebSocket protocol (PROTOCOL §3): the `Message` frame,
//! its error payload and codes, and the sanitize/validate pipeline every inbound frame
//! passes through. It owns no I/O and knows nothing about sessions or transport.

mod sender;

pub use sender::Sender;
