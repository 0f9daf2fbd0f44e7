//! Address normalisation, done once at the edge so one mailbox is one entity however a client
//! spells it: `<Alice@Contoso.COM>` and `alice@contoso.com` count together.

/// Normalise an address or entity id: trim white space, strip one pair of surrounding angle
/// brackets, trim again, lower-case. Lower-casing the local part follows Exchange (mailbox
/// names are case-insensitive); a site with case-sensitive local parts would otherwise let a
/// sender dodge limits by changing case, which is the worse failure.
pub fn address(raw: &str) -> String {
    let trimmed = raw.trim();
    let unbracketed = trimmed
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(trimmed);
    unbracketed.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn spellings_of_one_mailbox_agree() {
        for raw in [
            "alice@contoso.com",
            "Alice@Contoso.COM",
            "<alice@contoso.com>",
            "  <ALICE@contoso.com>  ",
            "< alice@contoso.com >",
        ] {
            assert_eq!(address(raw), "alice@contoso.com", "{raw:?}");
        }
    }

    #[test]
    fn odd_input_is_kept_not_dropped() {
        assert_eq!(address(""), "");
        assert_eq!(address("<>"), "");
        assert_eq!(address("<unclosed"), "<unclosed");
    }
}
