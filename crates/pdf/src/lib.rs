//! Documents as PDF: a header with the parties, a table paginated with a continuation header
//! on every further page, totals and notes. The text is real text in an embedded (subset)
//! font, so it can be selected, searched and extracted.
//!
//! This crate knows nothing of billing: callers give it the strings to print. The same
//! [`Document`] always renders to the same bytes (no clock, no randomness), which is what
//! makes a final invoice's PDF byte-for-byte reproducible.

use std::fmt::Write as _;

use krilla::Document as PdfDocument;
use krilla::color::luma;
use krilla::geom::{PathBuilder, Point, Transform};
use krilla::metadata::{DateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use skrifa::MetadataProvider;
use skrifa::instance::{LocationRef, Size};

/// A document to render.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// The big word at the top ("Invoice").
    pub title: String,
    /// What the continuation header of every further page names ("Invoice CT-2025-000001").
    pub reference: String,
    /// A word printed across every page and in every page's header ("DRAFT").
    pub mark: Option<String>,
    /// Label and value pairs at the top right (number, status, period, dates).
    pub facts: Vec<(String, String)>,
    /// The parties, side by side under the title (issuer, then addressee).
    pub parties: Vec<Party>,
    /// The table's columns; their widths add up to at most the text width (499 pt).
    pub columns: Vec<Column>,
    /// The table's rows, in order.
    pub rows: Vec<Row>,
    /// The totals under the table, label and value.
    pub totals: Vec<TotalRow>,
    /// Small print at the end.
    pub notes: Vec<String>,
    /// The PDF's own metadata.
    pub info: Info,
}

/// One party's block.
#[derive(Debug, Clone, Default)]
pub struct Party {
    /// What it is ("From", "Bill to").
    pub heading: String,
    /// Its lines; the first is printed bold.
    pub lines: Vec<String>,
}

/// A table column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its heading.
    pub title: String,
    /// Its width in points.
    pub width: f32,
    /// Numbers go right.
    pub align: Align,
}

/// How a column's text sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Flush left.
    Left,
    /// Flush right.
    Right,
}

/// A table row.
#[derive(Debug, Clone)]
pub enum Row {
    /// A heading across the table.
    Section(String),
    /// One cell per column.
    Cells(Vec<String>),
}

/// A line of the totals.
#[derive(Debug, Clone)]
pub struct TotalRow {
    /// Its label.
    pub label: String,
    /// Its amount.
    pub value: String,
    /// Printed bold, with a rule above (the amount due).
    pub strong: bool,
}

/// The PDF's metadata.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// The document title.
    pub title: String,
    /// Who issued it.
    pub author: String,
    /// When it was made (UTC); none for documents that are not final.
    pub created: Option<Created>,
}

/// A UTC instant, for the metadata.
#[derive(Debug, Clone, Copy)]
pub struct Created {
    /// Year.
    pub year: u16,
    /// Month, 1-12.
    pub month: u8,
    /// Day, 1-31.
    pub day: u8,
    /// Hour.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
}

/// Why a document could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The embedded font could not be read (a build defect).
    #[error("the embedded font cannot be read")]
    Font,
    /// The PDF writer refused the document.
    #[error("the PDF cannot be written: {0}")]
    Pdf(String),
}

const REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSansCondensed.ttf");
const BOLD: &[u8] = include_bytes!("../fonts/DejaVuSansCondensed-Bold.ttf");

/// A4, in points.
const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN: f32 = 48.0;
/// The width text may take.
pub const TEXT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN;
const ROW: f32 = 15.0;
const BODY: f32 = 9.0;
const SMALL: f32 = 7.5;
/// Where the table stops on every page (the footer is below).
const TABLE_BOTTOM: f32 = PAGE_HEIGHT - 64.0;
/// Where the table starts on a continuation page.
const CONTINUATION_TOP: f32 = 104.0;

/// A font with what measuring its text needs.
#[derive(Clone)]
struct Face {
    font: Font,
    data: &'static [u8],
}

impl Face {
    fn new(data: &'static [u8]) -> Result<Self, RenderError> {
        let font = Font::new(data.into(), 0).ok_or(RenderError::Font)?;
        skrifa::FontRef::new(data).map_err(|_| RenderError::Font)?;
        Ok(Self { font, data })
    }

    /// The advance width of `text` at `size`.
    fn width(&self, text: &str, size: f32) -> f32 {
        let Ok(font) = skrifa::FontRef::new(self.data) else {
            return 0.0;
        };
        let charmap = font.charmap();
        let metrics = font.glyph_metrics(Size::new(size), LocationRef::default());
        text.chars()
            .map(|c| {
                (charmap.map(c))
                    .and_then(|glyph| metrics.advance_width(glyph))
                    .unwrap_or(size * 0.5)
            })
            .sum()
    }

    /// `text`, shortened with an ellipsis to fit `width`.
    fn fit(&self, text: &str, size: f32, width: f32) -> String {
        if self.width(text, size) <= width {
            return text.to_owned();
        }
        let mut out: String = text.to_owned();
        while !out.is_empty() && self.width(&format!("{out}…"), size) > width {
            out.pop();
        }
        format!("{}…", out.trim_end())
    }
}

struct Pen<'a, 'b> {
    surface: &'a mut Surface<'b>,
    regular: &'a Face,
    bold: &'a Face,
}

impl Pen<'_, '_> {
    fn text(&mut self, x: f32, y: f32, text: &str, size: f32, bold: bool) {
        self.glyphs(x, y, text, size, bold, false);
    }

    /// Text, or (`outlined`) its glyphs' shapes, which text extraction does not read.
    fn glyphs(&mut self, x: f32, y: f32, text: &str, size: f32, bold: bool, outlined: bool) {
        let face = if bold { self.bold } else { self.regular };
        self.surface.draw_text(
            Point::from_xy(x, y),
            face.font.clone(),
            size,
            text,
            outlined,
            TextDirection::LeftToRight,
        );
    }

    fn right(&mut self, right: f32, y: f32, text: &str, size: f32, bold: bool) {
        let face = if bold { self.bold } else { self.regular };
        let width = face.width(text, size);
        self.text(right - width, y, text, size, bold);
    }

    fn rule(&mut self, x1: f32, x2: f32, y: f32, width: f32) {
        let mut path = PathBuilder::new();
        path.move_to(x1, y);
        path.line_to(x2, y);
        if let Some(path) = path.finish() {
            self.surface.set_fill(None);
            self.surface.set_stroke(Some(Stroke {
                paint: luma::Color::new(120).into(),
                width,
                ..Default::default()
            }));
            self.surface.draw_path(&path);
            self.surface.set_stroke(None);
            self.surface.set_fill(Some(Fill::default()));
        }
    }

    /// A big, light word across the page, drawn as shapes: the page's header and footer
    /// carry it as text.
    fn mark(&mut self, word: &str) {
        let size = 110.0;
        let width = self.bold.width(word, size);
        self.surface.push_transform(&Transform::from_rotate_at(
            -35.0,
            PAGE_WIDTH / 2.0,
            PAGE_HEIGHT / 2.0,
        ));
        self.surface.set_fill(Some(Fill {
            paint: luma::Color::new(200).into(),
            opacity: NormalizedF32::new(0.45).unwrap_or(NormalizedF32::ONE),
            rule: Default::default(),
        }));
        self.glyphs(
            (PAGE_WIDTH - width) / 2.0,
            PAGE_HEIGHT / 2.0 + size / 3.0,
            word,
            size,
            true,
            true,
        );
        self.surface.set_fill(Some(Fill::default()));
        self.surface.pop();
    }
}

/// Which rows go on which page (the totals follow the last), and where the first page's
/// table starts.
struct Layout {
    pages: Vec<std::ops::Range<usize>>,
    table_top_first: f32,
}

/// Where the parties' blocks start on the first page: under the facts.
fn parties_top(document: &Document) -> f32 {
    (MARGIN + 6.0 + document.facts.len() as f32 * 12.0 + 16.0).max(150.0)
}

fn layout(document: &Document, regular: &Face) -> Layout {
    let party_lines = document
        .parties
        .iter()
        .map(|p| p.lines.len() + 1)
        .max()
        .unwrap_or(0);
    let table_top_first = parties_top(document) + party_lines as f32 * 12.0 + 24.0;
    let note_lines: usize = (document.notes.iter())
        .map(|note| wrap(regular, note, SMALL, TEXT_WIDTH).len())
        .sum();
    let totals_height =
        (document.totals.len() as f32 + 1.0) * ROW + note_lines as f32 * 11.0 + 24.0;
    let mut pages = Vec::new();
    let mut start = 0;
    let mut y = table_top_first + ROW;
    for index in 0..document.rows.len() {
        if y + ROW > TABLE_BOTTOM {
            pages.push(start..index);
            start = index;
            y = CONTINUATION_TOP + ROW;
        }
        y += ROW;
    }
    pages.push(start..document.rows.len());
    if y + totals_height > TABLE_BOTTOM {
        // The totals need a page of their own (with the table's header repeated, empty).
        let end = document.rows.len();
        pages.push(end..end);
    }
    Layout {
        pages,
        table_top_first,
    }
}

/// Renders `document` as PDF bytes; the same document gives the same bytes.
pub fn render(document: &Document) -> Result<Vec<u8>, RenderError> {
    let regular = Face::new(REGULAR)?;
    let bold = Face::new(BOLD)?;
    let Layout {
        pages,
        table_top_first,
    } = layout(document, &regular);
    let mut pdf = PdfDocument::new();
    let mut metadata = Metadata::new()
        .title(document.info.title.clone())
        .creator("stackbill".to_owned())
        .producer("stackbill".to_owned())
        .language("en".to_owned());
    if !document.info.author.is_empty() {
        metadata = metadata.authors(vec![document.info.author.clone()]);
    }
    if let Some(c) = document.info.created {
        metadata = metadata.creation_date(
            DateTime::new(c.year)
                .month(c.month)
                .day(c.day)
                .hour(c.hour)
                .minute(c.minute)
                .second(c.second)
                .utc_offset_hour(0)
                .utc_offset_minute(0),
        );
    }
    pdf.set_metadata(metadata);
    let count = pages.len();
    for (number, rows) in pages.iter().enumerate() {
        let settings = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT)
            .ok_or_else(|| RenderError::Pdf("page size".to_owned()))?;
        let mut page = pdf.start_page_with(settings);
        let mut surface = page.surface();
        let mut pen = Pen {
            surface: &mut surface,
            regular: &regular,
            bold: &bold,
        };
        if let Some(mark) = &document.mark {
            pen.mark(mark);
        }
        let top = if number == 0 {
            first_page_header(&mut pen, document);
            table_top_first
        } else {
            let mut heading = format!("{} (continued)", document.reference);
            if let Some(mark) = &document.mark {
                let _ = write!(heading, " · {mark}");
            }
            pen.text(MARGIN, MARGIN + 8.0, &heading, 11.0, true);
            pen.rule(MARGIN, PAGE_WIDTH - MARGIN, MARGIN + 18.0, 0.5);
            CONTINUATION_TOP
        };
        let end = table(&mut pen, document, rows.clone(), top);
        if number + 1 == count {
            totals(&mut pen, document, end + 6.0);
        }
        let footer = format!("{} · page {} of {count}", document.reference, number + 1);
        pen.rule(MARGIN, PAGE_WIDTH - MARGIN, PAGE_HEIGHT - 48.0, 0.5);
        pen.text(MARGIN, PAGE_HEIGHT - 36.0, &footer, SMALL, false);
        if let Some(mark) = &document.mark {
            pen.right(PAGE_WIDTH - MARGIN, PAGE_HEIGHT - 36.0, mark, SMALL, true);
        }
        surface.finish();
        page.finish();
    }
    pdf.finish()
        .map_err(|err| RenderError::Pdf(format!("{err:?}")))
}

fn first_page_header(pen: &mut Pen<'_, '_>, document: &Document) {
    let mut title = document.title.clone();
    if let Some(mark) = &document.mark {
        let _ = write!(title, " · {mark}");
    }
    pen.text(MARGIN, MARGIN + 20.0, &title, 20.0, true);
    let label_x = PAGE_WIDTH - MARGIN - 270.0;
    let mut y = MARGIN + 6.0;
    for (label, value) in &document.facts {
        pen.text(label_x, y, label, BODY, true);
        let value = pen.regular.fit(value, BODY, 200.0);
        pen.right(PAGE_WIDTH - MARGIN, y, &value, BODY, false);
        y += 12.0;
    }
    let column = TEXT_WIDTH / document.parties.len().max(1) as f32;
    for (index, party) in document.parties.iter().enumerate() {
        let x = MARGIN + column * index as f32;
        let mut y = parties_top(document);
        pen.text(x, y, &party.heading.to_uppercase(), SMALL, true);
        y += 12.0;
        for (line_number, line) in party.lines.iter().enumerate() {
            let bold = line_number == 0;
            let face = if bold { pen.bold } else { pen.regular };
            let line = face.fit(line, BODY, column - 12.0);
            pen.text(x, y, &line, BODY, bold);
            y += 12.0;
        }
    }
}

/// Draws the table's header and `rows` from `top`; answers where the table ends.
fn table(
    pen: &mut Pen<'_, '_>,
    document: &Document,
    rows: std::ops::Range<usize>,
    top: f32,
) -> f32 {
    let mut y = top;
    let mut x = MARGIN;
    for column in &document.columns {
        cell(pen, x, y, column, &column.title, true);
        x += column.width;
    }
    pen.rule(MARGIN, PAGE_WIDTH - MARGIN, y + 4.0, 0.8);
    y += ROW;
    for row in &document.rows[rows] {
        match row {
            Row::Section(title) => pen.text(MARGIN, y, title, BODY, true),
            Row::Cells(cells) => {
                let mut x = MARGIN;
                for (column, text) in document.columns.iter().zip(cells) {
                    cell(pen, x, y, column, text, false);
                    x += column.width;
                }
            }
        }
        y += ROW;
    }
    y
}

/// A cell's text: words are shortened with an ellipsis to fit, numbers (flush right) are
/// never shortened but set smaller when they do not fit.
fn cell(pen: &mut Pen<'_, '_>, x: f32, y: f32, column: &Column, text: &str, bold: bool) {
    let face = if bold { pen.bold } else { pen.regular };
    let room = column.width - 8.0;
    match column.align {
        Align::Left => {
            // A left-aligned column after another keeps clear of the numbers before it.
            let pad = if x > MARGIN { 8.0 } else { 0.0 };
            let text = face.fit(text, BODY, room);
            pen.text(x + pad, y, &text, BODY, bold);
        }
        Align::Right => {
            let width = face.width(text, BODY);
            let size = if width > room {
                BODY * room / width
            } else {
                BODY
            };
            pen.right(x + column.width, y, text, size, bold);
        }
    }
}

fn totals(pen: &mut Pen<'_, '_>, document: &Document, top: f32) {
    let label_x = PAGE_WIDTH - MARGIN - 230.0;
    let mut y = top + 4.0;
    for total in &document.totals {
        if total.strong {
            pen.rule(label_x, PAGE_WIDTH - MARGIN, y - 10.0, 0.8);
        }
        pen.text(label_x, y, &total.label, BODY, total.strong);
        pen.right(PAGE_WIDTH - MARGIN, y, &total.value, BODY, total.strong);
        y += ROW;
    }
    y += 12.0;
    for note in &document.notes {
        for line in wrap(pen.regular, note, SMALL, TEXT_WIDTH) {
            pen.text(MARGIN, y, &line, SMALL, false);
            y += 11.0;
        }
    }
}

/// `text` broken into lines at spaces so that each fits `width`.
fn wrap(face: &Face, text: &str, size: f32, width: f32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if face.width(&candidate, size) > width && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            line = word.to_owned();
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;

    fn document(rows: usize, mark: Option<&str>) -> Document {
        Document {
            title: "Invoice".into(),
            reference: "Invoice T-2025-000001".into(),
            mark: mark.map(str::to_owned),
            facts: vec![("Status".into(), "Final".into())],
            parties: vec![Party {
                heading: "Bill to".into(),
                lines: vec!["Northwind".into()],
            }],
            columns: vec![
                Column {
                    title: "Description".into(),
                    width: 300.0,
                    align: Align::Left,
                },
                Column {
                    title: "Amount".into(),
                    width: 60.0,
                    align: Align::Right,
                },
            ],
            rows: (0..rows)
                .map(|n| Row::Cells(vec![format!("line {n}"), "1.00".into()]))
                .collect(),
            totals: vec![TotalRow {
                label: "Total".into(),
                value: format!("{rows}.00"),
                strong: true,
            }],
            notes: vec!["Small print.".into()],
            info: Info {
                title: "Invoice".into(),
                author: "Contoso".into(),
                created: Some(Created {
                    year: 2025,
                    month: 6,
                    day: 1,
                    hour: 0,
                    minute: 0,
                    second: 0,
                }),
            },
        }
    }

    fn pages(document: &Document) -> Vec<usize> {
        let face = Face::new(REGULAR).unwrap();
        layout(document, &face)
            .pages
            .iter()
            .map(|p| p.len())
            .collect()
    }

    #[test]
    fn the_same_document_gives_the_same_bytes() {
        let one = render(&document(10, None)).unwrap();
        assert!(one.starts_with(b"%PDF-"));
        assert_eq!(one, render(&document(10, None)).unwrap());
        assert_ne!(one, render(&document(11, None)).unwrap());
    }

    #[test]
    fn rows_run_over_pages_of_about_forty() {
        assert_eq!(pages(&document(5, Some("DRAFT"))), [5]);
        let sizes = pages(&document(100, None));
        assert_eq!(sizes.len(), 3, "{sizes:?}");
        assert!((38..=46).contains(&sizes[1]), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 100);
    }

    #[test]
    fn words_are_shortened_and_wrapped_to_fit() {
        let face = Face::new(REGULAR).unwrap();
        let short = face.fit("a rather long description of a meter", BODY, 60.0);
        assert!(
            short.ends_with('…') && face.width(&short, BODY) <= 60.0,
            "{short}"
        );
        let lines = wrap(&face, "one two three four five six", BODY, 40.0);
        assert!(lines.len() > 1 && lines.join(" ") == "one two three four five six");
    }
}
