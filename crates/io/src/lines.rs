//! Physical lines of an input, read with a bound on their length: a line longer than the
//! bound is skipped to its end and reported, never held whole in memory. A UTF-8
//! byte-order mark at the start of the input is dropped.

use std::io::{self, BufRead};

/// The UTF-8 byte-order mark some tools write at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the last call to [`Lines::next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line, in [`Lines::text`] (with its `\n`, if it had one).
    Text,
    /// A line longer than the bound; its text is not kept.
    TooLong,
    /// The end of the input.
    End,
}

/// Reads the lines of `reader`, each at most `cap` bytes.
pub(crate) struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    cap: usize,
    first: bool,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(reader: R, cap: usize) -> Self {
        Self {
            reader,
            buf: Vec::with_capacity(1024),
            cap,
            first: true,
        }
    }

    /// The text of the last line read.
    pub(crate) fn text(&self) -> &[u8] {
        &self.buf
    }

    /// Reads the next line.
    pub(crate) fn next(&mut self) -> io::Result<Line> {
        if std::mem::take(&mut self.first) {
            skip_bom(&mut self.reader)?;
        }
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                return Ok(match (any, too_long) {
                    (false, _) => Line::End,
                    (true, true) => Line::TooLong,
                    (true, false) => Line::Text,
                });
            }
            any = true;
            let end = memchr::memchr(b'\n', available);
            let chunk = end.map_or(available, |at| &available[..=at]);
            let len = chunk.len();
            if !too_long {
                if self.buf.len() + len > self.cap {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            self.reader.consume(len);
            if end.is_some() {
                return Ok(if too_long { Line::TooLong } else { Line::Text });
            }
        }
    }
}

/// Drops a UTF-8 byte-order mark at the reader's position, if there is one.
pub(crate) fn skip_bom<R: BufRead>(reader: &mut R) -> io::Result<()> {
    if reader.fill_buf()?.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], cap: usize) -> Vec<(Line, Vec<u8>)> {
        // A tiny buffer, so that lines cross buffer boundaries.
        let mut lines = Lines::new(io::BufReader::with_capacity(4, input), cap);
        let mut out = Vec::new();
        loop {
            let line = lines.next().unwrap();
            if line == Line::End {
                return out;
            }
            out.push((line, lines.text().to_vec()));
        }
    }

    #[test]
    fn lines_are_bounded_and_a_bom_is_dropped() {
        let input = b"\xEF\xBB\xBFab\n0123456789abc\ncd";
        assert_eq!(
            all(input, 8),
            [
                (Line::Text, b"ab\n".to_vec()),
                (Line::TooLong, Vec::new()),
                (Line::Text, b"cd".to_vec()),
            ]
        );
        assert_eq!(all(b"", 8), []);
    }
}
