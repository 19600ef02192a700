//! Objects at rest: the store keeps each object's JSON zstd-compressed, with a dictionary per
//! resource trained from that resource's first objects (and trained again when later objects no
//! longer fit it), and decompresses it when it is read.
//!
//! A [`Stored`] blob says how it was packed: the JSON itself ([`Stored::Raw`], when compressing
//! does not make it smaller), a plain zstd frame, or a zstd frame made with a dictionary, which
//! the blob holds a reference to. A dictionary is never replaced or dropped while a blob needs it,
//! so every blob stays readable; reads give back exactly the bytes that were packed.
//!
//! Retraining: a resource's first objects are rarely like the ones it keeps (a cluster's first
//! Events are all the Job controller's, none the scheduler's or kubelet's; its first pods are
//! being created, not finished; later pods may belong to an Indexed Job, with a completion index,
//! hostname and subdomain). Measured on a `jobwright local` run's pods and Events replayed in
//! write order: an Indexed Job's finished pods took 695 bytes at rest with the first objects'
//! dictionary, 246 with one trained again; Events 265 and 139. So after the first training a
//! [`Codec`] trains once more from samples spread over the writes that follow ([`SAMPLE_DELAY`]
//! writes on, one every [`SAMPLE_STRIDE`]), and it watches the compressed size of its writes in
//! windows of [`WINDOW`] writes: when a window compresses [`DRIFT`] times worse than the first
//! window after training, it collects spread samples the same way and trains again. A new
//! dictionary is kept only if it packs its samples at least [`GAIN`] smaller than the current one. Blobs packed before keep a reference to
//! the dictionary they were made with (only its decompression half: the compression half of a
//! superseded dictionary is dropped), so nothing is recompressed; an old dictionary goes when the
//! last blob made with it does. Samples are kept as packed (a few hundred bytes each), not as
//! JSON. Training runs under the store's lock, so every read and write waits for it: about
//! 25-75 ms for 64 samples of 2 KiB (measured in the unit tests' objects), more for larger
//! objects. So a resource trains twice near its start (its first objects, then spread samples,
//! about 2,100 writes later), then on a drift at most once per [`RETRAIN_GAP`] writes, never
//! while [`MAX_LIVE`] of its dictionaries (the current one included) are still needed by blobs,
//! and [`MAX_TRAININGS`] times in all. A few objects that are never rewritten, each on another
//! old dictionary, can so stop a resource's retraining for good (accepted: nothing becomes
//! unreadable, only the gain is lost). Not done: training off the lock.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use zstd::zstd_safe::{self, CCtx, CDict, DCtx, DDict};

/// zstd level: with a dictionary, level 1 is within a few percent of level 3 on pods and Events,
/// and costs less CPU per write.
const LEVEL: i32 = 1;
/// How many objects a dictionary is trained from (a resource's first ones, or the ones after a
/// drift).
pub const TRAIN_SAMPLES: usize = 64;
/// Largest dictionary (zstd's own advice: about 100 times smaller than the samples).
const DICT_SIZE: usize = 16 << 10;
/// Objects this small are kept as they are (a zstd frame has a header of its own).
const MIN_LEN: usize = 64;
/// Objects larger than this are not kept as samples (bounds what waits for training).
const MAX_SAMPLE: usize = 16 << 10;
/// After the first training or a drift, samples are taken from this many writes on (the first
/// writes after a drift are mostly creations: objects in the state they stay in come later) ...
pub const SAMPLE_DELAY: u64 = 1024;
/// ... one every this many writes (so they span the objects' lives: created, scheduled,
/// running, finished).
pub const SAMPLE_STRIDE: u64 = 16;
/// Writes packed with a dictionary per window of the drift check.
pub const WINDOW: u32 = 256;
/// A window whose compressed bytes per JSON byte exceed the reference window's by this factor
/// starts a retraining.
pub const DRIFT: f64 = 1.5;
/// A new dictionary is kept only if it packs its own training samples into at most this share of
/// the bytes the current one does.
pub const GAIN: f64 = 0.8;
/// Writes of a resource between two trainings, at least (bounds the CPU training takes: a few
/// milliseconds per 4,096 writes).
pub const RETRAIN_GAP: u64 = 4096;
/// Trainings of one resource at most (kept or not): at a few to a hundred milliseconds each,
/// under the store's lock, about a second of CPU per resource in all.
pub const MAX_TRAININGS: u32 = 8;
/// Dictionaries of one resource that blobs may need at once: no training beyond this (so a
/// resource keeps at most this many, plus the current one while one is tried).
pub const MAX_LIVE: usize = 4;

/// A trained dictionary's decompression half: what a blob needs to be read back.
pub struct Dict {
    ddict: DDict<'static>,
}

impl std::fmt::Debug for Dict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dict")
    }
}

/// One object's JSON at rest.
#[derive(Debug, Clone)]
pub enum Stored {
    /// The JSON itself.
    Raw(Bytes),
    /// A zstd frame without a dictionary.
    Zstd(Arc<[u8]>),
    /// A zstd frame made with this dictionary.
    Dict(Arc<[u8]>, Arc<Dict>),
}

thread_local! {
    static DCTX: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

impl Stored {
    /// The JSON, byte for byte as packed.
    pub fn json(&self) -> Bytes {
        match self {
            Self::Raw(b) => b.clone(),
            Self::Zstd(z) => Bytes::from(unpack(z, None)),
            Self::Dict(z, d) => Bytes::from(unpack(z, Some(d))),
        }
    }

    /// The JSON's length, without decompressing (a zstd frame records it).
    pub fn json_len(&self) -> usize {
        match self {
            Self::Raw(b) => b.len(),
            Self::Zstd(z) | Self::Dict(z, _) => content_size(z),
        }
    }

    /// Bytes held at rest (the blob, not the dictionary it shares).
    pub fn size(&self) -> usize {
        match self {
            Self::Raw(b) => b.len(),
            Self::Zstd(z) | Self::Dict(z, _) => z.len(),
        }
    }
}

fn content_size(z: &[u8]) -> usize {
    match zstd_safe::get_frame_content_size(z) {
        Ok(Some(n)) => n as usize,
        // Every frame made here records its size: this is a broken invariant, not input.
        _ => unreachable!("a stored zstd frame without a content size"),
    }
}

fn unpack(z: &[u8], dict: Option<&Dict>) -> Vec<u8> {
    let mut out = Vec::with_capacity(content_size(z));
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        let r = match dict {
            Some(dict) => d.decompress_using_ddict(&mut out, z, &dict.ddict),
            None => d.decompress(&mut out, z),
        };
        if let Err(code) = r {
            // Only frames this module made are ever unpacked, into a buffer of their recorded size.
            unreachable!("a stored zstd frame does not decompress: {}", zstd_safe::get_error_name(code));
        }
    });
    out
}

/// The dictionary a codec packs with: both halves.
struct Current {
    cdict: CDict<'static>,
    dict: Arc<Dict>,
}

/// What compresses the objects of one resource: its dictionary once trained.
#[derive(Default)]
pub struct Codec {
    /// Objects collected for a training (the first ones, or the ones after a drift), as packed.
    samples: Vec<Stored>,
    /// Trainings done (kept or not).
    attempts: u32,
    /// Whether objects are being collected for a training.
    collecting: bool,
    /// From which write on they are (a drift's first writes are mostly creations: objects in
    /// the state they stay in come later).
    collect_from: u64,
    /// The dictionary new blobs are packed with; `None` before training (or when training found
    /// nothing to learn).
    current: Option<Current>,
    /// Whether the first training was done (or given up).
    trained: bool,
    /// Every dictionary made, while some blob may still hold it.
    made: Vec<Weak<Dict>>,
    /// How many dictionaries were made in all.
    made_count: usize,
    /// Writes packed (with or without a dictionary).
    writes: u64,
    /// `writes` at the last training.
    trained_at: u64,
    /// The drift check's window: writes packed with the current dictionary, their JSON bytes and
    /// compressed bytes.
    window: (u32, u64, u64),
    /// Compressed bytes per JSON byte of the reference window (the first full one after the
    /// current dictionary was made or last checked).
    reference: Option<f64>,
}

/// A compression context and scratch buffer, shared by every [`Codec`] of a store (writes are
/// serialized by the store's lock).
pub struct Packer {
    cctx: CCtx<'static>,
    scratch: Vec<u8>,
}

impl Default for Packer {
    fn default() -> Self {
        Self { cctx: CCtx::create(), scratch: Vec::new() }
    }
}

impl Packer {
    /// Pack `json` (an object of the resource `codec` belongs to).
    pub fn pack(&mut self, codec: &mut Codec, json: &Bytes) -> Stored {
        codec.writes += 1;
        let sample = if codec.trained {
            codec.collecting && codec.writes >= codec.collect_from && codec.writes.is_multiple_of(SAMPLE_STRIDE)
        } else {
            true
        };
        let stored = self.pack_with(codec, json);
        if sample && json.len() <= MAX_SAMPLE {
            // Kept as packed (shared with the store while the object is there), not as JSON.
            codec.samples.push(stored.clone());
            if codec.samples.len() >= TRAIN_SAMPLES {
                codec.train(self);
            }
        }
        stored
    }

    fn pack_with(&mut self, codec: &mut Codec, json: &Bytes) -> Stored {
        if json.len() < MIN_LEN {
            return Stored::Raw(json.clone());
        }
        let n = match &codec.current {
            Some(c) => self.compress(json, Some(&c.cdict)),
            None => self.compress(json, None),
        };
        match n {
            Some(n) if n < json.len() => {
                let z: Arc<[u8]> = Arc::from(&self.scratch[..n]);
                match &codec.current {
                    Some(c) => {
                        let dict = c.dict.clone();
                        codec.observe(json.len(), n);
                        Stored::Dict(z, dict)
                    }
                    None => Stored::Zstd(z),
                }
            }
            _ => Stored::Raw(json.clone()),
        }
    }

    /// Compress `json` into the scratch buffer: the frame's length.
    fn compress(&mut self, json: &[u8], cdict: Option<&CDict<'static>>) -> Option<usize> {
        self.scratch.clear();
        self.scratch.reserve(zstd_safe::compress_bound(json.len()));
        let r = match cdict {
            Some(d) => self.cctx.compress_using_cdict(&mut self.scratch, json, d),
            None => self.cctx.compress(&mut self.scratch, json, LEVEL),
        };
        r.ok()
    }

    /// Compressed bytes of `samples` with `cdict`.
    fn packed_size(&mut self, samples: &[Bytes], cdict: &CDict<'static>) -> usize {
        samples.iter().map(|s| self.compress(s, Some(cdict)).unwrap_or(s.len()).min(s.len())).sum()
    }
}

impl Codec {
    /// A write of `json_len` bytes packed with the current dictionary into `packed` bytes.
    fn observe(&mut self, json_len: usize, packed: usize) {
        let w = &mut self.window;
        w.0 += 1;
        w.1 += json_len as u64;
        w.2 += packed as u64;
        if w.0 < WINDOW {
            return;
        }
        let ratio = w.2 as f64 / w.1.max(1) as f64;
        self.window = (0, 0, 0);
        let Some(reference) = self.reference else {
            self.reference = Some(ratio);
            return;
        };
        if ratio > reference * DRIFT && !self.collecting && self.may_train() {
            self.collecting = true;
            self.collect_from = self.writes + SAMPLE_DELAY;
            self.samples.clear();
        }
    }

    /// Whether a training is allowed now: not too soon after the last one, and not while
    /// [`MAX_LIVE`] dictionaries are still held by blobs.
    fn may_train(&mut self) -> bool {
        self.made.retain(|d| d.strong_count() > 0);
        self.writes - self.trained_at >= RETRAIN_GAP && self.made.len() < MAX_LIVE && self.attempts < MAX_TRAININGS
    }

    fn train(&mut self, packer: &mut Packer) {
        // The first objects are what a cluster writes first (a resource's first Events are all
        // the Job controller's, none the kubelet's): once trained from them, samples spread over
        // the writes that follow make a second, usually better, dictionary.
        self.collecting = !self.trained;
        self.collect_from = self.writes + SAMPLE_DELAY;
        self.trained = true;
        self.trained_at = self.writes;
        self.attempts += 1;
        let samples: Vec<Bytes> = std::mem::take(&mut self.samples).iter().map(Stored::json).collect();
        // Too little to learn from (zstd needs some volume) or nothing in common: no dictionary.
        let Ok(dict) = zstd::dict::from_samples(&samples, DICT_SIZE) else { return self.keep_reference() };
        let Some(cdict) = CDict::try_create(&dict, LEVEL) else { return self.keep_reference() };
        if let Some(cur) = &self.current {
            // Kept only if it does better than the current one on the objects it learnt from.
            let new = packer.packed_size(&samples, &cdict);
            let old = packer.packed_size(&samples, &cur.cdict);
            if new as f64 > old as f64 * GAIN {
                return self.keep_reference();
            }
        }
        let Some(ddict) = DDict::try_create(&dict) else { return self.keep_reference() };
        let dict = Arc::new(Dict { ddict });
        self.made.push(Arc::downgrade(&dict));
        self.made_count += 1;
        self.current = Some(Current { cdict, dict });
        self.reference = None;
        self.window = (0, 0, 0);
    }

    /// No new dictionary: the next window becomes the reference (so the same drift does not
    /// start a training again).
    fn keep_reference(&mut self) {
        self.reference = None;
        self.window = (0, 0, 0);
    }

    /// How many dictionaries of this codec some blob (or the codec itself) still holds.
    pub fn live_dictionaries(&self) -> usize {
        self.made.iter().filter(|d| d.strong_count() > 0).count()
    }

    /// How many trainings this codec has done (whether it kept their dictionary or not).
    pub fn trainings(&self) -> u32 {
        self.attempts
    }

    /// How many dictionaries this codec has made (the superseded ones included).
    pub fn dictionaries_made(&self) -> usize {
        self.made_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(i: usize) -> Bytes {
        Bytes::from(format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"job-{i}-abcde","namespace":"default","uid":"{i:08}-1111-2222-3333-444455556666","labels":{{"batch.kubernetes.io/job-name":"job-{i}","controller-uid":"{i:08}"}}}},"spec":{{"containers":[{{"name":"main","image":"busybox","command":["sh","-c","exit {}"]}}],"restartPolicy":"Never"}},"status":{{"phase":"Succeeded"}}}}"#,
            i % 7
        ))
    }

    #[test]
    fn every_blob_reads_back_byte_for_byte_before_and_after_training() {
        let mut packer = Packer::default();
        let mut codec = Codec::default();
        let mut kept = Vec::new();
        for i in 0..(TRAIN_SAMPLES * 3) {
            let json = pod(i);
            let s = packer.pack(&mut codec, &json);
            assert_eq!(s.json_len(), json.len());
            kept.push((json, s));
        }
        assert!(codec.current.is_some(), "a dictionary is trained from the first objects");
        assert!(matches!(kept[0].1, Stored::Zstd(_)), "objects before training: plain zstd");
        assert!(matches!(kept.last().unwrap().1, Stored::Dict(..)), "objects after: with the dictionary");
        let plain = kept[0].1.size();
        let with_dict = kept.last().unwrap().1.size();
        assert!(with_dict < plain, "the dictionary makes a pod smaller ({with_dict} vs {plain} bytes)");
        for (json, s) in &kept {
            assert_eq!(&s.json(), json);
        }
        // Small and incompressible objects are kept as they are.
        let tiny = Bytes::from_static(br#"{"a":1}"#);
        assert!(matches!(packer.pack(&mut codec, &tiny), Stored::Raw(_)));
        let noise: String = (0..400u32).map(|i| char::from(b'a' + ((i * 7919 + i * i * 31) % 26) as u8)).collect();
        let noise = Bytes::from(format!(r#"{{"k":"{noise}"}}"#));
        assert_eq!(packer.pack(&mut codec, &noise).json(), noise);
    }

    /// An object of one of several shapes: what each shape shares (its keys and constant values,
    /// about 2 KiB) is unlike the others', and every object has its own name, uid and index.
    fn shaped(shape: u64, i: u64) -> Bytes {
        let h = |k: u64| (i.wrapping_add(k).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (shape << 7)).rotate_left(17);
        let mut s = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"shape{shape}-{i}-{:05x}","uid":"{:016x}-{:016x}","#,
            h(1) & 0xfffff,
            h(2),
            h(3)
        );
        for k in 0..24u64 {
            let word = (shape * 7919 + k * 104_729).wrapping_mul(0x2545_F491_4F6C_DD1D);
            s.push_str(&format!(
                r#""s{shape}-key-{word:x}":"value-{k}-of-shape-{shape}-{:x}-{:x}","#,
                word >> 3,
                word >> 11
            ));
        }
        s.push_str(&format!(r#""index":"{}","n":{}}}}}"#, i % 1000, h(4) % 97));
        Bytes::from(s)
    }

    #[test]
    fn a_drift_trains_a_dictionary_that_fits_the_later_objects() {
        let mut packer = Packer::default();
        let mut codec = Codec::default();
        for i in 0..RETRAIN_GAP {
            packer.pack(&mut codec, &shaped(0, i));
        }
        assert_eq!(codec.dictionaries_made(), 1, "trained once from the first objects, no drift");
        let (first, last) = pack_second_shape(&mut packer, &mut codec, 2 * RETRAIN_GAP);
        assert_eq!(codec.dictionaries_made(), 2, "the later shape drifted: a second dictionary");
        assert!(last * 2 < first, "the new dictionary fits the new shape: {last} bytes against {first}");
    }

    /// Packs `n` objects of a second shape: the first one's size and the last one's, after
    /// checking that every one reads back as packed.
    fn pack_second_shape(packer: &mut Packer, codec: &mut Codec, n: u64) -> (usize, usize) {
        let first = packer.pack(codec, &shaped(1, 0)).size();
        let mut kept = Vec::new();
        for i in 1..n {
            let json = shaped(1, i);
            kept.push((packer.pack(codec, &json), json));
        }
        for (stored, json) in &kept {
            assert_eq!(&stored.json(), json);
        }
        (first, kept.last().expect("objects packed").0.size())
    }

    #[test]
    fn a_second_dictionary_is_trained_from_samples_spread_after_the_first_objects() {
        let mut packer = Packer::default();
        let mut codec = Codec::default();
        // The first objects are unlike the ones that follow (no drift window is needed).
        for i in 0..TRAIN_SAMPLES as u64 {
            packer.pack(&mut codec, &shaped(0, i));
        }
        let (first, last) =
            pack_second_shape(&mut packer, &mut codec, SAMPLE_DELAY + SAMPLE_STRIDE * TRAIN_SAMPLES as u64 + 1);
        assert_eq!(codec.dictionaries_made(), 2, "trained again from the later objects");
        assert!(last * 2 < first, "the second dictionary fits them: {last} bytes against {first}");
    }

    #[test]
    fn a_dictionary_lives_as_long_as_its_blobs_and_no_more_are_kept_than_the_bound() {
        let mut packer = Packer::default();
        let mut codec = Codec::default();
        // A new shape every 2 * RETRAIN_GAP writes: every one drifts from the one before.
        let mut by_shape: Vec<Vec<(Stored, Bytes)>> = Vec::new();
        for shape in 0..(MAX_LIVE as u64 + 3) {
            let mut blobs = Vec::new();
            for i in 0..(2 * RETRAIN_GAP) {
                let json = shaped(shape, i);
                blobs.push((packer.pack(&mut codec, &json), json));
                assert!(codec.live_dictionaries() <= MAX_LIVE, "at most {MAX_LIVE} dictionaries held");
            }
            by_shape.push(blobs);
        }
        assert_eq!(codec.dictionaries_made(), MAX_LIVE, "no training while {MAX_LIVE} are held");
        for (stored, json) in by_shape.iter().flatten() {
            assert_eq!(&stored.json(), json);
        }
        // The blobs of every shape but the last go (their objects were deleted or rewritten):
        // their dictionaries go with them, and training resumes at the next drift.
        by_shape.drain(..by_shape.len() - 1);
        assert_eq!(codec.live_dictionaries(), 1, "only the current dictionary is still held");
        for i in 0..(2 * RETRAIN_GAP) {
            packer.pack(&mut codec, &shaped(100, i));
        }
        assert_eq!(codec.dictionaries_made(), MAX_LIVE + 1, "trained again once dictionaries were freed");
        for (stored, json) in by_shape.iter().flatten() {
            assert_eq!(&stored.json(), json);
        }
    }

    #[test]
    fn trainings_are_bounded_however_often_objects_drift() {
        let mut packer = Packer::default();
        let mut codec = Codec::default();
        // A new shape every 2 * RETRAIN_GAP writes, blobs not kept (so the live bound never
        // stops a training): only the bound on trainings does.
        for shape in 0..(MAX_TRAININGS as u64 + 4) {
            for i in 0..(2 * RETRAIN_GAP) {
                let json = shaped(shape, i);
                assert_eq!(packer.pack(&mut codec, &json).json(), json);
            }
        }
        assert_eq!(codec.trainings(), MAX_TRAININGS);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]

        /// Whatever the sequence of shapes (and so of trainings), every blob reads back as the
        /// very bytes packed.
        #[test]
        fn every_blob_reads_back_across_retrainings(
            runs in proptest::collection::vec((0u64..4, 1u64..(3 * RETRAIN_GAP)), 1..5),
            raw_every in 5usize..50,
        ) {
            let mut packer = Packer::default();
            let mut codec = Codec::default();
            let mut kept = Vec::new();
            let mut n = 0usize;
            for (shape, len) in runs {
                for i in 0..len {
                    n += 1;
                    // Now and then an object too small to compress, or one too large to sample.
                    let json = if n.is_multiple_of(raw_every) {
                        Bytes::from(format!(r#"{{"i":{i}}}"#))
                    } else if n % (raw_every * 7) == 1 {
                        Bytes::from(format!(r#"{{"big":"{}"}}"#, "x".repeat(MAX_SAMPLE + i as usize % 100)))
                    } else {
                        shaped(shape, i)
                    };
                    kept.push((packer.pack(&mut codec, &json), json));
                }
                proptest::prop_assert!(codec.live_dictionaries() <= MAX_LIVE);
            }
            for (stored, json) in &kept {
                proptest::prop_assert_eq!(stored.json_len(), json.len());
                proptest::prop_assert_eq!(&stored.json(), json);
            }
        }
    }

    #[test]
    fn blobs_read_back_on_other_threads() {
        let mut packer = Packer::default();
        let mut codec = Codec::default();
        let blobs: Vec<_> = (0..200).map(|i| (pod(i), packer.pack(&mut codec, &pod(i)))).collect();
        std::thread::spawn(move || {
            for (json, s) in blobs {
                assert_eq!(s.json(), json);
            }
        })
        .join()
        .unwrap();
    }
}
