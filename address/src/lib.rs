//! Address normalisation for quench: the one set of rules the host (entity keys, connector
//! ids, SASL names) and the default policy (scoping, internal/external recipients) share, so
//! that one mailbox is one entity however a client spells it.
//!
//! Addresses come from the network and are untrusted: every function gives a defined answer
//! for any string and never panics. Nothing is rejected here; malformed addresses simply have
//! no domain.

#![forbid(unsafe_code)]

/// Normalise an address for comparison and for entity keys:
/// - trim white space;
/// - take the part inside angle brackets when the text ends with `>` (`Alice <alice@contoso.com>`
///   and `<alice@contoso.com>` both give `alice@contoso.com`);
/// - trim again and drop one trailing dot (`alice@contoso.com.` is the same mailbox: DNS names
///   are absolute either way);
/// - lower-case (Unicode). Lower-casing the local part follows Exchange, whose mailbox names are
///   case-insensitive: a site with case-sensitive local parts would otherwise let a sender dodge
///   its limits by changing case, which is the worse failure.
pub fn normalize(raw: &str) -> String {
    let mut s = raw.trim();
    if let (Some(open), true) = (s.rfind('<'), s.ends_with('>')) {
        s = &s[open + 1..s.len() - 1];
    }
    let s = s.trim();
    let s = s.strip_suffix('.').unwrap_or(s);
    s.to_lowercase()
}

/// The domain of a normalised address: the text after the last `@`, when both sides are
/// non-empty. `None` for malformed addresses (no `@`, nothing before or after it).
pub fn domain(normalized: &str) -> Option<&str> {
    let at = normalized.rfind('@')?;
    let (local, domain) = (&normalized[..at], &normalized[at + 1..]);
    (!local.is_empty() && !domain.is_empty()).then_some(domain)
}

/// Normalise a domain name from configuration: trim, lower-case, drop a trailing dot.
pub fn normalize_domain(raw: &str) -> String {
    let s = raw.trim();
    s.strip_suffix('.').unwrap_or(s).to_lowercase()
}

/// Whether a normalised address looks like `local@domain` with no white space or controls.
pub fn is_plausible(normalized: &str) -> bool {
    domain(normalized).is_some()
        && !normalized
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

/// Whether a normalised address carries routing syntax that can send the message somewhere
/// other than its visible domain: a `%` hack (`x%evil.example@contoso.com`), a UUCP bang path
/// (`evil.example!x@contoso.com`), or an RFC 5321 source route (`@a,@b:x@c`). An MTA that
/// honours any of these relays onwards, so such a recipient is never counted as internal,
/// whatever domain follows the last `@`. A quoted local part is judged the same way: `"x%y"`
/// still contains `%`, the stricter reading.
pub fn has_routing_syntax(normalized: &str) -> bool {
    let local = match normalized.rfind('@') {
        Some(at) => &normalized[..at],
        None => normalized,
    };
    normalized.starts_with('@') || local.contains(['%', '!', ':', '@'])
}

/// Normalise a SASL login name into a mailbox: [`normalize`], then, when the name has no `@`
/// and `default_domain` is given, append `@default_domain`. This makes `alice` and
/// `alice@contoso.com` one entity at sites whose users log in without a domain.
pub fn login(raw: &str, default_domain: Option<&str>) -> String {
    let name = normalize(raw);
    match default_domain {
        Some(domain) if !name.is_empty() && !name.contains('@') => {
            format!("{name}@{}", normalize_domain(domain))
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        for (raw, norm, dom) in [
            (
                "alice@contoso.com",
                "alice@contoso.com",
                Some("contoso.com"),
            ),
            (
                "  Alice@Contoso.COM ",
                "alice@contoso.com",
                Some("contoso.com"),
            ),
            (
                "<ALICE@CONTOSO.COM>",
                "alice@contoso.com",
                Some("contoso.com"),
            ),
            (
                "< alice@contoso.com >",
                "alice@contoso.com",
                Some("contoso.com"),
            ),
            (
                "Alice <alice@contoso.com>",
                "alice@contoso.com",
                Some("contoso.com"),
            ),
            (
                "alice@contoso.com.",
                "alice@contoso.com",
                Some("contoso.com"),
            ),
            (
                "<alice@contoso.com.>",
                "alice@contoso.com",
                Some("contoso.com"),
            ),
            (
                "@a,@b:bob@fabrikam.com",
                "@a,@b:bob@fabrikam.com",
                Some("fabrikam.com"),
            ),
            ("no-at-sign", "no-at-sign", None),
            ("trailing@", "trailing@", None),
            ("@leading", "@leading", None),
            ("", "", None),
            ("<>", "", None),
            ("<unclosed", "<unclosed", None),
            ("ÄLICE@BÜCHER.DE", "älice@bücher.de", Some("bücher.de")),
        ] {
            let n = normalize(raw);
            assert_eq!(n, norm, "{raw:?}");
            assert_eq!(domain(&n), dom, "{raw:?}");
        }
    }

    #[test]
    fn routing_syntax_is_recognised() {
        for routed in [
            "x%evil.example@contoso.com",
            "evil.example!x@contoso.com",
            "@a,@b:x@contoso.com",
            "@relay.example:x@contoso.com",
            "\"x@evil\"@contoso.com",
        ] {
            assert!(has_routing_syntax(&normalize(routed)), "{routed}");
        }
        for plain in ["x@contoso.com", "first.last+tag@contoso.com", "x", ""] {
            assert!(!has_routing_syntax(&normalize(plain)), "{plain}");
        }
    }

    #[test]
    fn logins_take_the_default_domain() {
        assert_eq!(login("Alice", Some("Contoso.com.")), "alice@contoso.com");
        assert_eq!(
            login("alice@contoso.com", Some("other.example")),
            "alice@contoso.com"
        );
        assert_eq!(login("alice", None), "alice");
        assert_eq!(login("  ", Some("contoso.com")), "");
    }
}
