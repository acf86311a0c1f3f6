//! A real OpenBao dev server on a free loopback port.
