//! Request path normalisation, so that a guarded route cannot be reached
//! unguarded by spelling its path differently.

use std::borrow::Cow;

/// Normalises a request path (`:path` as Envoy sends it) for route matching:
/// drops the query string and fragment, percent-decodes unreserved
/// characters, merges slashes, resolves `.` and `..` segments and drops a
/// trailing slash. The result always starts with `/`.
pub fn normalize(raw: &str) -> Cow<'_, str> {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    if is_normal(path) {
        return Cow::Borrowed(path);
    }
    let decoded = percent_decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// True when `normalize` would return the path unchanged: the common case,
/// checked without allocating.
fn is_normal(path: &str) -> bool {
    if !path.starts_with('/') || path.contains('%') || path.contains("//") {
        return false;
    }
    if path.len() > 1 && path.ends_with('/') {
        return false;
    }
    !path.split('/').any(|s| s == "." || s == "..")
}

/// Decodes `%XX` escapes of unreserved characters (RFC 3986 §2.3) and of
/// `/`, so `/v1/%6Dessages` and `/v1%2Fmessages` route as `/v1/messages`.
fn percent_decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'/') {
                    out.push(c);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Only ASCII bytes were produced from escapes, so UTF-8 validity of the
    // input carries over.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn plain_paths_are_borrowed() {
        assert!(matches!(
            normalize("/v1/messages?beta=true"),
            std::borrow::Cow::Borrowed("/v1/messages")
        ));
        assert_eq!(normalize("/"), "/");
    }

    #[test]
    fn spellings_of_the_same_path_normalise_alike() {
        for p in [
            "/v1/messages",
            "/v1/messages/",
            "//v1//messages",
            "/v1/./messages",
            "/v1/x/../messages",
            "/v1/%6Dessages",
            "/v1%2Fmessages",
            "/v1/messages?beta=true",
            "v1/messages",
        ] {
            assert_eq!(normalize(p), "/v1/messages", "{p}");
        }
    }

    #[test]
    fn reserved_escapes_and_odd_input_stay() {
        assert_eq!(normalize("/a%3Fb"), "/a%3Fb");
        assert_eq!(normalize("/a%"), "/a%");
        assert_eq!(normalize("/a%4"), "/a%4");
        assert_eq!(normalize("/../.."), "/");
        assert_eq!(normalize(""), "/");
    }
}
