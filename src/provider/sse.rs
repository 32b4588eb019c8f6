//! Server-sent events: the framer that cuts a byte stream into events
//! (any chunk boundaries, exact input bytes kept) and the writer of a
//! re-encoded event. Dialect-neutral: what the `data` means is the
//! dialect's business.

/// Malformed SSE framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE event is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("an SSE `{field}` line is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
}

/// One SSE event: every line up to and including the blank line that ends
/// it (or, at end of stream, the unterminated rest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The last `event:` field.
    pub event: Option<String>,
    /// The `data:` fields joined with `\n`; `None` without any.
    pub data: Option<String>,
    /// The last `id:` field (without NUL).
    pub id: Option<String>,
    /// The exact input bytes: comment and field lines, line endings, the
    /// blank line. The concatenated `raw` of all events is the input.
    pub raw: Vec<u8>,
    /// False for the unterminated rest at end of stream.
    pub terminated: bool,
}

/// Incremental SSE parser with a bound on event size.
#[derive(Debug)]
pub struct SseParser {
    limit: usize,
    raw: Vec<u8>,
    line_start: usize,
    /// The last byte was a `\r`: a `\n` next is part of its line ending.
    skip_lf: bool,
    /// The event ended with a blank line whose `\r` was the last byte: it is
    /// dispatched once the next byte shows whether a `\n` belongs to it.
    pending: bool,
    first_line: bool,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    failed: Option<SseError>,
}

impl SseParser {
    /// A parser refusing events over `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SseParser {
            limit,
            raw: Vec::new(),
            line_start: 0,
            skip_lf: false,
            pending: false,
            first_line: true,
            event: None,
            data: None,
            id: None,
            failed: None,
        }
    }

    /// Bytes of the incomplete event held.
    pub fn buffered(&self) -> usize {
        self.raw.len()
    }

    /// Feeds bytes; appends each completed event to `out`. On error, the
    /// events completed before it are in `out`, and every later call fails.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.feed_inner(input, out);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn feed_inner(&mut self, mut input: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.skip_lf {
            if let Some((&first, rest)) = input.split_first() {
                self.skip_lf = false;
                if first == b'\n' {
                    self.push_raw(b"\n")?;
                    self.line_start = self.raw.len();
                    input = rest;
                }
                if self.pending {
                    self.pending = false;
                    out.push(self.take_event(true));
                }
            }
        }
        while !input.is_empty() {
            let Some(i) = input.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.push_raw(input)?;
                break;
            };
            let mut end = i + 1;
            if input[i] == b'\r' {
                match input.get(i + 1) {
                    Some(b'\n') => end += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let content_end = self.raw.len() + i;
            self.push_raw(&input[..end])?;
            self.line(content_end, out)?;
            input = &input[end..];
        }
        Ok(())
    }

    /// Ends the input: returns the unterminated rest as an event, if any.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.skip_lf = false;
        if self.pending {
            self.pending = false;
            return Ok(Some(self.take_event(true)));
        }
        if self.raw.is_empty() {
            return Ok(None);
        }
        if self.line_start < self.raw.len() {
            let end = self.raw.len();
            let mut none = Vec::new();
            self.line(end, &mut none)?;
        }
        Ok(Some(self.take_event(false)))
    }

    fn push_raw(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.raw.len() + bytes.len() > self.limit {
            return Err(SseError::TooLarge { limit: self.limit });
        }
        self.raw.extend_from_slice(bytes);
        Ok(())
    }

    fn take_event(&mut self, terminated: bool) -> SseEvent {
        self.line_start = 0;
        SseEvent {
            event: self.event.take(),
            data: self.data.take(),
            id: self.id.take(),
            raw: std::mem::take(&mut self.raw),
            terminated,
        }
    }

    /// Handles the line `raw[line_start..content_end]`, whose terminator is
    /// already in `raw`.
    fn line(&mut self, content_end: usize, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut line = &self.raw[self.line_start..content_end];
        if self.first_line {
            self.first_line = false;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            if self.skip_lf {
                self.pending = true;
            } else {
                out.push(self.take_event(true));
            }
            return Ok(());
        }
        let next_start = self.raw.len();
        if line[0] != b':' {
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(c) => {
                    let v = &line[c + 1..];
                    (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &b""[..]),
            };
            match name {
                b"event" => self.event = Some(utf8(value, "event")?.to_owned()),
                b"data" => {
                    let v = utf8(value, "data")?;
                    match &mut self.data {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(v);
                        }
                        None => self.data = Some(v.to_owned()),
                    }
                }
                b"id" if !value.contains(&0) => self.id = Some(utf8(value, "id")?.to_owned()),
                _ => {}
            }
        }
        self.line_start = next_start;
        Ok(())
    }
}

fn utf8<'a>(bytes: &'a [u8], field: &'static str) -> Result<&'a str, SseError> {
    std::str::from_utf8(bytes).map_err(|_| SseError::InvalidUtf8 { field })
}

/// Writes an SSE event: an `event:` line, one `data:` line per line of
/// `data`, a blank line.
pub(crate) fn write_event(out: &mut Vec<u8>, name: Option<&str>, data: &str) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    let bytes = data.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i <= bytes.len() {
        let end_of_line = i == bytes.len() || bytes[i] == b'\n' || bytes[i] == b'\r';
        if end_of_line {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&bytes[start..i]);
            out.push(b'\n');
            if i + 1 < bytes.len() && bytes[i] == b'\r' && bytes[i + 1] == b'\n' {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    out.push(b'\n');
}
