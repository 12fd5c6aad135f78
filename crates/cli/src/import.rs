//! `stackbill usage import`: files of usage records into the database.
//!
//! A reader thread parses and validates records and hands them over in batches; each batch
//! is one transaction, committed and synced before the next is counted. Memory is bounded by
//! two batches in flight, whatever the file's size. An interrupted import is safe to run
//! again: what was committed comes back as duplicates, the rest is accepted.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use stackbill_core::{IngestTally, Rejection};
use stackbill_io::{Format, Item, ReadError, ReadRecords, read_usage};
use stackbill_store::Store;

use crate::admin;
use crate::cli::ImportArgs;
use crate::output::outln;

/// Batches parsed ahead of the writer.
const BATCHES_IN_FLIGHT: usize = 2;

/// One rejected or conflicting record, as written to `--errors`.
#[derive(Debug, Serialize)]
struct ErrorLine<'a> {
    file: &'a str,
    index: u64,
    id: Option<&'a str>,
    code: &'a str,
    target: &'a str,
    message: &'a str,
}

/// A batch of records read from one file.
#[derive(Default)]
struct Batch {
    /// The records and the rejections.
    read: ReadRecords,
    /// Bytes read so far from the file.
    bytes_read: u64,
}

/// The summary printed at the end, and with `--json`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) records: u64,
    pub(crate) accepted: u64,
    pub(crate) duplicates: u64,
    pub(crate) conflicts: u64,
    pub(crate) rejected: u64,
    pub(crate) seconds: f64,
}

impl Summary {
    fn add(&mut self, tally: &IngestTally) {
        self.records += tally.records();
        self.accepted += tally.accepted;
        self.duplicates += tally.duplicates;
        self.conflicts += tally.conflicts.len() as u64;
        self.rejected += tally.rejected.len() as u64;
    }
}

/// Where rejections and conflicts are listed, if anywhere.
pub(crate) struct Errors {
    pub(crate) out: Option<BufWriter<File>>,
}

impl Errors {
    fn write(&mut self, file: &str, rejection: &Rejection) -> Result<()> {
        if let Some(out) = &mut self.out {
            serde_json::to_writer(
                &mut *out,
                &ErrorLine {
                    file,
                    index: rejection.index,
                    id: rejection.id.as_deref(),
                    code: rejection.error.code.as_str(),
                    target: &rejection.error.target,
                    message: &rejection.error.message,
                },
            )?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        if let Some(out) = self.out {
            let file = out.into_inner().map_err(|err| err.into_error())?;
            file.sync_all()?;
        }
        Ok(())
    }
}

/// Counts the bytes a reader hands out, for progress.
struct Counting<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn format_of(path: &Path, given: Option<Format>) -> Result<Format> {
    if let Some(format) = given {
        return Ok(format);
    }
    if path == Path::new("-") {
        return Ok(Format::Ndjson);
    }
    Format::from_path(path).with_context(|| {
        format!(
            "cannot tell the format of {} from its name; pass --format ndjson|json|csv",
            path.display()
        )
    })
}

fn open_input(path: &Path) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((Box::new(std::io::stdin()), None));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().ok().map(|m| m.len());
    Ok((Box::new(file), size))
}

/// Reads one file into batches on the calling (blocking) thread.
fn read_batches(
    reader: Box<dyn Read + Send>,
    format: Format,
    batch_records: usize,
    sender: &tokio::sync::mpsc::Sender<Batch>,
) -> Result<(), ReadError<&'static str>> {
    let bytes = Arc::new(AtomicU64::new(0));
    let counting = BufReader::with_capacity(
        1 << 20,
        Counting {
            inner: reader,
            bytes: Arc::clone(&bytes),
        },
    );
    let mut batch = Batch::default();
    let mut now = jiff::Timestamp::now();
    let mut sink = |item: Item| -> Result<(), &'static str> {
        batch.read.push(item, now);
        if batch.read.len() >= batch_records {
            batch.bytes_read = bytes.load(Ordering::Relaxed);
            sender
                .blocking_send(std::mem::take(&mut batch))
                .map_err(|_| "the writer stopped")?;
            now = jiff::Timestamp::now();
        }
        Ok(())
    };
    read_usage(counting, format, &mut sink)?;
    batch.bytes_read = bytes.load(Ordering::Relaxed);
    sender
        .blocking_send(batch)
        .map_err(|_| ReadError::Sink("the writer stopped"))?;
    Ok(())
}

fn progress_bar(json: bool, total_bytes: Option<u64>) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::stderr_with_hz(4));
    let template = if total_bytes.is_some() {
        "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}"
    } else {
        "{spinner} {elapsed_precise} {bytes} {binary_bytes_per_sec} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// One input to import.
pub(crate) struct Source {
    /// Its name in messages and in the errors file.
    pub(crate) name: String,
    /// Its bytes.
    pub(crate) reader: Box<dyn Read + Send>,
    /// Its size, when known, for the progress bar.
    pub(crate) size: Option<u64>,
    /// Its format.
    pub(crate) format: Format,
}

/// How to import.
pub(crate) struct Settings {
    /// Records per transaction.
    pub(crate) batch_records: u64,
    /// Whether progress is drawn (on a terminal, without `--json`).
    pub(crate) quiet: bool,
}

async fn import_file(
    store: &Store,
    path: &Path,
    args: &ImportArgs,
    summary: &mut Summary,
    errors: &mut Errors,
    started: Instant,
) -> Result<()> {
    let format = format_of(path, args.format)?;
    let (reader, size) = open_input(path)?;
    let source = Source {
        name: path.display().to_string(),
        reader,
        size,
        format,
    };
    let settings = Settings {
        batch_records: args.batch_records,
        quiet: args.json,
    };
    import_source(store, source, &settings, summary, errors, started).await
}

/// Imports one source, adding to `summary` and writing to `errors`.
pub(crate) async fn import_source(
    store: &Store,
    source: Source,
    settings: &Settings,
    summary: &mut Summary,
    errors: &mut Errors,
    started: Instant,
) -> Result<()> {
    let Source {
        name,
        reader,
        size,
        format,
    } = source;
    let bar = progress_bar(settings.quiet, size);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Batch>(BATCHES_IN_FLIGHT);
    let batch_records = usize::try_from(settings.batch_records).unwrap_or(usize::MAX);
    let reading =
        tokio::task::spawn_blocking(move || read_batches(reader, format, batch_records, &sender));
    while let Some(batch) = receiver.recv().await {
        let Batch { read, bytes_read } = batch;
        let ReadRecords {
            positions,
            records,
            rejected,
        } = read;
        let (records, dispositions) = store.ingest_returning(records).await?;
        let mut tally = IngestTally {
            rejected,
            ..IngestTally::default()
        };
        tally.record_batch(&positions, records.iter().map(|r| &r.id), dispositions);
        // The batch is stored; a failure to count its refusals is logged, not fatal.
        if let Err(error) = store.count_rejections(None, tally.refused_by_code()).await {
            tracing::warn!(%error, "cannot count the refused records");
        }
        let mut refused: Vec<&Rejection> = tally.conflicts.iter().chain(&tally.rejected).collect();
        refused.sort_by_key(|rejection| rejection.index);
        for rejection in refused {
            errors.write(&name, rejection)?;
        }
        summary.add(&tally);
        if bytes_read > 0 {
            bar.set_position(bytes_read);
        }
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{} records, {:.0} records/s",
            summary.records,
            summary.records as f64 / seconds
        ));
    }
    bar.finish_and_clear();
    match reading.await? {
        Ok(()) => Ok(()),
        Err(ReadError::Io(err)) => Err(err).with_context(|| format!("cannot read {name}")),
        Err(ReadError::Sink(why)) => bail!("import of {name} stopped: {why}"),
        Err(ReadError::Input(why)) => bail!("cannot import {name}: {why}"),
    }
}

pub(crate) async fn run(args: ImportArgs) -> Result<()> {
    let store = admin::open(&args.db)?;
    let mut errors = Errors {
        out: match &args.errors {
            Some(path) => {
                Some(BufWriter::new(File::create(path).with_context(|| {
                    format!("cannot create {}", path.display())
                })?))
            }
            None => None,
        },
    };
    let started = Instant::now();
    let mut summary = Summary::default();
    let files: Vec<PathBuf> = args.files.clone();
    for path in &files {
        import_file(&store, path, &args, &mut summary, &mut errors, started).await?;
    }
    errors.finish()?;
    summary.seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    if args.json {
        outln!("{}", serde_json::to_string(&summary)?)?;
    } else {
        let rate = summary.records as f64 / summary.seconds.max(1e-9);
        outln!(
            "{} records in {:.1} s ({rate:.0} records/s): {} accepted, {} duplicates, {} conflicts, {} rejected",
            summary.records,
            summary.seconds,
            summary.accepted,
            summary.duplicates,
            summary.conflicts,
            summary.rejected
        )?;
        if summary.conflicts + summary.rejected > 0 {
            match &args.errors {
                Some(path) => outln!("rejections and conflicts are listed in {}", path.display())?,
                None => outln!("pass --errors FILE to list the rejected and conflicting records")?,
            }
        }
    }
    Ok(())
}
