//! Address handling: normalisation for comparison and domain extraction.
//!
//! Addresses come from the network through the host and are untrusted: any string must give a
//! defined answer. We never reject an address here; malformed ones simply have no domain.

/// Normalise an address for comparison: trim white space, take the part inside angle brackets
/// when there are any (`Alice <alice@contoso.com>` and `<alice@contoso.com>` both give
/// `alice@contoso.com`), lower-case it (Unicode), and drop a trailing dot of the domain.
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
                "@a,@b:bob@fabrikam.com",
                "@a,@b:bob@fabrikam.com",
                Some("fabrikam.com"),
            ),
            ("no-at-sign", "no-at-sign", None),
            ("trailing@", "trailing@", None),
            ("@leading", "@leading", None),
            ("", "", None),
            ("<>", "", None),
            ("ÄLICE@BÜCHER.DE", "älice@bücher.de", Some("bücher.de")),
        ] {
            let n = normalize(raw);
            assert_eq!(n, norm, "{raw:?}");
            assert_eq!(domain(&n), dom, "{raw:?}");
        }
    }
}
