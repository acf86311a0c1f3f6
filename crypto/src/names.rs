//! Kubernetes name rules that a binding (namespace and name) must follow. They also decide
//! what is safe to print: text that is a valid name cannot be a pasted secret value of any
//! length, and is never more than 253 bytes.

/// A lowercase RFC 1123 subdomain of at most 253 bytes, as the API server requires for the
/// names of most objects (a Secret's included).
pub fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

/// A lowercase RFC 1123 label of at most 63 bytes: what a namespace name must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A qualified name as label and annotation keys use (`prefix/name`), and as a Secret's `type`
/// is spelled: safe to print.
pub fn is_qualified_name(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rfc_1123() {
        assert!(is_object_name("db.prod-1"));
        assert!(!is_object_name("-db"));
        assert!(!is_object_name("db."));
        assert!(!is_object_name("DB"));
        assert!(!is_object_name(&"a".repeat(254)));
        assert!(is_dns_label("team-a"));
        assert!(!is_dns_label("team.a"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }
}
