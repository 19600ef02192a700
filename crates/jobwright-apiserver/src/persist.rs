//! Crash-safe persistence of the store (`--data-dir`): a snapshot plus an append-only write-ahead log.
//!
//! # Format
//!
//! The data directory holds two files made of the same records:
//!
//! - `snapshot`: the live set at some resourceVersion, written to `snapshot.tmp`, fsynced, then
//!   atomically renamed (and the directory fsynced). It starts with a [`Record::Rv`] giving the
//!   global resourceVersion it was taken at and a [`Record::LogStart`] naming the log that follows
//!   it, then one [`Record::Put`] per live object.
//! - `wal`: a [`Record::LogStart`] header (the resourceVersion of the snapshot it follows), then
//!   every write since that snapshot, appended and fsynced (`fdatasync`) before the store
//!   acknowledges it. Records whose resourceVersion is not above the snapshot's are skipped on
//!   replay (a crash between the snapshot's rename and the log's replacement leaves the previous
//!   log, whose records the snapshot already holds).
//!
//! A fresh data directory gets an empty snapshot (rv 0) and a log holding only its header, so a
//! snapshot always says a log must follow it.
//!
//! A record is `len: u32 LE | crc32(payload): u32 LE | payload (len bytes)`. The payload is a tag byte
//! (`1` put, `2` delete, `3` rv marker, `4` log start), the resourceVersion (`u64 LE`), then for
//! put/delete the storage key, namespace and name, each `u32 LE` length-prefixed UTF-8, and for a
//! put the object's JSON, `u32 LE` length-prefixed. The crc is IEEE CRC-32 (the zlib/`crc32fast`
//! polynomial).
//!
//! # Recovery
//!
//! [`recover`] loads the snapshot (any damage there is an error: it was renamed into place whole),
//! then replays the log, and refuses to start on anything it cannot prove is a torn write. At the
//! first record that does not decode (short header, length past the end of the file, bad checksum,
//! bad payload), the rest of the file is a **torn tail** only when
//!
//! - it is all zero bytes (the file was extended but the data never reached the disk, as after a
//!   power loss; etcd recovers these the same way), or
//! - the damaged record ends at (or past) the end of the file or is followed only by zero bytes,
//!   no intact record starts anywhere after it (an append interrupted by a crash leaves one partial
//!   record and nothing after it), and its payload does not check out at some other length (which
//!   would prove the record complete and its length field corrupted).
//!
//! A torn tail is cut off with a warning. Anything else (a length corrupted to a huge value, a bad
//! record with intact records after it) is corruption: startup fails with an error that names the
//! file, the offset and what to do. A snapshot that names a log while the log is missing, empty,
//! or belongs to a later snapshot is refused the same way (the writes after the snapshot would be
//! silently lost).
//!
//! # Compaction
//!
//! When the log exceeds [`COMPACT_BYTES`], [`Wal::compact`] writes a new snapshot of the live set
//! and resets the log, so the log never grows without bound.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Log size above which the store compacts it into a snapshot.
pub const COMPACT_BYTES: u64 = 64 << 20;

/// How many payload bytes recovery checksums while looking for intact records after a damaged
/// one; past it the damage is not provably a torn tail and startup is refused.
const SCAN_BUDGET: usize = 1 << 30;

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_RV: u8 = 3;
const TAG_LOG_START: u8 = 4;

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An object stored at `rv`.
    Put {
        /// Storage key (bucket).
        key: String,
        /// Namespace, `""` for cluster-scoped objects.
        namespace: String,
        /// Name.
        name: String,
        /// The write's resourceVersion.
        rv: u64,
        /// The stored JSON.
        object: Vec<u8>,
    },
    /// An object removed at `rv`.
    Delete {
        /// Storage key (bucket).
        key: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The deletion's resourceVersion.
        rv: u64,
    },
    /// The global resourceVersion (a snapshot's first record).
    Rv(u64),
    /// A log's header, and in a snapshot the header of the log that must follow it: the
    /// resourceVersion of the snapshot the log follows.
    LogStart(u64),
}

impl Record {
    /// The record's resourceVersion.
    pub fn rv(&self) -> u64 {
        match self {
            Record::Put { rv, .. } | Record::Delete { rv, .. } | Record::Rv(rv) | Record::LogStart(rv) => *rv,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// crc32 (IEEE, reflected, table-driven)

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// IEEE CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

/// Encode one record, framing included.
pub fn encode(rec: &Record) -> Vec<u8> {
    let mut p = Vec::new();
    match rec {
        Record::Put { key, namespace, name, rv, object } => {
            p.push(TAG_PUT);
            p.extend_from_slice(&rv.to_le_bytes());
            put_str(&mut p, key.as_bytes());
            put_str(&mut p, namespace.as_bytes());
            put_str(&mut p, name.as_bytes());
            put_str(&mut p, object);
        }
        Record::Delete { key, namespace, name, rv } => {
            p.push(TAG_DELETE);
            p.extend_from_slice(&rv.to_le_bytes());
            put_str(&mut p, key.as_bytes());
            put_str(&mut p, namespace.as_bytes());
            put_str(&mut p, name.as_bytes());
        }
        Record::Rv(rv) => {
            p.push(TAG_RV);
            p.extend_from_slice(&rv.to_le_bytes());
        }
        Record::LogStart(rv) => {
            p.push(TAG_LOG_START);
            p.extend_from_slice(&rv.to_le_bytes());
        }
    }
    let mut out = Vec::with_capacity(p.len() + 8);
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&p).to_le_bytes());
    out.extend_from_slice(&p);
    out
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

fn decode_payload(p: &[u8]) -> Option<Record> {
    let (&tag, rest) = p.split_first()?;
    let mut c = Cursor(rest);
    let rv = c.u64()?;
    let rec = match tag {
        TAG_PUT => {
            Record::Put { key: c.string()?, namespace: c.string()?, name: c.string()?, rv, object: c.bytes()?.to_vec() }
        }
        TAG_DELETE => Record::Delete { key: c.string()?, namespace: c.string()?, name: c.string()?, rv },
        TAG_RV => Record::Rv(rv),
        TAG_LOG_START => Record::LogStart(rv),
        _ => return None,
    };
    c.0.is_empty().then_some(rec)
}

/// What [`decode_all`] found.
#[derive(Debug)]
pub struct Decoded {
    /// The intact records, in order.
    pub records: Vec<Record>,
    /// Length of the intact prefix; anything after it is a torn tail.
    pub valid_len: usize,
}

/// The record framed at the start of `rest`: `Ok((record, framed length))`, or why not.
fn record_at(rest: &[u8]) -> Result<(Record, usize), String> {
    if rest.len() < 8 {
        return Err(format!("a {}-byte header (8 needed)", rest.len()));
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    if len > rest.len() - 8 {
        return Err(format!("a length of {len} bytes past the end of the file ({} left)", rest.len() - 8));
    }
    let payload = &rest[8..8 + len];
    if crc32(payload) != crc {
        return Err("a checksum mismatch".into());
    }
    decode_payload(payload).map(|r| (r, 8 + len)).ok_or_else(|| "an undecodable payload".into())
}

/// The offset (relative to `rest`) of the first intact record starting after `rest[0]`, `Err` when
/// the search would checksum more than [`SCAN_BUDGET`] bytes.
fn next_intact(rest: &[u8]) -> Result<Option<usize>, ()> {
    let mut budget = SCAN_BUDGET;
    for p in 1..rest.len().saturating_sub(8) {
        let len = u32::from_le_bytes(rest[p..p + 4].try_into().expect("4 bytes")) as usize;
        // The smallest payload is a tag and an rv; the tag must be known.
        if len < 9 || len > rest.len() - p - 8 || !(TAG_PUT..=TAG_LOG_START).contains(&rest[p + 8]) {
            continue;
        }
        budget = budget.checked_sub(len).ok_or(())?;
        if record_at(&rest[p..]).is_ok() {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// The length, other than the one its header claims, at which the record at the start of `rest`
/// checks out (checksum and payload): proof that the record is complete and its length field
/// corrupted, so not torn.
fn intact_at_other_length(rest: &[u8]) -> Option<usize> {
    if rest.len() < 8 {
        return None;
    }
    let claimed = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let payload = &rest[8..];
    let mut c = !0u32;
    for (i, &b) in payload.iter().enumerate() {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
        let len = i + 1;
        if len >= 9 && len != claimed && !c == crc && decode_payload(&payload[..len]).is_some() {
            return Some(len);
        }
    }
    None
}

/// Decode a file's records, cutting off a torn tail (reported by `valid_len`) and refusing
/// anything that is not provably one (see the module documentation): the error names `file`, the
/// offset and what to do.
pub fn decode_all(data: &[u8], file: &Path) -> io::Result<Decoded> {
    let mut records = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        let rest = &data[off..];
        let why = match record_at(rest) {
            Ok((r, n)) => {
                records.push(r);
                off += n;
                continue;
            }
            Err(why) => why,
        };
        if rest.iter().all(|b| *b == 0) {
            break; // a zero-filled tail
        }
        let refuse = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: corrupt record at offset {off}: {what}; this is not a torn write, so nothing was cut off and \
                     the server refuses to start on a damaged data directory. Restore the data directory from a \
                     backup; or, to keep only the {off} bytes before the damage (losing every write after it), \
                     truncate the file to them (`truncate -s {off} {}`) and start again",
                    file.display(),
                    file.display()
                ),
            )
        };
        let claimed =
            if rest.len() >= 4 { u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize } else { 0 };
        let end = 8usize.saturating_add(claimed);
        if end < rest.len() && rest[end..].iter().any(|b| *b != 0) {
            let what = match next_intact(rest) {
                Ok(Some(p)) => format!("{why}, followed by an intact record at offset {}", off + p),
                _ => format!("{why}, followed by {} more bytes", rest.len() - end),
            };
            return Err(refuse(what));
        }
        if let Some(len) = intact_at_other_length(rest) {
            return Err(refuse(format!(
                "its length field says {claimed} bytes, but the {len}-byte record after its header is intact: the \
                 length was corrupted"
            )));
        }
        match next_intact(rest) {
            Ok(None) => break, // one partial record, then nothing (or zeros): a torn write
            Ok(Some(p)) => return Err(refuse(format!("{why}, followed by an intact record at offset {}", off + p))),
            Err(()) => {
                return Err(refuse(format!("{why}, and the {} bytes after it are too many to prove torn", rest.len())));
            }
        }
    }
    Ok(Decoded { records, valid_len: off })
}

// ---------------------------------------------------------------------------------------------
// Recovery and the live log

/// The live set recovered from a data directory: `(key, namespace, name) -> (rv, JSON)`.
pub type LiveSet = BTreeMap<(String, String, String), (u64, Vec<u8>)>;

/// The state found in a data directory.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Live objects.
    pub objects: LiveSet,
    /// The highest resourceVersion seen (snapshot marker, puts and deletes).
    pub rv: u64,
    /// Bytes of torn tail cut off the log.
    pub truncated: u64,
}

fn apply(objects: &mut LiveSet, rv: &mut u64, rec: Record) {
    *rv = (*rv).max(rec.rv());
    match rec {
        Record::Put { key, namespace, name, rv, object } => {
            objects.insert((key, namespace, name), (rv, object));
        }
        Record::Delete { key, namespace, name, .. } => {
            objects.remove(&(key, namespace, name));
        }
        Record::Rv(_) | Record::LogStart(_) => {}
    }
}

fn read_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match File::open(path) {
        Ok(mut f) => {
            let mut v = Vec::new();
            f.read_to_end(&mut v)?;
            Ok(Some(v))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Load `dir` (created if missing): the snapshot, then the log, cutting off a torn tail (with a
/// warning) and refusing what is not provably one, or a log the snapshot says is missing.
pub fn recover(dir: &Path) -> io::Result<Recovered> {
    std::fs::create_dir_all(dir)?;
    let mut out = Recovered::default();
    let snap_path = dir.join("snapshot");
    let wal_path = dir.join("wal");
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    // The log the snapshot says must follow it (none for a snapshot from before log headers).
    let mut expected_log: Option<u64> = None;
    if let Some(data) = read_file(&snap_path)? {
        let d = decode_all(&data, &snap_path).map_err(|e| {
            invalid(format!(
                "{e} (the snapshot is written whole and renamed into place, so any damage in it is corruption)"
            ))
        })?;
        if d.valid_len != data.len() {
            return Err(invalid(format!(
                "{}: damaged snapshot at offset {} of {}; the snapshot is written whole and renamed into place, so \
                 this is corruption, not a torn write. Restore the data directory from a backup",
                snap_path.display(),
                d.valid_len,
                data.len()
            )));
        }
        for r in d.records {
            if let Record::LogStart(n) = r {
                expected_log = Some(n);
            }
            apply(&mut out.objects, &mut out.rv, r);
        }
    }
    let snap_rv = out.rv;
    let wal = read_file(&wal_path)?;
    if let Some(n) = expected_log {
        let lost = |state: &str| {
            invalid(format!(
                "{}: the log is {state}, but {} (resourceVersion {snap_rv}) says a log follows it: the writes made after \
                 that snapshot would be silently lost. Restore the log from a backup; or, to start from the snapshot \
                 alone and accept losing them, turn the snapshot into the log (`mv {} {}`) and start again",
                wal_path.display(),
                snap_path.display(),
                snap_path.display(),
                wal_path.display()
            ))
        };
        match wal.as_deref() {
            None => return Err(lost("missing")),
            Some([]) => return Err(lost("empty")),
            Some(data) => {
                if let Ok((Record::LogStart(m), _)) = record_at(data)
                    && m > n
                {
                    return Err(invalid(format!(
                        "{}: the log follows a snapshot at resourceVersion {m}, but {} is from resourceVersion {n}: the \
                         snapshot is older than its log (restored or replaced?). Restore the matching snapshot, or \
                         the whole data directory, from a backup",
                        wal_path.display(),
                        snap_path.display()
                    )));
                }
            }
        }
    }
    if let Some(data) = wal {
        let d = decode_all(&data, &wal_path)?;
        for r in d.records.into_iter().filter(|r| r.rv() > snap_rv) {
            apply(&mut out.objects, &mut out.rv, r);
        }
        if d.valid_len < data.len() {
            out.truncated = (data.len() - d.valid_len) as u64;
            let zeros = data[d.valid_len..].iter().all(|b| *b == 0);
            tracing::warn!(
                file = %wal_path.display(), offset = d.valid_len, bytes = out.truncated, zero_filled = zeros,
                "cutting off a torn log tail (an interrupted append)"
            );
            let f = OpenOptions::new().write(true).open(&wal_path)?;
            f.set_len(d.valid_len as u64)?;
            f.sync_all()?;
        }
    }
    Ok(out)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The open write-ahead log of a data directory.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    size: u64,
    /// Compact when the log grows past this many bytes.
    pub compact_bytes: u64,
}

impl Wal {
    /// Open (append to) the log in `dir`; call after [`recover`]. A fresh directory (no snapshot,
    /// no or an empty log) first gets an empty snapshot at rv 0 and a log holding its header.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let path = dir.join("wal");
        // The log first: a crash between the two leaves a header-only log and no snapshot, which
        // is fresh again (never a snapshot without its log).
        let header = encode(&Record::LogStart(0));
        let fresh =
            !dir.join("snapshot").exists() && read_file(&path)?.is_none_or(|data| data.is_empty() || data == header);
        if fresh {
            replace_log(dir, 0)?;
            write_snapshot(dir, 0, std::iter::empty::<(&str, &str, &str, u64, &[u8])>())?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        sync_dir(dir)?;
        Ok(Self { dir: dir.to_path_buf(), file, size, compact_bytes: COMPACT_BYTES })
    }

    /// Append one record and fsync it.
    pub fn append(&mut self, rec: &Record) -> io::Result<()> {
        let buf = encode(rec);
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Whether the log has grown past [`Wal::compact_bytes`].
    pub fn wants_compaction(&self) -> bool {
        self.size > self.compact_bytes
    }

    /// Write `live` (the whole live set at global resourceVersion `rv`) as the new snapshot and
    /// replace the log with a fresh one holding only its header.
    pub fn compact<'a, B: AsRef<[u8]>>(
        &mut self,
        rv: u64,
        live: impl Iterator<Item = (&'a str, &'a str, &'a str, u64, B)>,
    ) -> io::Result<()> {
        write_snapshot(&self.dir, rv, live)?;
        // Every record in the old log is now at or below the snapshot's rv: replay would skip
        // them. The new log replaces it atomically, so a crash never leaves the snapshot without
        // a log (it may leave the old log, which recovery accepts).
        replace_log(&self.dir, rv)?;
        self.file = OpenOptions::new().append(true).open(self.dir.join("wal"))?;
        self.size = self.file.metadata()?.len();
        Ok(())
    }
}

/// Write `snapshot` (via `snapshot.tmp`, fsync, rename, directory fsync): the rv marker, the header
/// of the log that must follow, then `live`.
fn write_snapshot<'a, B: AsRef<[u8]>>(
    dir: &Path,
    rv: u64,
    live: impl Iterator<Item = (&'a str, &'a str, &'a str, u64, B)>,
) -> io::Result<()> {
    let tmp = dir.join("snapshot.tmp");
    {
        let mut w = io::BufWriter::new(File::create(&tmp)?);
        w.write_all(&encode(&Record::Rv(rv)))?;
        w.write_all(&encode(&Record::LogStart(rv)))?;
        for (key, namespace, name, orv, object) in live {
            w.write_all(&encode(&Record::Put {
                key: key.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
                rv: orv,
                object: object.as_ref().to_vec(),
            }))?;
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join("snapshot"))?;
    sync_dir(dir)
}

/// Replace `wal` with a log holding only its header for the snapshot at `rv` (via `wal.tmp`,
/// fsync, rename, directory fsync).
fn replace_log(dir: &Path, rv: u64) -> io::Result<()> {
    let tmp = dir.join("wal.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&encode(&Record::LogStart(rv)))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join("wal"))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(name: &str, rv: u64) -> Record {
        Record::Put {
            key: "/configmaps".into(),
            namespace: "default".into(),
            name: name.into(),
            rv,
            object: format!("{{\"n\":\"{name}\"}}").into_bytes(),
        }
    }

    fn write_log(dir: &Path, recs: &[Record]) -> Vec<u8> {
        let data: Vec<u8> = recs.iter().flat_map(encode).collect();
        std::fs::write(dir.join("wal"), &data).unwrap();
        data
    }

    #[test]
    fn crc32_matches_the_ieee_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn records_round_trip_and_deletes_apply() {
        let dir = tempfile::tempdir().unwrap();
        let del = Record::Delete { key: "/configmaps".into(), namespace: "default".into(), name: "a".into(), rv: 3 };
        let recs = [put("a", 1), put("b", 2), del, Record::Rv(7)];
        let data = write_log(dir.path(), &recs);
        assert_eq!(decode_all(&data, Path::new("wal")).unwrap().records, recs);
        let r = recover(dir.path()).unwrap();
        assert_eq!(r.rv, 7);
        assert_eq!(r.objects.len(), 1);
        assert_eq!(r.objects[&("/configmaps".into(), "default".into(), "b".into())].0, 2);
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let data = write_log(dir.path(), &[put("a", 1), put("b", 2)]);
        let whole = data.len();
        // Every possible crash point inside the last record.
        let first = encode(&put("a", 1)).len();
        for cut in first + 1..whole {
            std::fs::write(dir.path().join("wal"), &data[..cut]).unwrap();
            let r = recover(dir.path()).unwrap();
            assert_eq!((r.objects.len(), r.rv, r.truncated), (1, 1, (cut - first) as u64), "cut at {cut}");
            assert_eq!(std::fs::metadata(dir.path().join("wal")).unwrap().len(), first as u64);
        }
        // A torn last record with a flipped bit is cut off too.
        let mut bad = data.clone();
        *bad.last_mut().unwrap() ^= 0xff;
        std::fs::write(dir.path().join("wal"), &bad).unwrap();
        assert_eq!(recover(dir.path()).unwrap().objects.len(), 1);
    }

    #[test]
    fn a_corrupt_middle_record_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = write_log(dir.path(), &[put("a", 1), put("b", 2), put("c", 3)]);
        let first = encode(&put("a", 1)).len();
        data[first + 12] ^= 0x01;
        std::fs::write(dir.path().join("wal"), &data).unwrap();
        let err = recover(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let msg = err.to_string();
        assert!(msg.contains(&format!("corrupt record at offset {first}")), "{msg}");
        assert!(msg.contains("wal"), "{msg}");
    }

    #[test]
    fn compaction_keeps_the_live_set_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        for i in 0..50 {
            wal.append(&put(&format!("o{i}"), i + 1)).unwrap();
        }
        let live = [("/configmaps", "default", "o49", 50u64, b"{}".as_slice())];
        wal.compact(60, live.into_iter()).unwrap();
        // The new log holds only its header.
        assert_eq!(std::fs::read(dir.path().join("wal")).unwrap(), encode(&Record::LogStart(60)));
        assert!(!dir.path().join("wal.tmp").exists());
        wal.append(&put("new", 61)).unwrap();
        drop(wal);
        let r = recover(dir.path()).unwrap();
        assert_eq!(r.rv, 61);
        let names: Vec<_> = r.objects.keys().map(|k| k.2.as_str()).collect();
        assert_eq!(names, ["new", "o49"]);
        assert!(!dir.path().join("snapshot.tmp").exists());
    }

    #[test]
    fn log_records_older_than_the_snapshot_are_skipped() {
        // A crash after the snapshot rename but before the log reset.
        let dir = tempfile::tempdir().unwrap();
        let snap: Vec<u8> = [Record::Rv(5), put("b", 4)].iter().flat_map(encode).collect();
        std::fs::write(dir.path().join("snapshot"), snap).unwrap();
        write_log(dir.path(), &[put("a", 3), put("b", 4), put("c", 6)]);
        let r = recover(dir.path()).unwrap();
        let names: Vec<_> = r.objects.keys().map(|k| k.2.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(r.rv, 6);
    }
    fn recs(n: u64) -> Vec<Record> {
        (1..=n).map(|i| put(&format!("o{i}"), i)).collect()
    }

    fn offset_of(records: &[Record], i: usize) -> usize {
        records[..i].iter().map(|r| encode(r).len()).sum()
    }

    #[test]
    fn a_huge_length_mid_log_is_corruption_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let records = recs(20);
        let mut data = write_log(dir.path(), &records);
        let at = offset_of(&records, 7);
        data[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        std::fs::write(dir.path().join("wal"), &data).unwrap();
        let err = recover(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("corrupt record at offset {at}")), "{err}");
        assert!(err.contains("the length was corrupted"), "{err}");
        assert!(err.contains(&dir.path().join("wal").display().to_string()), "names the file: {err}");
        assert!(err.contains(&format!("truncate -s {at}")), "says what to do: {err}");
        assert_eq!(std::fs::read(dir.path().join("wal")).unwrap(), data, "nothing was cut off");
        // A length past the end of the file but below the cap, with intact records after it.
        let mut data = write_log(dir.path(), &records);
        let twice = (data.len() as u32 * 2).to_le_bytes();
        data[at..at + 4].copy_from_slice(&twice);
        std::fs::write(dir.path().join("wal"), &data).unwrap();
        let err = recover(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("corrupt record at offset {at}")), "{err}");
        // Even in the last record: its intact payload proves it complete, so not torn.
        let mut data = write_log(dir.path(), &records);
        let last = offset_of(&records, 19);
        let twice = (data.len() as u32 * 2).to_le_bytes();
        data[last..last + 4].copy_from_slice(&twice);
        std::fs::write(dir.path().join("wal"), &data).unwrap();
        let err = recover(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("corrupt record at offset {last}")), "{err}");
        // With intact records after the damage and the damaged record's checksum broken too, the
        // error names the next intact record.
        let mut data = write_log(dir.path(), &records);
        data[at + 4] ^= 0xFF;
        data[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        std::fs::write(dir.path().join("wal"), &data).unwrap();
        let err = recover(dir.path()).unwrap_err().to_string();
        let next = offset_of(&records, 8);
        assert!(err.contains(&format!("followed by an intact record at offset {next}")), "{err}");
    }

    /// Garbage after the last record (stale blocks after a crash) is a torn tail: cut off.
    #[test]
    fn random_tails_are_cut_off() {
        let records = recs(6);
        let data: Vec<u8> = records.iter().flat_map(encode).collect();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..500 {
            let len = 1 + (next() % 300) as usize;
            let mut bad = data.clone();
            bad.extend((0..len).map(|_| next() as u8));
            let d = decode_all(&bad, Path::new("wal")).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!((d.records.len(), d.valid_len), (6, data.len()), "round {round}");
        }
    }

    /// Flip every byte of a log in turn: recovery either refuses, or (damage in the last record)
    /// keeps every record before it. It never starts with an intact record silently dropped.
    #[test]
    fn no_single_byte_damage_loses_an_intact_record_silently() {
        let records = recs(12);
        let data: Vec<u8> = records.iter().flat_map(encode).collect();
        let last = offset_of(&records, 11);
        for i in 0..data.len() {
            for v in [data[i] ^ 0x01, data[i] ^ 0x80, 0xFF, 0x00] {
                if v == data[i] {
                    continue;
                }
                let mut bad = data.clone();
                bad[i] = v;
                match decode_all(&bad, Path::new("wal")) {
                    Ok(d) => {
                        assert!(i >= last, "byte {i} set to {v:#x}: decoded {} records", d.records.len());
                        assert_eq!((d.records.len(), d.valid_len), (11, last), "byte {i}");
                    }
                    Err(e) => assert!(e.to_string().contains("corrupt record at offset"), "{e}"),
                }
            }
        }
    }

    #[test]
    fn a_zero_filled_tail_is_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        let records = recs(5);
        let data = write_log(dir.path(), &records);
        // Zeros after intact records (the file was extended, the data never written).
        let mut z = data.clone();
        z.extend(std::iter::repeat_n(0u8, 4096));
        std::fs::write(dir.path().join("wal"), &z).unwrap();
        let r = recover(dir.path()).unwrap();
        assert_eq!((r.objects.len(), r.truncated), (5, 4096));
        assert_eq!(std::fs::read(dir.path().join("wal")).unwrap(), data, "cut back to the intact records");
        // A partial last record followed by zeros.
        let mut z = data[..data.len() - 5].to_vec();
        z.extend(std::iter::repeat_n(0u8, 512));
        std::fs::write(dir.path().join("wal"), &z).unwrap();
        assert_eq!(recover(dir.path()).unwrap().objects.len(), 4);
        // The last record's payload zeroed in place (its sectors never written).
        let mut z = data.clone();
        let last = offset_of(&records, 4);
        z[last + 8..].iter_mut().for_each(|b| *b = 0);
        std::fs::write(dir.path().join("wal"), &z).unwrap();
        assert_eq!(recover(dir.path()).unwrap().objects.len(), 4);
        // But zeros in the middle with intact records after them are corruption.
        let mut z = data.clone();
        let mid = offset_of(&records, 2);
        z[mid..mid + 20].iter_mut().for_each(|b| *b = 0);
        std::fs::write(dir.path().join("wal"), &z).unwrap();
        assert!(recover(dir.path()).unwrap_err().to_string().contains(&format!("corrupt record at offset {mid}")));
    }

    #[test]
    fn a_missing_or_emptied_log_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        for i in 1..=5 {
            wal.append(&put(&format!("o{i}"), i)).unwrap();
        }
        let live = [("/configmaps", "default", "o5", 5u64, b"{}".as_slice())];
        wal.compact(5, live.into_iter()).unwrap();
        wal.append(&put("after", 6)).unwrap();
        drop(wal);
        let wal_path = dir.path().join("wal");
        let saved = std::fs::read(&wal_path).unwrap();
        std::fs::write(&wal_path, b"").unwrap();
        let err = recover(dir.path()).unwrap_err().to_string();
        assert!(err.contains("the log is empty") && err.contains("resourceVersion 5"), "{err}");
        assert!(err.contains(&wal_path.display().to_string()) && err.contains("mv "), "{err}");
        std::fs::remove_file(&wal_path).unwrap();
        let err = recover(dir.path()).unwrap_err().to_string();
        assert!(err.contains("the log is missing"), "{err}");
        // Restored, everything is back.
        std::fs::write(&wal_path, &saved).unwrap();
        let names: Vec<String> = recover(dir.path()).unwrap().objects.keys().map(|k| k.2.clone()).collect();
        assert_eq!(names, ["after", "o5"]);
        // Following the error's advice starts from the snapshot alone.
        std::fs::remove_file(&wal_path).unwrap();
        std::fs::rename(dir.path().join("snapshot"), &wal_path).unwrap();
        let names: Vec<String> = recover(dir.path()).unwrap().objects.keys().map(|k| k.2.clone()).collect();
        assert_eq!(names, ["o5"]);
    }

    #[test]
    fn a_fresh_directory_gets_a_snapshot_so_a_later_deleted_log_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(recover(dir.path()).unwrap().objects.len(), 0);
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(&put("a", 1)).unwrap();
        drop(wal);
        assert!(dir.path().join("snapshot").exists());
        assert_eq!(recover(dir.path()).unwrap().objects.len(), 1);
        std::fs::remove_file(dir.path().join("wal")).unwrap();
        assert!(recover(dir.path()).unwrap_err().to_string().contains("the log is missing"));
        // A crash in the middle of initialising (the header-only log written, no snapshot yet)
        // initialises again.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wal"), encode(&Record::LogStart(0))).unwrap();
        drop(Wal::open(dir.path()).unwrap());
        assert!(dir.path().join("snapshot").exists());
        std::fs::remove_file(dir.path().join("wal")).unwrap();
        assert!(recover(dir.path()).is_err());
    }

    #[test]
    fn a_log_newer_than_its_snapshot_is_refused_and_an_older_one_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let snap: Vec<u8> = [Record::Rv(5), Record::LogStart(5), put("b", 4)].iter().flat_map(encode).collect();
        std::fs::write(dir.path().join("snapshot"), &snap).unwrap();
        write_log(dir.path(), &[Record::LogStart(9), put("c", 10)]);
        let err = recover(dir.path()).unwrap_err().to_string();
        assert!(err.contains("the snapshot is older than its log"), "{err}");
        // A crash between the snapshot's rename and the log's replacement: the previous log.
        write_log(dir.path(), &[Record::LogStart(2), put("a", 3), put("b", 4)]);
        let names: Vec<String> = recover(dir.path()).unwrap().objects.keys().map(|k| k.2.clone()).collect();
        assert_eq!(names, ["b"]);
        // A snapshot from before log headers asks for nothing.
        let old: Vec<u8> = [Record::Rv(5), put("b", 4)].iter().flat_map(encode).collect();
        std::fs::write(dir.path().join("snapshot"), &old).unwrap();
        std::fs::write(dir.path().join("wal"), b"").unwrap();
        assert_eq!(recover(dir.path()).unwrap().objects.len(), 1);
    }
}
