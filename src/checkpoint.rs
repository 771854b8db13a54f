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

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, then renamed, so a
/// crash leaves either the old file or the new one, never half of one. A failed write (a full
/// disk) removes its temporary file, leaves `path` as it was and names it.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}

/// The bytes of the checkpoint file `path`, unparsed (a data-parallel run sends them to its ranks).
#[cfg(not(target_arch = "wasm32"))]
pub fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))
}
