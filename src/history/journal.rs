//! The history's file (`history.path`): an append-only journal, one record per transition,
//! each `[length u32][CRC-32 u32][payload]` and synced to disk before the next. A crash mid-write
//! (kill -9, power loss) leaves at most one torn record at the end: reading stops at the last
//! whole record, warns, and cuts the file there, so the file is never corrupt for the next
//! append. A damaged record inside the file (a flipped bit) is skipped: reading resumes at the
//! next whole record. A failed append (a full disk) is cut off again at once, so the records
//! after it stay readable. When the file holds twice the records the history keeps, it is
//! rewritten (a new file renamed over the old one, so a crash then leaves one or the other
//! whole).

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::mpsc,
    time::{Duration, SystemTime},
};

use crate::core::scoring::{Code, Status, Subsystem};

use super::transition::Transition;

/// The first bytes of a journal, naming its format: format 2 names subsystems by key.
const MAGIC: &[u8; 8] = b"HSHIST2\n";
/// Format 1 (journals written before 2026-12-03) named a subsystem by its place in the table
/// of the time, `FORMAT_1_SUBSYSTEMS`. It is read, then rewritten as format 2 before anything
/// is appended, so the table's order is free.
const MAGIC_1: &[u8; 8] = b"HSHIST1\n";
const FORMAT_1_SUBSYSTEMS: [&str; 9] = [
    "datasources",
    "caches",
    "watchers",
    "schedulers",
    "executors",
    "webServer",
    "runtime",
    "performance",
    "host",
];

/// How a journal's records name their subsystem.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Positions,
    Keys,
}

impl Format {
    fn of(bytes: &[u8]) -> Option<Self> {
        match bytes.get(..MAGIC.len())? {
            magic if magic == MAGIC => Some(Self::Keys),
            magic if magic == MAGIC_1 => Some(Self::Positions),
            _ => None,
        }
    }
}
/// No record is near this long; a longer length field is a torn or foreign record.
const MAX_RECORD: usize = 64 * 1024;

/// Appends transitions from a thread of its own, so the engine never waits on the disk.
pub struct Journal {
    records: mpsc::Sender<Transition>,
}

impl Journal {
    /// Opens (or creates) the journal at `path`: the transitions it holds, and the journal to
    /// append to, `None` (with a warning) when the file can be read but not written. `keep` is
    /// the history's `max_transitions`. An error means nothing could be read: a file that is
    /// not a journal, or that cannot be read or created.
    pub fn open(path: &Path, keep: usize) -> io::Result<(Vec<Transition>, Option<Journal>)> {
        let (transitions, records, format) = read(path)?;
        let unwritable = |error: io::Error| {
            tracing::error!(path = %path.display(), %error, "the history journal cannot be written: its transitions are restored, new ones are kept in memory only");
        };
        let file = match OpenOptions::new().append(true).open(path) {
            Ok(file) => file,
            Err(error) => {
                unwritable(error);
                return Ok((transitions, None));
            }
        };
        let (sender, receiver) = mpsc::channel();
        let mut writer = Writer {
            path: path.to_owned(),
            length: file.metadata()?.len(),
            file,
            records,
            keep,
            recent: transitions
                .iter()
                .rev()
                .take(keep)
                .rev()
                .map(encode)
                .collect(),
        };
        if format == Format::Positions {
            if let Err(error) = writer.rewrite() {
                unwritable(error);
                return Ok((transitions, None));
            }
            tracing::info!(path = %path.display(), "the history journal was rewritten in format 2");
        }
        std::thread::Builder::new()
            .name("history-journal".into())
            .spawn(move || writer.run(receiver))?;
        Ok((transitions, Some(Journal { records: sender })))
    }

    /// Queues `transition` for the file.
    pub fn append(&self, transition: &Transition) {
        if self.records.send(transition.clone()).is_err() {
            tracing::warn!(
                "the history journal's writer stopped: transitions are no longer kept on disk"
            );
        }
    }
}

/// Whether `path` can serve as the journal, changing nothing: an existing file must be a
/// journal that can be appended to; a missing one needs its directory.
pub fn check(path: &Path) -> io::Result<()> {
    match File::open(path) {
        Ok(mut file) => {
            let mut magic = [0u8; MAGIC.len()];
            if file.read_exact(&mut magic).is_err() || Format::of(&magic).is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a healthscore history journal",
                ));
            }
            OpenOptions::new().append(true).open(path).map(drop)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            match dir.map(std::fs::metadata) {
                Some(Ok(meta)) if !meta.is_dir() => Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "its directory is not a directory",
                )),
                Some(Err(error)) => Err(error),
                _ => Ok(()),
            }
        }
        Err(error) => Err(error),
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    /// The file's length after its last whole record.
    length: u64,
    /// Records in the file.
    records: usize,
    keep: usize,
    /// The newest `keep` records, encoded: what a rewrite writes.
    recent: std::collections::VecDeque<Vec<u8>>,
}

impl Writer {
    fn run(mut self, transitions: mpsc::Receiver<Transition>) {
        for transition in transitions {
            let payload = encode(&transition);
            let record = frame(&payload);
            let written = self
                .file
                .write_all(&record)
                .and_then(|()| self.file.sync_data());
            if let Err(error) = written {
                // Cut off what part of the record made it, so later records follow whole ones.
                let cut = self.file.set_len(self.length);
                tracing::warn!(path = %self.path.display(), %error, cut_off = cut.is_ok(), "cannot append to the history journal: this transition is kept in memory only");
                continue;
            }
            self.length += record.len() as u64;
            self.records += 1;
            self.recent.push_back(payload);
            if self.recent.len() > self.keep {
                self.recent.pop_front();
            }
            if self.records > self.keep.saturating_mul(2).max(16) {
                if let Err(error) = self.rewrite() {
                    tracing::warn!(path = %self.path.display(), %error, "cannot compact the history journal");
                }
            }
        }
    }

    /// Writes the kept records to a new file and renames it over the journal.
    fn rewrite(&mut self) -> io::Result<()> {
        let fresh = self.path.with_extension("compacting");
        let mut file = File::create(&fresh)?;
        file.write_all(MAGIC)?;
        for payload in &self.recent {
            file.write_all(&frame(payload))?;
        }
        file.sync_all()?;
        std::fs::rename(&fresh, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.length = self.file.metadata()?.len();
        self.records = self.recent.len();
        Ok(())
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(8 + payload.len());
    record.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    record.extend_from_slice(payload);
    record
}

/// The transitions in the file at `path` (created if missing), how many records it has and its
/// format; a damaged record is skipped and a torn tail cut off, with a warning.
fn read(path: &Path) -> io::Result<(Vec<Transition>, usize, Format)> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes)?;
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let mut file = File::create(path)?;
            file.write_all(MAGIC)?;
            file.sync_all()?;
            return Ok((Vec::new(), 0, Format::Keys));
        }
        Err(error) => return Err(error),
    }
    let Some(format) = Format::of(&bytes) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a healthscore history journal", path.display()),
        ));
    };
    let mut offset = MAGIC.len();
    let (mut transitions, mut records) = (Vec::new(), 0);
    while offset < bytes.len() {
        let Some((payload, next)) = record_at(&bytes, offset) else {
            if let Some(resume) =
                (offset + 1..bytes.len()).find(|&at| record_at(&bytes, at).is_some())
            {
                tracing::warn!(
                    path = %path.display(),
                    offset,
                    skipped_bytes = resume - offset,
                    "the history journal has a damaged record: skipping it"
                );
                offset = resume;
                continue;
            }
            tracing::warn!(
                path = %path.display(),
                offset,
                records,
                "the history journal ends in a torn record (a crash mid-write): reading up to the last whole record"
            );
            let cut = OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|file| file.set_len(offset as u64));
            if let Err(error) = cut {
                tracing::warn!(path = %path.display(), %error, "cannot cut the torn record off");
            }
            break;
        };
        records += 1;
        // A record this version cannot read (a code it does not know) is skipped, not fatal.
        transitions.extend(decode(payload, format));
        offset = next;
    }
    Ok((transitions, records, format))
}

/// The payload of the record at `offset` and where the next starts, if it is whole.
fn record_at(bytes: &[u8], offset: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(offset..offset.checked_add(8)?)?;
    let length = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if length > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(offset + 8..offset + 8 + length)?;
    (crc32fast::hash(payload) == crc).then_some((payload, offset + 8 + length))
}

/// `[at ms i64][name][from u8][to u8][score u8][added u8][removed u8]` then each code as a
/// text: a text is `[length u8][UTF-8]`, the name is the subsystem's key (empty for the
/// system). Codes and subsystems by name, so a catalog and a table that grow or reorder keep
/// old files readable.
fn encode(transition: &Transition) -> Vec<u8> {
    let millis = match transition.at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    };
    let (added, removed) = (transition.added(), transition.removed());
    let mut out = Vec::with_capacity(32 + 24 * (added.len() + removed.len()));
    out.extend_from_slice(&millis.to_le_bytes());
    push_text(&mut out, transition.name.map_or("", Subsystem::key));
    out.extend_from_slice(&[
        status_byte(transition.from),
        status_byte(transition.to),
        transition.score,
        added.len() as u8,
        removed.len().min(u8::MAX.into()) as u8,
    ]);
    for code in added.iter().chain(removed.iter().take(u8::MAX.into())) {
        push_text(&mut out, code.as_str());
    }
    out
}

/// Keys and codes are short ASCII names, far below the length byte's 255.
fn push_text(out: &mut Vec<u8>, text: &str) {
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

/// The text at the start of `bytes`, and what follows it.
fn text_at(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (&length, tail) = bytes.split_first()?;
    let text = tail.get(..usize::from(length))?;
    Some((
        std::str::from_utf8(text).ok()?,
        &tail[usize::from(length)..],
    ))
}

/// A record's transition; `None` for one this version cannot read (a code or a subsystem it
/// does not know).
fn decode(payload: &[u8], format: Format) -> Option<Transition> {
    let millis = i64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let after_time = payload.get(8..)?;
    let (name, rest) = match format {
        Format::Keys => text_at(after_time)?,
        Format::Positions => {
            let (&place, rest) = after_time.split_first()?;
            let key = match place {
                0 => "",
                n => FORMAT_1_SUBSYSTEMS.get(usize::from(n) - 1)?,
            };
            (key, rest)
        }
    };
    let name = match name {
        "" => None,
        key => Some(key.parse::<Subsystem>().ok()?),
    };
    let fixed = rest.get(..5)?;
    let (from, to) = (status(fixed[0])?, status(fixed[1])?);
    let (added, removed) = (usize::from(fixed[3]), usize::from(fixed[4]));
    let mut codes = Vec::with_capacity(added + removed);
    let mut rest = &rest[5..];
    for _ in 0..added + removed {
        let (code, tail) = text_at(rest)?;
        codes.push(code.parse::<Code>().ok()?);
        rest = tail;
    }
    let at = if millis >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(millis as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    };
    let (added, removed) = codes.split_at(added);
    Some(Transition::new(
        at,
        name,
        (from, to),
        fixed[2].into(),
        added,
        removed,
    ))
}

fn status_byte(status: Status) -> u8 {
    match status {
        Status::Healthy => 0,
        Status::Warning => 1,
        Status::Critical => 2,
    }
}

fn status(byte: u8) -> Option<Status> {
    match byte {
        0 => Some(Status::Healthy),
        1 => Some(Status::Warning),
        2 => Some(Status::Critical),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(secs: u64, to: Status) -> Transition {
        Transition::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs),
            Some(Subsystem::Datasources),
            (Status::Healthy, to),
            42,
            &[Code::DsPoolSaturated],
            &[],
        )
    }

    #[test]
    fn a_format_1_journal_is_read_and_rewritten_in_format_2() {
        let path = temp("format-1");
        // As format 1 wrote them: datasources (place 1) and host (place 9).
        let mut bytes = MAGIC_1.to_vec();
        for place in [1u8, 9] {
            let mut payload = (1_700_000_000_000i64 + i64::from(place))
                .to_le_bytes()
                .to_vec();
            payload.extend_from_slice(&[place, 0, 2, 42, 1, 0, 17]);
            payload.extend_from_slice(b"DS_POOL_SATURATED");
            bytes.extend(frame(&payload));
        }
        std::fs::write(&path, &bytes).unwrap();
        let (read_back, journal) = Journal::open(&path, 100).unwrap();
        let names: Vec<_> = read_back.iter().map(|t| t.name).collect();
        assert_eq!(names, [Some(Subsystem::Datasources), Some(Subsystem::Host)]);
        assert_eq!(read_back[0].added(), [Code::DsPoolSaturated]);
        assert!(std::fs::read(&path).unwrap().starts_with(MAGIC));
        journal.unwrap().append(&transition(9, Status::Warning));
        written(&path, 3);
        let (again, _) = Journal::open(&path, 100).unwrap();
        assert_eq!(again[..2], read_back[..]);
        assert_eq!(again[2], transition(9, Status::Warning));
    }

    #[test]
    fn every_format_1_subsystem_is_still_known() {
        for key in FORMAT_1_SUBSYSTEMS {
            assert!(key.parse::<Subsystem>().is_ok(), "{key}");
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("healthscore-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("history")
    }

    /// Waits for the writer thread to have written `records` records.
    fn written(path: &Path, records: usize) {
        for _ in 0..200 {
            if read(path).map(|(t, ..)| t.len()).unwrap_or(0) >= records {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the journal did not get {records} records");
    }

    #[test]
    fn a_reopened_journal_has_every_transition() {
        let path = temp("reopen");
        let (first, journal) = Journal::open(&path, 100).unwrap();
        let journal = journal.unwrap();
        assert!(first.is_empty());
        let kept = [
            transition(1, Status::Critical),
            transition(2, Status::Warning),
        ];
        for t in &kept {
            journal.append(t);
        }
        written(&path, 2);
        let (again, _) = Journal::open(&path, 100).unwrap();
        assert_eq!(again, kept);
    }

    #[test]
    fn a_file_cut_mid_record_is_read_to_the_last_whole_record_and_repaired() {
        let path = temp("torn");
        let journal = Journal::open(&path, 100).unwrap().1.unwrap();
        for secs in 0..3 {
            journal.append(&transition(secs, Status::Critical));
        }
        written(&path, 3);
        let length = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of the third record.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(length - 5)
            .unwrap();
        let (read_back, journal) = Journal::open(&path, 100).unwrap();
        let journal = journal.unwrap();
        assert_eq!(
            read_back,
            vec![
                transition(0, Status::Critical),
                transition(1, Status::Critical)
            ]
        );
        // The torn tail is gone: the next append follows the last whole record.
        journal.append(&transition(9, Status::Warning));
        written(&path, 3);
        let (after, _) = Journal::open(&path, 100).unwrap();
        assert_eq!(after.last(), Some(&transition(9, Status::Warning)));
        assert_eq!(after.len(), 3);
    }

    #[test]
    fn the_journal_is_compacted_to_what_the_history_keeps() {
        let path = temp("compact");
        let journal = Journal::open(&path, 4).unwrap().1.unwrap();
        for secs in 0..40 {
            journal.append(&transition(secs, Status::Critical));
        }
        let last = transition(39, Status::Critical);
        for _ in 0..200 {
            if read(&path)
                .map(|(t, ..)| t.last() == Some(&last))
                .unwrap_or(false)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (records, count, _) = read(&path).unwrap();
        assert!(count <= 16 + 1, "{count} records after compaction");
        assert_eq!(records.last(), Some(&last));
    }

    #[test]
    fn a_damaged_record_is_skipped_and_the_others_are_kept() {
        let path = temp("flipped");
        let journal = Journal::open(&path, 100).unwrap().1.unwrap();
        for secs in 0..3 {
            journal.append(&transition(secs, Status::Critical));
        }
        written(&path, 3);
        let mut bytes = std::fs::read(&path).unwrap();
        // One flipped bit in the first record's payload, then one in the second's length.
        bytes[MAGIC.len() + 8 + 3] ^= 0x10;
        let second = MAGIC.len() + 8 + encode(&transition(0, Status::Critical)).len();
        bytes[second] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (read_back, _) = Journal::open(&path, 100).unwrap();
        assert_eq!(read_back, vec![transition(2, Status::Critical)]);
        assert_eq!(
            std::fs::read(&path).unwrap().len(),
            bytes.len(),
            "nothing was cut"
        );
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let path = temp("foreign");
        std::fs::write(&path, "not a journal").unwrap();
        assert!(Journal::open(&path, 10).is_err());
    }
}
