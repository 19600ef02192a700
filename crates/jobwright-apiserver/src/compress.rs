//! Objects at rest: the store keeps each object's JSON zstd-compressed, with a dictionary per
//! resource trained from that resource's first objects, and decompresses it when it is read.
//!
//! A [`Stored`] blob says how it was packed: the JSON itself ([`Stored::Raw`], when compressing
//! does not make it smaller), a plain zstd frame, or a zstd frame made with a dictionary, which
//! the blob holds a reference to. A dictionary is never replaced or dropped while a blob needs it,
//! so every blob stays readable; reads give back exactly the bytes that were packed.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;
use zstd::zstd_safe::{self, CCtx, CDict, DCtx, DDict};

/// zstd level: with a dictionary, level 1 is within a few percent of level 3 on pods and Events,
/// and costs less CPU per write.
const LEVEL: i32 = 1;
/// How many of a resource's first objects a dictionary is trained from.
const TRAIN_SAMPLES: usize = 64;
/// Largest dictionary (zstd's own advice: about 100 times smaller than the samples).
const DICT_SIZE: usize = 16 << 10;
/// Objects this small are kept as they are (a zstd frame has a header of its own).
const MIN_LEN: usize = 64;
/// Objects larger than this are not kept as samples (bounds what waits for training).
const MAX_SAMPLE: usize = 16 << 10;

/// A trained dictionary, digested for both directions.
pub struct Dict {
    cdict: CDict<'static>,
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

/// What compresses the objects of one resource: its dictionary once trained.
#[derive(Default)]
pub struct Codec {
    /// The first objects, until the dictionary is trained from them.
    samples: Vec<Bytes>,
    /// The dictionary; `None` before training (or when training found nothing to learn).
    dict: Option<Arc<Dict>>,
    /// Whether training was done (or given up).
    trained: bool,
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
        if !codec.trained && json.len() <= MAX_SAMPLE {
            codec.samples.push(json.clone());
            if codec.samples.len() >= TRAIN_SAMPLES {
                codec.train();
            }
        }
        if json.len() < MIN_LEN {
            return Stored::Raw(json.clone());
        }
        self.scratch.clear();
        self.scratch.reserve(zstd_safe::compress_bound(json.len()));
        let r = match &codec.dict {
            Some(d) => self.cctx.compress_using_cdict(&mut self.scratch, json, &d.cdict),
            None => self.cctx.compress(&mut self.scratch, json, LEVEL),
        };
        match r {
            Ok(n) if n < json.len() => {
                let z: Arc<[u8]> = Arc::from(&self.scratch[..n]);
                match &codec.dict {
                    Some(d) => Stored::Dict(z, d.clone()),
                    None => Stored::Zstd(z),
                }
            }
            _ => Stored::Raw(json.clone()),
        }
    }
}

impl Codec {
    fn train(&mut self) {
        self.trained = true;
        let samples = std::mem::take(&mut self.samples);
        // Too little to learn from (zstd needs some volume) or nothing in common: no dictionary.
        let Ok(dict) = zstd::dict::from_samples(&samples, DICT_SIZE) else { return };
        let (Some(cdict), Some(ddict)) = (CDict::try_create(&dict, LEVEL), DDict::try_create(&dict)) else { return };
        self.dict = Some(Arc::new(Dict { cdict, ddict }));
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
        assert!(codec.dict.is_some(), "a dictionary is trained from the first objects");
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
