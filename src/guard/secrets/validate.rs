//! What a secret candidate must pass beyond its pattern: placeholders and
//! documentation keys left alone, randomness (distinct bytes, Shannon
//! entropy), checksums (GitHub's and npm's CRC32 in base62), decoded
//! content (HTTP Basic credentials, Kubernetes `data:` values).

use base64::Engine as _;

/// How a rule judges its secret (the capture group, or the whole match).
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// A random token: at least this many distinct bytes, no long run of
    /// one byte, no counting sequence.
    Random(u8),
    /// [`Check::Random`] of exactly this many bytes (patterns absorb a
    /// longer run, so a longer token is rejected whole, not cut).
    Sized(u16, u8),
    /// A keyword rule's value: exactly this many bytes, each one the
    /// charset's, at least this many distinct. The pattern's value is a
    /// loose `[A-Za-z0-9]+`: a fixed-length run of hex in the pattern would
    /// become the prefilter's gate in place of the keyword, and every hash
    /// in a lock file would be a hit.
    Shape(u16, fn(u8) -> bool, u8),
    /// A value of a generic assignment (`password=…`, `token: …`): long
    /// enough, random enough (Shannon entropy floor in bits per byte), not
    /// code, not a path or a URL, not a word the key repeats.
    Generic(f32),
    /// `ghp_…`/`npm_…`: 30 random base62 characters and the CRC32 of
    /// them in 6 base62 digits, after a prefix ending in `_`.
    Crc32Base62,
    /// The password of a URL or a credentials file: any characters, but not
    /// a well-known default or a placeholder.
    Password,
    /// Base64 of `user:password` (HTTP Basic, `.npmrc` `_auth`, Docker's
    /// `auth`).
    BasicCredentials,
    /// Space-separated `key: value` pairs whose values are standard base64
    /// (a Kubernetes Secret's `data:` block).
    Base64Values,
    /// Key material (PEM-like bodies, base64 DER): at least this many
    /// base64 (or hex) characters, random enough (3 bits a character).
    KeyMaterial(u16),
}

impl Check {
    pub fn accepts(self, whole: &str, secret: &str) -> bool {
        match self {
            Check::Random(n) => random(secret, n.into()),
            Check::Sized(len, n) => secret.len() == usize::from(len) && random(secret, n.into()),
            Check::Shape(len, chars, n) => {
                secret.len() == usize::from(len)
                    && secret.bytes().all(chars)
                    && random(secret, n.into())
            }
            Check::Generic(floor) => generic_value(secret, floor),
            Check::Crc32Base62 => crc32_base62_valid(secret),
            Check::Password => password(whole, secret),
            Check::BasicCredentials => basic_credentials(secret),
            Check::Base64Values => base64_values(secret),
            Check::KeyMaterial(n) => {
                let material: String = secret
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "+/".contains(*c))
                    .collect();
                // Real key bytes are random (base64 near 6 bits a
                // character, hex near 4); filler is not.
                material.len() >= usize::from(n) && entropy(&material) >= 3.0
            }
        }
    }
}

/// Number of different bytes in `s`.
pub fn distinct(s: &str) -> usize {
    let mut seen = [false; 256];
    s.bytes()
        .filter(|&b| !std::mem::replace(&mut seen[b as usize], true))
        .count()
}

/// Shannon entropy of the bytes of `s`, in bits per byte.
pub fn entropy(s: &str) -> f32 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

/// Longest run of one byte.
fn longest_run(s: &str) -> usize {
    let b = s.as_bytes();
    let mut best = 0;
    let mut i = 0;
    while i < b.len() {
        let j = b[i..]
            .iter()
            .position(|&x| x != b[i])
            .map_or(b.len(), |k| i + k);
        best = best.max(j - i);
        i = j;
    }
    best
}

/// Markers of documentation, templates and redactions: a secret holding
/// one is not a live secret (AWS's `…EXAMPLE` keys, `xxxx`, `<your-key>`,
/// `${VAR}`, `{{ .Values.x }}`, `****`, `[REDACTED]`).
pub fn is_placeholder(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    // A run of one byte (`aaaaaa`, `000000`) is a filler, not randomness.
    has_marker(secret) || (lower.len() >= 6 && longest_run(&lower) >= 6)
}

/// The markers of [`is_placeholder`] (no filler runs).
pub fn has_marker(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    const MARKERS: &[&str] = &[
        "example",
        "xxxx",
        "****",
        "....",
        "redacted",
        "placeholder",
        "changeme",
        "change_me",
        "change-me",
        "dummy",
        "your_",
        "your-",
        "yourkey",
        "yourtoken",
        "yoursecret",
        "yourpassword",
        "${",
        "{{",
        "$(",
        "%(",
        "<",
        ">",
        "0123456",
        "1234567",
        "abcdefg",
        "insert",
        "replace",
    ];
    MARKERS.iter().any(|m| lower.contains(m))
}

/// Words a config uses for "no real value here".
fn is_placeholder_word(value: &str) -> bool {
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "test",
        "testing",
        "sample",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "empty",
        "string",
        "required",
        "optional",
        "todo",
        "tbd",
        "fixme",
        "pass",
        "pwd",
        "admin",
        "root",
        "guest",
        "user",
        "username",
        "default",
        "demo",
        "fake",
        "mock",
        "foo",
        "bar",
        "baz",
        "foobar",
        "hunter2",
        "postgres",
        "mysql",
        "redis",
        "rabbitmq",
        "letmein",
        "qwerty",
        "welcome",
        "secret123",
        "password1",
        "password123",
    ];
    let lower = value.to_ascii_lowercase();
    let core = lower.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    core.is_empty() || WORDS.contains(&core)
}

/// A random token body.
fn random(secret: &str, min_distinct: usize) -> bool {
    distinct(secret) >= min_distinct && !is_placeholder(secret)
}

/// Looks like code or a reference rather than a literal value: a dotted or
/// `::` path of identifiers, an environment reference, a path, a URL.
fn code_like(v: &str) -> bool {
    let ident = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !s.as_bytes()[0].is_ascii_digit()
    };
    let dotted = v.contains('.') && v.split('.').all(ident);
    dotted
        || v.contains("::")
        || v.contains("->")
        || v.contains("://")
        || v.starts_with(['$', '%', '@', '&', '*', '/', '.', '~', '!'])
        || v.starts_with("process.env")
        || v.starts_with("os.environ")
}

/// Generic assignment values: long enough, random enough, not a
/// placeholder, not code, not an identifier-like word.
pub fn generic_value(v: &str, floor: f32) -> bool {
    if v.len() < 8 || is_placeholder(v) || is_placeholder_word(v) || code_like(v) {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    // Values that repeat what the key says (`password: db_password_here`)
    // or name a test fixture.
    if [
        "password", "passwd", "secret", "token", "test", "sample", "fake", "mock",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return false;
    }
    let digit = v.bytes().any(|b| b.is_ascii_digit());
    let upper = v.bytes().any(|b| b.is_ascii_uppercase());
    let lower_c = v.bytes().any(|b| b.is_ascii_lowercase());
    let symbol = v.bytes().any(|b| b"!@#%^&*+=~?".contains(&b));
    // Identifiers (`SecretString`, `read_only_mode`) have no digits and no
    // symbols; random strings of 16+ characters mix cases.
    let mixed = digit || symbol || (upper && lower_c && v.len() >= 16);
    // Identifier-shaped values with digits (`sha256_digest`, `utf8_name`).
    let word_parts = v
        .split(['_', '-', '.'])
        .filter(|p| p.len() >= 3 && p.bytes().all(|b| b.is_ascii_lowercase()))
        .count();
    mixed && distinct(v) >= 6 && entropy(v) >= floor && word_parts < 2
}

/// The password of a URL or credentials entry.
fn password(whole: &str, secret: &str) -> bool {
    // Quotes and brackets: code or a template around the value, not a
    // password in a file.
    if is_placeholder(secret)
        || is_placeholder_word(secret)
        || secret.starts_with('$')
        || secret.contains(['"', '\'', '`', '{', '}', '[', ']', '(', ')'])
    {
        return false;
    }
    // `user:user@` is a default, and `scheme://user:pass@` a placeholder.
    let user = whole
        .rsplit_once("://")
        .map_or("", |(_, rest)| rest.split(':').next().unwrap_or(""));
    secret != user && secret.len() >= 3
}

/// Base64 that decodes to `user:password` in printable ASCII, with a
/// password that is not a placeholder.
fn basic_credentials(secret: &str) -> bool {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(secret) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return false;
    };
    let Some((user, pass)) = text.split_once(':') else {
        return false;
    };
    !user.is_empty()
        && pass.len() >= 3
        && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !is_placeholder(pass)
        && !is_placeholder_word(pass)
        && !pass.starts_with('$')
}

/// `v1 k2: v2 …` as a Kubernetes Secret's `data:` block reads once
/// normalised (the first key is outside the secret): every value is
/// standard base64 of at least 4 characters, and one is not a placeholder.
fn base64_values(secret: &str) -> bool {
    let mut values = Vec::new();
    let mut parts = secret.split(' ');
    values.extend(parts.next());
    for pair in parts.collect::<Vec<_>>().chunks(2) {
        match pair {
            [key, value] if key.ends_with(':') => values.push(*value),
            _ => return false,
        }
    }
    let engine = base64::engine::general_purpose::STANDARD;
    values
        .iter()
        .all(|v| v.len() % 4 == 0 && engine.decode(v).is_ok())
        && values.iter().any(|v| {
            engine
                .decode(v)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .is_none_or(|s| !is_placeholder(&s) && !is_placeholder_word(&s))
        })
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 (IEEE 802.3, the zlib one), bitwise: tokens are short.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `n` in base62, left-padded with `0` to six digits.
pub fn base62_6(mut n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// GitHub's classic token format (`ghp_` and kin) and npm's `npm_`: after
/// the prefix, 30 base62 characters and the CRC32 of those 30 in six
/// base62 digits.
pub fn crc32_base62_valid(token: &str) -> bool {
    let Some((_, body)) = token.split_once('_') else {
        return false;
    };
    if body.len() != 36 || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (random, check) = body.split_at(30);
    base62_6(crc32(random.as_bytes())) == check.as_bytes() && distinct(random) >= 10
}

/// Charsets of [`Check::Shape`].
pub fn hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

pub fn hex_or_dash(b: u8) -> bool {
    hex(b) || b == b'-'
}

pub fn upper_alnum(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_uppercase()
}

pub fn hex_any_case(b: u8) -> bool {
    b.is_ascii_hexdigit()
}
