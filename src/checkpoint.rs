//! Checkpoints: one safetensors file, the same natively and in the browser. The tensors are every
//! parameter, EMA parameter and Adam moment by name (`g/8x8/conv0/w`, `d_m/4x4/dense1/b`, ...); the
//! header's metadata holds the run's configuration, schedule position and curves (`history`) as JSON
//! and a CRC-32 of the tensor bytes and that JSON, so a damaged, truncated or foreign file is refused
//! with a message instead of loaded.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, ensure, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::train::config::TrainConfig;
use crate::train::state::{AdamSteps, TrainState};

/// The `format` metadata entry and its version; a newer version is refused, not guessed at.
/// Version 2: D's downsampling layers pool before their bias and activation (the official block),
/// and the CRC covers the configuration and state too. Version 3: a `history` entry (the run's
/// curves), also under the CRC; an older pggan would call it damaged, so it is refused there by
/// version. Version 1 files still load for sampling (G is unchanged), but a run cannot resume from
/// them; version 2 files load with an empty history.
pub const FORMAT: &str = "pggan-checkpoint";
pub const VERSION: u32 = 3;

/// A checkpoint in memory: configuration, schedule position (with the run's history) and named f32
/// tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The format version it was read from; [`VERSION`] for one made by this build.
    pub version: u32,
    pub config: TrainConfig,
    pub state: TrainState,
    pub adam: AdamSteps,
    /// Name -> (shape, values).
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

/// The `state` metadata entry: the run's position and the Adam step counts, in one JSON object.
#[derive(Serialize, Deserialize)]
struct StateEntry {
    #[serde(flatten)]
    run: TrainState,
    #[serde(flatten)]
    adam: AdamSteps,
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

impl Checkpoint {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let bytes: BTreeMap<&str, &[u8]> = self
            .tensors
            .iter()
            .map(|(name, (_, values))| (name.as_str(), bytemuck::cast_slice::<f32, u8>(values)))
            .collect();
        let (config, state) = (
            serde_json::to_string(&self.config)?,
            serde_json::to_string(&StateEntry {
                run: self.state.clone(),
                adam: self.adam,
            })?,
        );
        let history = serde_json::to_string(&self.state.history)?;
        let crc = checksum(bytes.iter().map(|(n, b)| (*n, *b)), &[&config, &state, &history]);
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), VERSION.to_string()),
            ("config".to_string(), config),
            ("state".to_string(), state),
            ("history".to_string(), history),
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

    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
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
        let StateEntry { run: mut state, adam } =
            serde_json::from_str(state).context("the checkpoint's training state is unreadable")?;
        if version < 2 {
            // Version 1 evaluated the schedule at every step.
            state.schedule_images = state.images;
        }
        if let Some(history) = history {
            state.history = serde_json::from_str(history).context("the checkpoint's history is unreadable")?;
        }
        Ok(Checkpoint {
            version,
            config: serde_json::from_str(config).context("the checkpoint's configuration is unreadable")?,
            state,
            adam,
            tensors,
        })
    }

    /// The values of tensor `name`, which must have exactly `shape`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (have, values) = self
            .tensors
            .get(name)
            .ok_or_else(|| anyhow!("the checkpoint has no tensor {name}"))?;
        ensure!(
            have == shape,
            "the checkpoint's {name} has shape {have:?}, this configuration needs {shape:?}"
        );
        Ok(values)
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

#[cfg(not(target_arch = "wasm32"))]
pub fn save(path: &std::path::Path, ck: &Checkpoint) -> Result<()> {
    write_atomic(path, &ck.to_bytes()?)
}

#[cfg(not(target_arch = "wasm32"))]
pub fn load(path: &std::path::Path) -> Result<Checkpoint> {
    load_bytes(path, &read(path)?)
}

/// The bytes of the checkpoint file `path`, unparsed (a data-parallel run sends them to its ranks).
#[cfg(not(target_arch = "wasm32"))]
pub fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))
}

/// The checkpoint in `bytes`, read from the file `path`.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_bytes(path: &std::path::Path, bytes: &[u8]) -> Result<Checkpoint> {
    Checkpoint::from_bytes(bytes).with_context(|| format!("refusing checkpoint {}", path.display()))
}
