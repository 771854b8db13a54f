//! The checkpoint format: one safetensors file, the same natively and in the browser. The tensors
//! are named f32 arrays; the header's metadata holds the format's name and version, three JSON
//! entries (`config`, `state`, `history`) whose meaning is the trainer's (`train::checkpoint`), and
//! a CRC-32 of the tensor bytes and those entries, so a damaged, truncated or foreign file is
//! refused with a message instead of loaded.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, ensure, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// The `format` metadata entry and its version; a newer version is refused, not guessed at.
/// Version 2: D's downsampling layers pool before their bias and activation (the official block),
/// and the CRC covers the configuration and state too. Version 3: a `history` entry (the run's
/// curves), also under the CRC; an older pggan would call it damaged, so it is refused there by
/// version. Version 1 files still load for sampling (G is unchanged), but a run cannot resume from
/// them; version 2 files load with an empty history.
pub const FORMAT: &str = "pggan-checkpoint";
pub const VERSION: u32 = 3;

/// Named tensors: name -> (shape, values).
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// A checkpoint file's contents, the metadata entries as their JSON text.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// The format version it was read from; [`VERSION`] is what [`Stored::to_bytes`] writes.
    pub version: u32,
    pub config: String,
    pub state: String,
    /// `None` before version 3.
    pub history: Option<String>,
    pub tensors: Tensors,
}

/// CRC-32 over every tensor's name and bytes, in name order, then (from version 2 on) the
/// configuration's and the state's JSON and (from version 3 on) the history's, so that a damaged
/// header is refused too.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>, meta: &[&String]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    for (name, bytes) in tensors {
        crc.update(name.as_bytes());
        crc.update(bytes);
    }
    for m in meta {
        crc.update(m.as_bytes());
    }
    crc.finalize()
}

impl Stored {
    /// The file at [`VERSION`]; every entry, the history included, must be there.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let history = self
            .history
            .as_ref()
            .ok_or_else(|| anyhow!("a checkpoint of version {VERSION} needs its history"))?;
        let bytes: BTreeMap<&str, &[u8]> = self
            .tensors
            .iter()
            .map(|(name, (_, values))| (name.as_str(), bytemuck::cast_slice::<f32, u8>(values)))
            .collect();
        let crc = checksum(
            bytes.iter().map(|(n, b)| (*n, *b)),
            &[&self.config, &self.state, history],
        );
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), VERSION.to_string()),
            ("config".to_string(), self.config.clone()),
            ("state".to_string(), self.state.clone()),
            ("history".to_string(), history.clone()),
            ("crc32".to_string(), format!("{crc:08x}")),
        ]);
        let views = self
            .tensors
            .iter()
            .map(|(name, (shape, _))| {
                Ok((
                    name.clone(),
                    TensorView::new(Dtype::F32, shape.clone(), bytes[name.as_str()])?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(safetensors::serialize(views, Some(metadata))?)
    }

    /// A file of any version up to [`VERSION`], its checksum verified and every value finite.
    pub fn from_bytes(bytes: &[u8]) -> Result<Stored> {
        let not_ours = "not a pggan checkpoint";
        let file = SafeTensors::deserialize(bytes).map_err(|e| anyhow!("{not_ours} or damaged: {e}"))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| anyhow!("{not_ours} or damaged: {e}"))?;
        let meta = header
            .metadata()
            .as_ref()
            .ok_or_else(|| anyhow!("{not_ours}: the safetensors header has no metadata"))?;
        let get = |key: &str| {
            meta.get(key)
                .ok_or_else(|| anyhow!("{not_ours}: no {key:?} in its metadata"))
        };
        ensure!(
            get("format")? == FORMAT,
            "{not_ours}: its format is {:?}",
            get("format")?
        );
        let version: u32 = get("version")?.parse().context("unreadable checkpoint version")?;
        ensure!(
            version <= VERSION,
            "the checkpoint has format version {version}; this pggan reads up to {VERSION}: update pggan"
        );
        let mut names: Vec<(String, TensorView)> = file.tensors();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let (config, state) = (get("config")?, get("state")?);
        let history = match version {
            3.. => Some(get("history")?),
            _ => None,
        };
        let meta: Vec<&String> = match version {
            2.. => [config, state].into_iter().chain(history).collect(),
            _ => vec![],
        };
        let crc = checksum(names.iter().map(|(n, v)| (n.as_str(), v.data())), &meta);
        let expected = get("crc32")?;
        if format!("{crc:08x}") != *expected {
            bail!("the checkpoint is damaged: its checksum is {crc:08x}, its header says {expected}");
        }
        let mut tensors = BTreeMap::new();
        for (name, view) in names {
            ensure!(
                view.dtype() == Dtype::F32,
                "tensor {name} is {:?}, expected F32",
                view.dtype()
            );
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            ensure!(
                values.iter().all(|v| v.is_finite()),
                "tensor {name} holds NaN or infinite values: the run had diverged when this was saved"
            );
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(Stored {
            version,
            config: config.clone(),
            state: state.clone(),
            history: history.cloned(),
            tensors,
        })
    }
}

/// The bytes of the checkpoint file `path`, unparsed (a data-parallel run sends them to its ranks):
/// read only from a regular file (not a device such as `/dev/zero`, not a FIFO), and only as many
/// bytes as its safetensors header declares, which must be the file's length.
#[cfg(not(target_arch = "wasm32"))]
pub fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let refusing = || format!("refusing checkpoint {}", path.display());
    let mut file = crate::files::open_regular(path).with_context(refusing)?;
    let len = file.metadata().with_context(refusing)?.len();
    let declared = declared_len(&mut file).with_context(refusing)?;
    ensure!(
        len == declared,
        "refusing checkpoint {}: damaged or truncated: it is {len} bytes, its header declares {declared}",
        path.display()
    );
    file.rewind().with_context(refusing)?;
    crate::files::read_exactly(file.by_ref(), declared)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))
}

/// The length a safetensors file declares: its 8-byte header length, the header, and the tensor
/// data up to the last tensor's end.
#[cfg(not(target_arch = "wasm32"))]
fn declared_len(file: &mut impl std::io::Read) -> Result<u64> {
    // safetensors' own bound on a header.
    const MAX_HEADER: u64 = 100_000_000;
    let damaged = "not a pggan checkpoint or damaged";
    let mut n = [0; 8];
    file.read_exact(&mut n).context(damaged)?;
    let n = u64::from_le_bytes(n);
    ensure!(
        n <= MAX_HEADER,
        "{damaged}: its header claims {n} bytes, over the {MAX_HEADER} a safetensors header may have"
    );
    let header = crate::files::read_exactly(file, n).context(damaged)?;
    let header: HashMap<String, serde_json::Value> = serde_json::from_slice(&header).context(damaged)?;
    let end = header
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, t)| {
            t["data_offsets"][1]
                .as_u64()
                .ok_or_else(|| anyhow!("{damaged}: tensor {name} has no data offsets"))
        })
        .try_fold(0, |end, e| e.map(|e| end.max(e)))?;
    Ok(8 + n + end)
}
