//! Replay of CSV and JSONL files (blocking reader thread; the writer paces).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::ProgressBar;
use log::{info, warn};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::article::Article;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// From the extension: .csv, else JSONL.
    Auto,
    Csv,
    Jsonl,
}

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub file: PathBuf,
    pub format: Format,
    pub looped: bool,
    pub limit: Option<u64>,
}

/// Raw fields of one record before cleaning.
#[derive(Default, Debug)]
pub(crate) struct Fields {
    id: Option<String>,
    title: Option<String>,
    text: Option<String>,
    link: Option<String>,
    published: Option<String>,
}

/// Result of reading one record.
pub(crate) enum Record {
    Ok(Fields),
    Bad {
        line: u64,
        reason: &'static str,
        detail: String,
    },
    /// A blank line: nothing to do.
    Blank,
}

pub fn resolve_format(cfg: &ReplayConfig) -> Format {
    match cfg.format {
        Format::Auto => {
            let ext = cfg.file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            if ext == "csv" {
                Format::Csv
            } else {
                Format::Jsonl
            }
        }
        f => f,
    }
}

/// Number of records, estimated from the line count (progress bar length).
pub fn estimate_records(path: &Path, format: Format) -> Option<u64> {
    let mut f = File::open(path).ok()?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    if last != b'\n' {
        lines += 1;
    }
    Some(if format == Format::Csv { lines.saturating_sub(1) } else { lines })
}

fn opt_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_json_line(line: &[u8], lineno: u64) -> Record {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => return Record::Bad { line: lineno, reason: "invalid_utf8", detail: e.to_string() },
    };
    let text = text.trim();
    if text.is_empty() {
        return Record::Blank;
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Record::Bad { line: lineno, reason: "invalid_json", detail: e.to_string() },
    };
    let Value::Object(map) = value else {
        return Record::Bad { line: lineno, reason: "not_an_object", detail: "the line is JSON but not an object".into() };
    };
    let first = |keys: &[&str]| keys.iter().find_map(|k| opt_string(map.get(*k)));
    Record::Ok(Fields {
        id: first(&["id"]),
        title: first(&["title"]),
        text: first(&["text", "description", "summary", "content", "body"]),
        link: first(&["link", "url"]),
        published: first(&["published", "pubDate", "date"]),
    })
}

/// Column indexes of a CSV header (case-insensitive names).
struct Columns {
    id: Option<usize>,
    title: Option<usize>,
    text: Option<usize>,
    link: Option<usize>,
    published: Option<usize>,
}

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Columns, String> {
        let names: Vec<String> = header.iter().map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase()).collect();
        let find = |keys: &[&str]| keys.iter().find_map(|k| names.iter().position(|n| n == k));
        let cols = Columns {
            id: find(&["id"]),
            title: find(&["title"]),
            text: find(&["text", "description", "summary", "content", "body"]),
            link: find(&["link", "url"]),
            published: find(&["published", "pubdate", "date"]),
        };
        if cols.title.is_none() && cols.text.is_none() {
            return Err(format!("the CSV header {names:?} has neither a title nor a text/description column"));
        }
        Ok(cols)
    }

    fn fields(&self, rec: &csv::StringRecord) -> Fields {
        let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(str::to_string);
        Fields { id: get(self.id), title: get(self.title), text: get(self.text), link: get(self.link), published: get(self.published) }
    }
}

/// Replays the file (once, or forever with `looped`), sending articles to the writer.
/// Runs on a blocking thread. Errors when the file cannot be opened or has no usable header.
pub fn run(cfg: ReplayConfig, tx: mpsc::Sender<Article>, metrics: Arc<Metrics>, progress: Option<ProgressBar>) -> Result<u64, String> {
    let format = resolve_format(&cfg);
    let source = cfg.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| cfg.file.display().to_string());
    let mut sent = 0u64;
    let mut pass = 0u64;
    loop {
        let file = File::open(&cfg.file).map_err(|e| format!("cannot open {}: {e}", cfg.file.display()))?;
        let mut emit = |rec: Record| -> Result<bool, ()> {
            match rec {
                Record::Blank => {
                    if let Some(pb) = &progress {
                        pb.inc(1);
                    }
                    Ok(true)
                }
                Record::Bad { line, reason, detail } => {
                    if pass == 0 {
                        metrics.malformed.inc(reason);
                        warn!("{source}: line {line}: skipped ({reason}): {detail}");
                        if let Some(pb) = &progress {
                            pb.inc(1);
                        }
                    }
                    Ok(true)
                }
                Record::Ok(f) => {
                    if tx.blocking_send(article_of(f, &source, pass)).is_err() {
                        return Err(());
                    }
                    sent += 1;
                    Ok(cfg.limit.is_none_or(|l| sent < l))
                }
            }
        };
        let keep_going = match format {
            Format::Csv => replay_csv(file, &mut emit, &source)?,
            _ => replay_jsonl(file, &mut emit),
        };
        if !keep_going || !cfg.looped {
            break;
        }
        pass += 1;
        info!("{source}: pass {pass} done, starting over (--loop)");
    }
    Ok(sent)
}

/// The article of a record, in pass `pass` of the file (ids stay unique across passes of --loop).
pub(crate) fn article_of(f: Fields, source: &str, pass: u64) -> Article {
    let title = f.title.unwrap_or_default();
    let text = f.text.unwrap_or_default();
    let raw_id = f.id.filter(|s| !s.trim().is_empty()).map(|id| if pass == 0 { id } else { format!("{}~{pass}", id.trim()) });
    let mut article = Article::build(&[raw_id.as_deref()], &title, &text, f.link.as_deref(), source, f.published.as_deref());
    if raw_id.is_none() && pass > 0 {
        article.id = crate::article::sanitize_id(&format!("{}~{pass}", article.id));
    }
    article
}

/// Marks records without title and text as malformed ("empty") before they reach `emit`.
fn check_empty(f: Fields, line: u64) -> Record {
    let blank = |o: &Option<String>| o.as_deref().map(crate::article::clean_text).is_none_or(|s| s.is_empty());
    if blank(&f.title) && blank(&f.text) {
        Record::Bad { line, reason: "empty", detail: "no title and no text".into() }
    } else {
        Record::Ok(f)
    }
}

/// Feeds every JSONL record to `emit`; false when `emit` asked to stop.
pub(crate) fn replay_jsonl(file: impl Read, emit: &mut dyn FnMut(Record) -> Result<bool, ()>) -> bool {
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut lineno = 0u64;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                warn!("read error after line {lineno}: {e}");
                return true;
            }
        }
        lineno += 1;
        let rec = match parse_json_line(&buf, lineno) {
            Record::Ok(f) => check_empty(f, lineno),
            other => other,
        };
        match emit(rec) {
            Ok(true) => {}
            _ => return false,
        }
    }
}

/// Feeds every CSV record to `emit`; false when `emit` asked to stop.
pub(crate) fn replay_csv(file: impl Read, emit: &mut dyn FnMut(Record) -> Result<bool, ()>, source: &str) -> Result<bool, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(BufReader::new(file));
    let header = reader.headers().map_err(|e| format!("{source}: cannot read the CSV header: {e}"))?.clone();
    let cols = Columns::from_header(&header).map_err(|e| format!("{source}: {e}"))?;
    let mut rec = csv::ByteRecord::new();
    loop {
        let line = reader.position().line() + 1;
        let r = match reader.read_byte_record(&mut rec) {
            Ok(false) => return Ok(true),
            Ok(true) => {
                let line = rec.position().map(|p| p.line()).unwrap_or(line);
                match csv::StringRecord::from_byte_record(rec.clone()) {
                    Ok(s) => check_empty(cols.fields(&s), line),
                    Err(e) => Record::Bad { line, reason: "invalid_utf8", detail: e.to_string() },
                }
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                let fatal = e.is_io_error();
                let r = Record::Bad { line, reason: "invalid_csv", detail: e.to_string() };
                if fatal {
                    let _ = emit(r);
                    return Ok(true);
                }
                r
            }
        };
        match emit(r) {
            Ok(true) => {}
            _ => return Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines() {
        match parse_json_line(br#"{"title":"T","text":"B","label":2,"id":17}"#, 1) {
            Record::Ok(f) => {
                assert_eq!(f.id.as_deref(), Some("17"));
                assert_eq!(f.title.as_deref(), Some("T"));
                assert_eq!(f.text.as_deref(), Some("B"));
            }
            _ => panic!("expected a record"),
        }
        assert!(matches!(parse_json_line(b"{oops", 3), Record::Bad { line: 3, reason: "invalid_json", .. }));
        assert!(matches!(parse_json_line(b"[1,2]", 4), Record::Bad { reason: "not_an_object", .. }));
        assert!(matches!(parse_json_line(b"   \r", 5), Record::Blank));
        assert!(matches!(parse_json_line(b"\xff\xfe", 6), Record::Bad { reason: "invalid_utf8", .. }));
    }
}
