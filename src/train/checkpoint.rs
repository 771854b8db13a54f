//! A run's checkpoint: the configuration, the run's state and history, and every tensor of the
//! model by name, in the checkpoint format of [`crate::checkpoint`]; the one mapping between the
//! model and its tensors' names (`g/8x8/conv0/w`, `d_m/4x4/dense1/b`, ...), and the loading of a
//! group of them.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::state::{AdamSteps, TrainState};
use super::step::Model;
pub use crate::checkpoint::VERSION;
use crate::checkpoint::{Stored, Tensors};
use crate::gpu::{Gpu, Tensor};
use crate::nn::arch::Layer;
use crate::nn::net::Params;
use crate::ops::reduce::{self, Term, View};

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
    pub tensors: Tensors,
}

/// The `state` metadata entry: the run's position and the Adam step counts, in one JSON object.
#[derive(Serialize, Deserialize)]
struct StateEntry {
    #[serde(flatten)]
    run: TrainState,
    #[serde(flatten)]
    adam: AdamSteps,
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let state = StateEntry {
            run: self.state.clone(),
            adam: self.adam,
        };
        Stored {
            version: VERSION,
            config: serde_json::to_string(&self.config)?,
            state: serde_json::to_string(&state)?,
            history: Some(serde_json::to_string(&self.state.history)?),
            tensors: self.tensors.clone(),
        }
        .to_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
        let stored = Stored::from_bytes(bytes)?;
        let StateEntry { run: mut state, adam } =
            serde_json::from_str(&stored.state).context("the checkpoint's training state is unreadable")?;
        if stored.version < 2 {
            // Version 1 evaluated the schedule at every step.
            state.schedule_images = state.images;
        }
        if let Some(history) = &stored.history {
            state.history = serde_json::from_str(history).context("the checkpoint's history is unreadable")?;
        }
        Ok(Checkpoint {
            version: stored.version,
            config: TrainConfig::from_json(&stored.config).context("the checkpoint's configuration is unreadable")?,
            state,
            adam,
            tensors: stored.tensors,
        })
    }

    /// Refuses a checkpoint of format version 1: its D applied the bias and leaky ReLU before the
    /// downsampling, so it can neither continue training nor be exported as today's D.
    pub fn check_discriminator(&self) -> Result<()> {
        anyhow::ensure!(
            self.version >= 2,
            "this checkpoint (format version {}) was trained with an earlier discriminator block, which \
             applied the bias and leaky ReLU before the downsampling; its D cannot continue with the \
             official block. Its generator still works with generate, interpolate and export --onnx; \
             start a new run to train",
            self.version
        );
        Ok(())
    }

    /// The values of tensor `name`, which must have exactly `shape`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (have, values) = self
            .tensors
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("the checkpoint has no tensor {name}"))?;
        anyhow::ensure!(
            have == shape,
            "the checkpoint's {name} has shape {have:?}, this configuration needs {shape:?}"
        );
        Ok(values)
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub fn save(path: &std::path::Path, ck: &Checkpoint) -> Result<()> {
    crate::files::write_atomic(path, &ck.to_bytes()?)
}

#[cfg(not(target_arch = "wasm32"))]
pub fn load(path: &std::path::Path) -> Result<Checkpoint> {
    load_bytes(path, &crate::checkpoint::read(path)?)
}

/// The checkpoint in `bytes`, read from the file `path`.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_bytes(path: &std::path::Path, bytes: &[u8]) -> Result<Checkpoint> {
    Checkpoint::from_bytes(bytes).with_context(|| format!("refusing checkpoint {}", path.display()))
}

/// The checkpoint group of the EMA generator: all that sampling needs, and all an exported
/// generator holds.
pub const EMA_GROUP: &str = "g_ema";
/// The checkpoint group of D's parameters, which only a checkpoint of a whole run holds.
const D_GROUP: &str = "d";

/// Whether `ck` holds a whole run that training can continue (not only an exported generator).
pub fn holds_a_run(ck: &Checkpoint) -> bool {
    ck.tensors.keys().any(|k| k.starts_with(&format!("{D_GROUP}/")))
}

/// `ck` reduced to its EMA generator: an exported generator.
pub fn generator_only(mut ck: Checkpoint) -> Checkpoint {
    ck.tensors.retain(|name, _| name.starts_with(&format!("{EMA_GROUP}/")));
    ck
}

/// The tensor groups a checkpoint holds, with the layers they follow: the one mapping between the
/// model and its tensors' names.
pub(crate) fn groups(m: &Model<Tensor>) -> [(&'static str, &Params<Tensor>, &[Layer]); 7] {
    [
        ("g", &m.g.params, &m.g.layers),
        (D_GROUP, &m.d.params, &m.d.layers),
        (EMA_GROUP, &m.g_ema, &m.g.layers),
        ("g_m", &m.g.adam.m, &m.g.layers),
        ("g_v", &m.g.adam.v, &m.g.layers),
        ("d_m", &m.d.adam.m, &m.d.layers),
        ("d_v", &m.d.adam.v, &m.d.layers),
    ]
}

/// Records counting the NaN and infinite values of each group of a checkpoint's tensors, one
/// reduction per group; returns the counts ([1] each, in [`groups`] order).
pub fn nonfinite_counts(gpu: &Gpu, model: &Model<Tensor>) -> Result<Vec<Tensor>> {
    let mut counts = Vec::new();
    for (_, params, _) in groups(model) {
        let count = gpu.scratch(&[1])?;
        let view = View::per_sample(&[1, params.all.len()]);
        reduce::sum(gpu, &params.all, view, Term::NonFinite, false, &count)?;
        counts.push(count);
    }
    Ok(counts)
}

/// A group's tensors with their checkpoint names (`d/8x8/conv0/w`, ...).
pub(crate) fn named<'a>(group: &str, params: &'a Params<Tensor>, layers: &[Layer]) -> Vec<(String, &'a Tensor)> {
    let mut out = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        for (suffix, t) in [("w", &params.w[i]), ("b", &params.b[i])] {
            out.push((format!("{group}/{}/{suffix}", layer.name), t));
        }
    }
    out
}

/// One group of a checkpoint's tensors into `params`, checked against the layers' shapes.
pub fn load_params(gpu: &Gpu, ck: &Checkpoint, group: &str, layers: &[Layer], params: &Params<Tensor>) -> Result<()> {
    for (i, l) in layers.iter().enumerate() {
        gpu.write(
            &params.w[i],
            ck.tensor(&format!("{group}/{}/w", l.name), &l.weight_shape())?,
        )?;
        gpu.write(&params.b[i], ck.tensor(&format!("{group}/{}/b", l.name), &[l.bias])?)?;
    }
    Ok(())
}
