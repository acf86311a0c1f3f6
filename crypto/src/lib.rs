//! sealsync-crypto
