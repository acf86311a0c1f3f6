//! Child processes stopped even on panic, and free loopback ports.
