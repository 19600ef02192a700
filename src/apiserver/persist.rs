//! Crash-safe persistence of the store (`--data-dir`): a snapshot plus an append-only write-ahead log.
//!
//! # Format
//!
//! The data directory holds two files made of the same records:
//!
//! - `snapshot`: the live set at some resourceVersion, written to `snapshot.tmp`, fsynced, then
//!   atomically renamed (and the directory fsynced). It starts with a [`Record::Rv`] giving the
//!   global resourceVersion it was taken at, followed by one [`Record::Put`] per live object.
//! - `wal`: every write since the snapshot, appended and fsynced (`fdatasync`) before the store
//!   acknowledges it. Records whose resourceVersion is not above the snapshot's are skipped on
//!   replay (a crash between the snapshot's rename and the log's reset leaves such records).
//!
//! A record is `len: u32 LE | crc32(payload): u32 LE | payload (len bytes)`. The payload is a tag byte
//! (`1` put, `2` delete, `3` rv marker), the resourceVersion (`u64 LE`), then for put/delete the
//! storage key, namespace and name, each `u32 LE` length-prefixed UTF-8, and for a put the object's
//! JSON, `u32 LE` length-prefixed. The crc is IEEE CRC-32 (the zlib/`crc32fast` polynomial).
//!
//! # Recovery
//!
//! [`recover`] loads the snapshot (any damage there is an error: it was renamed into place whole),
//! then replays the log. A damaged *last* record (too short, or a bad checksum with nothing after
//! it) is a torn write from a crash: it is cut off and startup proceeds. A bad checksum with more
//! records after it is corruption, refused with an error naming the file and offset.
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

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_RV: u8 = 3;

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
}

impl Record {
    /// The record's resourceVersion.
    pub fn rv(&self) -> u64 {
        match self {
            Record::Put { rv, .. } | Record::Delete { rv, .. } | Record::Rv(rv) => *rv,
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

/// Decode a file's records. A damaged last record is a torn tail (reported by `valid_len`); a
/// damaged record followed by more data is an error.
pub fn decode_all(data: &[u8], file: &Path) -> io::Result<Decoded> {
    let mut records = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        let rest = &data[off..];
        if rest.len() < 8 {
            break; // torn header
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let Some(end) = 8usize.checked_add(len).filter(|&e| e <= rest.len()) else {
            break; // torn payload (or a garbage length at the tail)
        };
        let payload = &rest[8..end];
        let rec = if crc32(payload) == crc { decode_payload(payload) } else { None };
        match rec {
            Some(r) => records.push(r),
            None if end == rest.len() => break, // damaged last record: torn write
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: corrupt record at offset {off} (checksum or format mismatch) followed by {} more bytes; \
                         refusing to start with a damaged data directory",
                        file.display(),
                        rest.len() - end
                    ),
                ));
            }
        }
        off += end;
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
        Record::Rv(_) => {}
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

/// Load `dir` (created if missing): the snapshot, then the log, cutting off a torn tail.
pub fn recover(dir: &Path) -> io::Result<Recovered> {
    std::fs::create_dir_all(dir)?;
    let mut out = Recovered::default();
    let snap_path = dir.join("snapshot");
    if let Some(data) = read_file(&snap_path)? {
        let d = decode_all(&data, &snap_path)?;
        if d.valid_len != data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: damaged snapshot at offset {}", snap_path.display(), d.valid_len),
            ));
        }
        for r in d.records {
            apply(&mut out.objects, &mut out.rv, r);
        }
    }
    let snap_rv = out.rv;
    let wal_path = dir.join("wal");
    if let Some(data) = read_file(&wal_path)? {
        let d = decode_all(&data, &wal_path)?;
        for r in d.records.into_iter().filter(|r| r.rv() > snap_rv) {
            apply(&mut out.objects, &mut out.rv, r);
        }
        if d.valid_len < data.len() {
            out.truncated = (data.len() - d.valid_len) as u64;
            tracing::warn!(file = %wal_path.display(), bytes = out.truncated, "cutting off a torn log tail");
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
    /// Open (append to) the log in `dir`; call after [`recover`].
    pub fn open(dir: &Path) -> io::Result<Self> {
        let path = dir.join("wal");
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

    /// Write `live` (the whole live set at global resourceVersion `rv`) as the new snapshot and reset
    /// the log.
    pub fn compact<'a>(
        &mut self,
        rv: u64,
        live: impl Iterator<Item = (&'a str, &'a str, &'a str, u64, &'a [u8])>,
    ) -> io::Result<()> {
        let tmp = self.dir.join("snapshot.tmp");
        {
            let mut w = io::BufWriter::new(File::create(&tmp)?);
            w.write_all(&encode(&Record::Rv(rv)))?;
            for (key, namespace, name, orv, object) in live {
                w.write_all(&encode(&Record::Put {
                    key: key.to_string(),
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    rv: orv,
                    object: object.to_vec(),
                }))?;
            }
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join("snapshot"))?;
        sync_dir(&self.dir)?;
        // Every record in the log is now at or below the snapshot's rv: replay would skip them.
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.size = 0;
        Ok(())
    }
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
        assert_eq!(std::fs::metadata(dir.path().join("wal")).unwrap().len(), 0);
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
}
