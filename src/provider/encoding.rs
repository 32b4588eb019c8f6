//! Request and response body decoding per `content-encoding`.
//!
//! Pure: bytes in, bytes out. Every decoder is read in bounded chunks into
//! an output buffer that never grows past the caller's limit, so a small
//! compressed body cannot make promptgate allocate more than the limit it
//! would accept uncompressed (a decompression bomb stops at the limit).
//! The decoders' own state is bounded by their window: 32 KiB for
//! gzip/deflate, at most 16 MiB for brotli (large windows are off), 8 MiB
//! for zstd. Peak memory is therefore about twice the limit (the input of
//! the last layer plus its output) plus those windows.
//!
//! Supported codings: `gzip` (`x-gzip`), `deflate` (zlib-wrapped as RFC 9110
//! says, raw deflate as the fallback browsers also accept), `br`, `zstd`
//! (window capped at 8 MiB as RFC 9659 asks of HTTP decoders) and
//! `identity`. A list such as `gzip, br` names the codings in the order they
//! were applied, so they are undone from the last to the first.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Decoded size would exceed `limit` (decompression bomb guard).
    TooLarge { limit: usize },
    /// An encoding we do not decode.
    Unsupported(String),
    /// The bytes are not valid for the declared encoding.
    Corrupt { encoding: String, reason: String },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { limit } => {
                write!(
                    f,
                    "the decoded body is larger than the limit of {limit} bytes"
                )
            }
            DecodeError::Unsupported(encoding) => {
                write!(f, "content-encoding `{encoding}` is not supported")
            }
            DecodeError::Corrupt { encoding, reason } => {
                write!(f, "the body is not valid `{encoding}` data: {reason}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A content coding promptgate can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    /// The coding's registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// Most codings one body may stack. Each layer may cost up to `limit` of
/// work, so an unbounded list would multiply it; real clients use one.
pub const MAX_CODINGS: usize = 4;

/// Largest zstd window accepted: RFC 9659 limits the `zstd` content coding
/// to 8 MiB windows and tells decoders to refuse larger ones.
pub const ZSTD_MAX_WINDOW: u64 = 8 << 20;

/// Bytes read from a decoder at a time.
const CHUNK: usize = 32 * 1024;

/// Parses a `content-encoding` value into the codings in the order they
/// were applied. `identity` and empty list elements are dropped; names are
/// case-insensitive and surrounding white space is ignored.
pub fn parse_content_encoding(value: &str) -> Result<Vec<Coding>, DecodeError> {
    let mut codings = Vec::new();
    for token in value.split(',') {
        let token = token.trim_matches(|c| c == ' ' || c == '\t');
        let coding = if token.is_empty() || token.eq_ignore_ascii_case("identity") {
            continue;
        } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
            Coding::Gzip
        } else if token.eq_ignore_ascii_case("deflate") {
            Coding::Deflate
        } else if token.eq_ignore_ascii_case("br") {
            Coding::Brotli
        } else if token.eq_ignore_ascii_case("zstd") {
            Coding::Zstd
        } else {
            return Err(DecodeError::Unsupported(token.to_owned()));
        };
        codings.push(coding);
    }
    if codings.len() > MAX_CODINGS {
        return Err(DecodeError::Unsupported(format!(
            "{} (more than {MAX_CODINGS} stacked codings)",
            value.trim()
        )));
    }
    Ok(codings)
}

/// Decodes `body` per a `content-encoding` header value: "gzip", "x-gzip",
/// "deflate" (zlib-wrapped, and raw deflate as a fallback as browsers do),
/// "br", "zstd", "identity", and comma lists like "gzip, br" (applied in
/// order, so decoded in reverse). Case-insensitive, whitespace-tolerant.
///
/// Returns `Cow::Borrowed` for identity and for an empty body (after the
/// header has been checked: an unsupported name is an error even then).
/// Stops with [`DecodeError::TooLarge`] as soon as the output would exceed
/// `limit`; no buffer grows past `limit`. An identity body longer than
/// `limit` is `TooLarge` as well. Bytes after the end of a gzip, deflate or
/// brotli stream, or after the last zstd frame's end, are `Corrupt`.
pub fn decode<'a>(
    content_encoding: &str,
    body: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>, DecodeError> {
    let codings = parse_content_encoding(content_encoding)?;
    if codings.is_empty() || body.is_empty() {
        if body.len() > limit {
            return Err(DecodeError::TooLarge { limit });
        }
        return Ok(Cow::Borrowed(body));
    }
    let mut current: Cow<'a, [u8]> = Cow::Borrowed(body);
    for &coding in codings.iter().rev() {
        let decoded = decode_one(coding, &current, limit)?;
        current = Cow::Owned(decoded);
    }
    Ok(current)
}

/// Undoes one coding.
pub fn decode_one(coding: Coding, input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    match coding {
        Coding::Gzip => {
            let mut decoder = flate2::bufread::MultiGzDecoder::new(input);
            let out = read_bounded(&mut decoder, Vec::new(), limit, coding)?;
            ensure_consumed(decoder.get_ref(), coding)?;
            Ok(out)
        }
        Coding::Deflate => {
            if looks_like_zlib(input) {
                match inflate_zlib(input, limit) {
                    Err(zlib_error @ DecodeError::Corrupt { .. }) => {
                        // A raw stream whose first bytes happen to form a
                        // valid zlib header: try it as raw before giving up.
                        inflate_raw(input, limit).map_err(|raw_error| match raw_error {
                            DecodeError::TooLarge { .. } => raw_error,
                            _ => zlib_error,
                        })
                    }
                    other => other,
                }
            } else {
                inflate_raw(input, limit)
            }
        }
        Coding::Brotli => {
            let mut decoder = brotli_decompressor::Decompressor::new(input, CHUNK);
            let out = read_bounded(&mut decoder, Vec::new(), limit, coding)?;
            // The decoder reports input left in its buffer only on the read
            // after the one that signalled the end; input it never buffered
            // is still in the source.
            if !matches!(decoder.read(&mut [0u8; 1]), Ok(0)) {
                return Err(DecodeError::Corrupt {
                    encoding: coding.as_str().to_owned(),
                    reason: "bytes after the end of the stream".into(),
                });
            }
            ensure_consumed(decoder.get_ref(), coding)?;
            Ok(out)
        }
        Coding::Zstd => decode_zstd(input, limit),
    }
}

fn inflate_zlib(input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut decoder = flate2::bufread::ZlibDecoder::new(input);
    let out = read_bounded(&mut decoder, Vec::new(), limit, Coding::Deflate)?;
    ensure_consumed(decoder.get_ref(), Coding::Deflate)?;
    Ok(out)
}

fn inflate_raw(input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut decoder = flate2::bufread::DeflateDecoder::new(input);
    let out = read_bounded(&mut decoder, Vec::new(), limit, Coding::Deflate)?;
    ensure_consumed(decoder.get_ref(), Coding::Deflate)?;
    Ok(out)
}

/// A zlib header (RFC 1950): deflate method, a window of at most 32 KiB,
/// the check bits right and no preset dictionary.
fn looks_like_zlib(input: &[u8]) -> bool {
    let [cmf, flg, ..] = *input else {
        return false;
    };
    cmf & 0x0f == 8
        && cmf >> 4 <= 7
        && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
        && flg & 0x20 == 0
}

/// Every zstd frame in turn (a body may hold several, and skippable frames,
/// which are skipped); content checksums are verified when present.
fn decode_zstd(input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
    use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

    let corrupt = |reason: String| DecodeError::Corrupt {
        encoding: Coding::Zstd.as_str().to_owned(),
        reason,
    };
    let mut source = input;
    let mut out = Vec::new();
    let mut frames = 0usize;
    while !source.is_empty() {
        let mut frame = FrameDecoder::new();
        frame.set_max_window_size(ZSTD_MAX_WINDOW);
        match StreamingDecoder::new_with_decoder(&mut source, &mut frame) {
            Ok(mut decoder) => {
                out = read_bounded(&mut decoder, out, limit, Coding::Zstd)?;
            }
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                let length = length as usize;
                if source.len() < length {
                    return Err(corrupt("a skippable frame runs past the end".into()));
                }
                source = &source[length..];
                continue;
            }
            Err(e) => {
                return Err(corrupt(if frames == 0 {
                    e.to_string()
                } else {
                    format!("after frame {frames}: {e}")
                }))
            }
        }
        frames += 1;
        if let (Some(expected), Some(actual)) = (
            frame.get_checksum_from_data(),
            frame.get_calculated_checksum(),
        ) {
            if expected != actual {
                return Err(corrupt(format!(
                    "content checksum mismatch in frame {frames}"
                )));
            }
        }
    }
    if frames == 0 {
        return Err(corrupt("no zstd frame".into()));
    }
    Ok(out)
}

/// Reads `reader` to its end, appending to `out`, never letting `out`
/// exceed `limit` bytes of length or capacity.
fn read_bounded<R: Read>(
    reader: &mut R,
    mut out: Vec<u8>,
    limit: usize,
    coding: Coding,
) -> Result<Vec<u8>, DecodeError> {
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(DecodeError::Corrupt {
                    encoding: coding.as_str().to_owned(),
                    reason: e.to_string(),
                })
            }
        };
        if n > limit - out.len() {
            return Err(DecodeError::TooLarge { limit });
        }
        let needed = out.len() + n;
        if needed > out.capacity() {
            // Grow geometrically, but never past the limit.
            let target = needed.max(out.capacity().saturating_mul(2)).min(limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

fn ensure_consumed(rest: &[u8], coding: Coding) -> Result<(), DecodeError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Corrupt {
            encoding: coding.as_str().to_owned(),
            reason: format!("{} bytes after the end of the stream", rest.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const MIB: usize = 1 << 20;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    fn sample() -> Vec<u8> {
        let mut body =
            br#"{"model":"claude-opus-4-6","messages":[{"role":"user","content":""#.to_vec();
        for i in 0..2000 {
            body.extend_from_slice(
                format!("line {i} of a long prompt, caf\u{e9} \u{1f916}; ").as_bytes(),
            );
        }
        body.extend_from_slice(br#""}]}"#);
        body
    }

    /// The error of a decode, without dumping a decoded body.
    fn err(result: Result<Cow<'_, [u8]>, DecodeError>) -> DecodeError {
        match result {
            Err(e) => e,
            Ok(out) => panic!("expected an error, decoded {} bytes", out.len()),
        }
    }

    /// The Corrupt error of a decode, without dumping a decoded body.
    fn corrupt(header: &str, result: Result<Cow<'_, [u8]>, DecodeError>) -> (String, String) {
        match result {
            Err(DecodeError::Corrupt { encoding, reason }) => (encoding, reason),
            Err(other) => panic!("{header}: expected Corrupt, got {other:?}"),
            Ok(out) => panic!("{header}: expected Corrupt, decoded {} bytes", out.len()),
        }
    }

    #[test]
    fn identity_and_empty_are_borrowed() {
        let body = b"{\"a\":1}";
        for header in [
            "",
            "identity",
            " Identity ",
            "identity, identity",
            ",",
            " , identity ,",
        ] {
            let out = decode(header, body, 1024).unwrap();
            assert!(matches!(out, Cow::Borrowed(_)), "{header:?}");
            assert_eq!(&*out, body);
        }
        for header in ["gzip", "br", "zstd", "deflate", "gzip, br"] {
            let out = decode(header, b"", 1024).unwrap();
            assert!(matches!(out, Cow::Borrowed(b"")), "{header:?}");
        }
        assert_eq!(
            err(decode("identity", body, 3)),
            DecodeError::TooLarge { limit: 3 }
        );
        assert!(matches!(
            decode("compress", b"", 10),
            Err(DecodeError::Unsupported(_))
        ));
    }

    #[test]
    fn each_coding_round_trips() {
        let data = sample();
        let cases: [(&str, Vec<u8>); 8] = [
            ("gzip", gzip(&data)),
            ("x-gzip", gzip(&data)),
            ("GZIP", gzip(&data)),
            ("deflate", zlib(&data)),
            ("Deflate", raw_deflate(&data)),
            ("br", brotli(&data)),
            ("zstd", zstd(&data)),
            ("  zstd\t", zstd(&data)),
        ];
        for (header, encoded) in cases {
            assert!(encoded.len() < data.len() / 4, "{header}: compresses");
            let out = decode(header, &encoded, 32 * MIB).unwrap();
            assert!(matches!(out, Cow::Owned(_)));
            assert!(out == data, "{header}: round trip");
            // Exactly the decoded size fits; one byte less does not.
            assert_eq!(
                decode(header, &encoded, data.len()).unwrap().len(),
                data.len()
            );
            assert_eq!(
                err(decode(header, &encoded, data.len() - 1)),
                DecodeError::TooLarge {
                    limit: data.len() - 1
                },
                "{header}"
            );
        }
    }

    #[test]
    fn stacked_codings_are_undone_in_reverse() {
        let data = sample();
        // "gzip, br": gzip applied first, then br.
        let encoded = brotli(&gzip(&data));
        assert!(decode("gzip, br", &encoded, 32 * MIB).unwrap() == data);
        assert!(decode("gzip,br", &encoded, 32 * MIB).unwrap() == data);
        assert!(decode("br, gzip", &encoded, 32 * MIB).is_err());

        let encoded = gzip(&zstd(&zlib(&data)));
        assert!(decode("deflate, identity, zstd, gzip", &encoded, 32 * MIB).unwrap() == data);
        assert_eq!(
            parse_content_encoding("deflate, identity, zstd, X-Gzip").unwrap(),
            vec![Coding::Deflate, Coding::Zstd, Coding::Gzip]
        );
        // Every intermediate layer is held to the limit too.
        let small = b"x".repeat(100);
        let encoded = gzip(&gzip(&small));
        assert!(matches!(
            decode("gzip, gzip", &encoded, 50),
            Err(DecodeError::TooLarge { limit: 50 })
        ));
        let too_many = "gzip, gzip, gzip, gzip, gzip";
        assert!(matches!(
            decode(too_many, b"x", 10),
            Err(DecodeError::Unsupported(s)) if s.contains("more than 4")
        ));
    }

    #[test]
    fn unsupported_codings_are_named() {
        for (header, name) in [
            ("compress", "compress"),
            ("x-compress", "x-compress"),
            ("foo", "foo"),
            ("gzip, Foo ", "Foo"),
            ("gzip;q=1", "gzip;q=1"),
            ("aes128gcm", "aes128gcm"),
        ] {
            let e = err(decode(header, b"abc", 1024));
            assert_eq!(e, DecodeError::Unsupported(name.into()), "{header}");
            assert!(e.to_string().contains(name));
        }
    }

    #[test]
    fn corrupt_input_is_reported_per_coding() {
        let data = sample();
        let plain = b"{\"model\":\"x\"}";
        for header in ["gzip", "deflate", "br", "zstd"] {
            let (encoding, reason) = corrupt(header, decode(header, plain, MIB));
            assert!(!reason.is_empty(), "{header}");
            let expected = if header == "gzip" { "gzip" } else { header };
            assert_eq!(encoding, expected);
        }
        // Truncated streams.
        for (header, encoded) in [
            ("gzip", gzip(&data)),
            ("deflate", zlib(&data)),
            ("deflate", raw_deflate(&data)),
            ("br", brotli(&data)),
            ("zstd", zstd(&data)),
        ] {
            let cut = &encoded[..encoded.len() / 2];
            corrupt(header, decode(header, cut, 32 * MIB));
            // Trailing garbage after a complete stream.
            let mut extra = encoded.clone();
            extra.extend_from_slice(b"garbage");
            corrupt(header, decode(header, &extra, 32 * MIB));
        }
        // Trailing bytes beyond what the brotli decoder buffers at once.
        let mut br = brotli(b"{}");
        br.extend_from_slice(&vec![b'x'; 3 * CHUNK]);
        corrupt("br", decode("br", &br, MIB));
        // A flipped byte inside the compressed data: the gzip CRC / adler32 /
        // zstd checksum or the stream structure catches it.
        let mut g = gzip(&data);
        let at = g.len() - 6;
        g[at] ^= 0xff;
        corrupt("gzip", decode("gzip", &g, 32 * MIB));
        let mut z = zlib(&data);
        let at = z.len() - 2;
        z[at] ^= 0xff;
        corrupt("deflate", decode("deflate", &z, 32 * MIB));

        let e = err(decode("gzip", plain, MIB));
        assert!(
            e.to_string()
                .starts_with("the body is not valid `gzip` data: "),
            "{e}"
        );
    }

    #[test]
    fn zstd_frames_concatenate_and_skippable_frames_are_skipped() {
        let mut body = zstd(b"hello ");
        // Skippable frame: magic 0x184D2A5x, 4-byte length, payload.
        body.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.extend_from_slice(b"abc");
        body.extend_from_slice(&zstd(b"world"));
        assert_eq!(&*decode("zstd", &body, 1024).unwrap(), b"hello world");
        // Skippable frame that claims more bytes than there are.
        let mut bad = zstd(b"hi");
        bad.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        bad.extend_from_slice(&100u32.to_le_bytes());
        corrupt("zstd", decode("zstd", &bad, 1024));
        // Only a skippable frame: no content at all.
        let mut only_skip = 0x184D_2A50u32.to_le_bytes().to_vec();
        only_skip.extend_from_slice(&0u32.to_le_bytes());
        corrupt("zstd", decode("zstd", &only_skip, 1024));
    }

    #[test]
    fn zstd_windows_over_8_mib_are_refused() {
        // Frame header: magic, descriptor 0 (no single segment, no checksum,
        // no dictionary), window descriptor exponent 14 → 2^24 = 16 MiB.
        let mut frame = 0xFD2F_B528u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&[0x00, (24 - 10) << 3]);
        // One last raw block of 1 byte.
        frame.extend_from_slice(&[0x09, 0x00, 0x00, b'x']);
        let (_, reason) = corrupt("zstd", decode("zstd", &frame, MIB));
        assert!(reason.to_lowercase().contains("window"), "{reason}");
        // The same frame with an 8 MiB window decodes.
        frame[5] = (23 - 10) << 3;
        assert_eq!(&*decode("zstd", &frame, MIB).unwrap(), b"x");
    }

    #[test]
    fn raw_deflate_starting_like_zlib_still_decodes() {
        assert!(looks_like_zlib(&zlib(b"abc")));
        assert!(!looks_like_zlib(&raw_deflate(b"abc")));
        assert!(!looks_like_zlib(b"x"));
        // A legal raw stream whose first two bytes are a valid zlib header:
        // 0x08 = BFINAL 0, BTYPE 00 (stored), then padding bits decoders
        // skip; the next byte is LEN's low byte 0x1D, and
        // (0x08 << 8 | 0x1D) % 31 == 0. The zlib attempt fails, raw wins.
        let len: u16 = 0x001D; // low byte must be 0x1D to complete the header
        let mut raw = vec![0x08];
        raw.extend_from_slice(&len.to_le_bytes());
        raw.extend_from_slice(&(!len).to_le_bytes());
        let payload: Vec<u8> = (0..len as u8).map(|i| b'a' + i % 26).collect();
        raw.extend_from_slice(&payload);
        raw.extend_from_slice(&[0x03, 0x00]); // final fixed-Huffman block, end-of-block only
        assert!(looks_like_zlib(&raw));
        assert_eq!(decode("deflate", &raw, 1024).unwrap(), payload);
    }

    /// A reader that counts how many bytes the decoder produced.
    struct Counting<R> {
        inner: R,
        produced: usize,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.produced += n;
            Ok(n)
        }
    }

    #[test]
    fn decompression_bombs_stop_at_the_limit() {
        // 100 MiB of zeros as 100 gzip members of 1 MiB each (~100 KB).
        let member = gzip(&vec![0u8; MIB]);
        let bomb: Vec<u8> = member
            .iter()
            .copied()
            .cycle()
            .take(member.len() * 100)
            .collect();
        assert!(bomb.len() < 200 * 1024, "{}", bomb.len());
        let limit = 32 * MIB;
        let started = std::time::Instant::now();
        assert_eq!(
            err(decode("gzip", &bomb, limit)),
            DecodeError::TooLarge { limit }
        );
        // The decoder is stopped right after the limit, not run to the end.
        let mut reader = Counting {
            inner: flate2::bufread::MultiGzDecoder::new(&bomb[..]),
            produced: 0,
        };
        assert!(read_bounded(&mut reader, Vec::new(), limit, Coding::Gzip).is_err());
        assert!(reader.produced <= limit + CHUNK, "{}", reader.produced);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );

        // A single-stream bomb per coding (40 MiB of zeros each, under 1 MiB
        // compressed), limit 32 MiB.
        let zeros = vec![0u8; 40 * MIB];
        for (header, encoded) in [
            ("deflate", zlib(&zeros)),
            ("br", brotli(&zeros)),
            ("zstd", zstd(&zeros)),
        ] {
            assert!(encoded.len() < MIB, "{header}: {}", encoded.len());
            assert_eq!(
                err(decode(header, &encoded, limit)),
                DecodeError::TooLarge { limit },
                "{header}"
            );
        }
    }

    #[test]
    fn output_never_reserves_past_the_limit() {
        let data = vec![7u8; 3 * CHUNK + 5];
        let limit = data.len();
        let out = read_bounded(&mut &data[..], Vec::new(), limit, Coding::Gzip).unwrap();
        assert!(out == data);
        assert!(out.capacity() <= limit, "{} > {limit}", out.capacity());
        assert!(matches!(
            read_bounded(&mut &data[..], Vec::new(), limit - 1, Coding::Gzip),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn errors_read_as_messages() {
        assert_eq!(
            DecodeError::TooLarge { limit: 10 }.to_string(),
            "the decoded body is larger than the limit of 10 bytes"
        );
        assert_eq!(
            DecodeError::Unsupported("compress".into()).to_string(),
            "content-encoding `compress` is not supported"
        );
    }
}
