//! `%XX` decoding, shared by the stdio URIs containerd passes (`binary://`, `file://`) and the
//! escaped text of Proxmox config files.

/// Replace every `%XX` (two hex digits) by the byte it names; anything else, a `%` not followed
/// by two hex digits included, stays as it is. Invalid UTF-8 in the result becomes U+FFFD.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn escapes_are_decoded_and_the_rest_kept() {
        assert_eq!(decode("a%20b%2Fc"), "a b/c");
        assert_eq!(decode("%e2%9c%93"), "✓");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%2"), "%2");
        assert_eq!(decode("%zz%41"), "%zzA");
    }

    #[test]
    fn a_percent_before_a_multibyte_character_does_not_panic() {
        // Slicing the &str after the `%` would cut "é" in half.
        assert_eq!(decode("%é"), "%é");
        assert_eq!(decode("x%aé"), "x%aé");
    }
}
