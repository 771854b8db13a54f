//! What the device offers below f32 (half-precision arithmetic, cooperative matrices) and the
//! precision a run asks for: `f32`, `mixed` (f16 operands, f32 accumulation) or `auto`.

use anyhow::{bail, Result};

/// The reduced-precision features the device was opened with (each requested only where the adapter
/// offers it, so these are the adapter's too).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrecisionCaps {
    /// `Features::SHADER_F16`: WGSL `enable f16;` (Vulkan shaderFloat16, the browser's `shader-f16`).
    pub shader_f16: bool,
    /// `Features::EXPERIMENTAL_COOPERATIVE_MATRIX` (tensor cores, simdgroup matrices): the
    /// configurations the adapter lists, empty when the feature is absent. Native only.
    pub cooperative_matrix: Vec<wgpu::CooperativeMatrixProperties>,
    /// The subgroup size of every pipeline where the adapter has only one (its minimum equals its
    /// maximum: 32 on NVIDIA, 8 on lavapipe); the cooperative convolution divides its tiles by it.
    pub subgroup_size: Option<u32>,
}

impl PrecisionCaps {
    /// Whether the adapter lists an `n`x`n`x`n` cooperative product with f16 operands and an f32
    /// accumulator, what `coop_mat{n}x{n}<f16, A/B>` with `coop_mat{n}x{n}<f32, C>` compiles to.
    pub fn coop_f16_f32(&self, n: u32) -> bool {
        self.cooperative_matrix.iter().any(|c| {
            (c.m_size, c.n_size, c.k_size) == (n, n, n)
                && c.ab_type == wgpu::CooperativeScalarType::F16
                && c.cr_type == wgpu::CooperativeScalarType::F32
        })
    }

    /// The side N of the cooperative products the kernels use: 16 where the adapter lists the
    /// 16x16x16 f16 x f16 + f32 configuration (tensor cores), else 8 where it lists 8x8x8 (lavapipe),
    /// else none.
    pub fn coop_size(&self) -> Option<u32> {
        [16, 8].into_iter().find(|&n| self.coop_f16_f32(n))
    }

    /// One line per feature: "shader-f16: yes", then the cooperative-matrix configurations.
    pub fn describe(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut out = format!("shader-f16: {}\n", yes(self.shader_f16));
        if self.cooperative_matrix.is_empty() {
            out += "cooperative matrices: no\n";
        } else {
            out += &format!(
                "cooperative matrices: {} configurations\n",
                self.cooperative_matrix.len()
            );
            for c in &self.cooperative_matrix {
                out += &format!(
                    "  M{} N{} K{}  A,B {:?}  C {:?}{}\n",
                    c.m_size,
                    c.n_size,
                    c.k_size,
                    c.ab_type,
                    c.cr_type,
                    if c.saturating_accumulation { "  saturating" } else { "" }
                );
            }
        }
        if let Some(size) = self.subgroup_size {
            out += &format!("subgroup size: {size}\n");
        }
        out
    }
}

/// The arithmetic of the matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Everything in f32.
    F32,
    /// Operands rounded to f16, products accumulated in f32 (what tensor cores do).
    Mixed,
}

/// The precision a run asks for (a run's `precision` setting, `--precision`), written `f32`,
/// `mixed` or `auto`; the device decides what it becomes ([`PrecisionChoice::resolve`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PrecisionChoice {
    #[default]
    F32,
    Mixed,
    Auto,
}

impl PrecisionChoice {
    /// The choice on a device with `caps`: `auto` is `mixed` where the device has f16 arithmetic
    /// (shader-f16: every mixed kernel, the cooperative ones too, holds f16 values), `f32`
    /// elsewhere; `mixed` on a device without it is an error.
    pub fn resolve(self, caps: &PrecisionCaps) -> Result<Precision> {
        let f16 = caps.shader_f16;
        match self {
            PrecisionChoice::F32 => Ok(Precision::F32),
            PrecisionChoice::Auto => Ok(if f16 { Precision::Mixed } else { Precision::F32 }),
            PrecisionChoice::Mixed if f16 => Ok(Precision::Mixed),
            PrecisionChoice::Mixed => bail!(
                "precision mixed needs f16 arithmetic (the shader-f16 feature), which this adapter \
                 does not offer; use f32 or auto"
            ),
        }
    }

    pub fn is_f32(&self) -> bool {
        *self == PrecisionChoice::F32
    }

    pub fn name(self) -> &'static str {
        match self {
            PrecisionChoice::F32 => "f32",
            PrecisionChoice::Mixed => "mixed",
            PrecisionChoice::Auto => "auto",
        }
    }
}

impl std::str::FromStr for PrecisionChoice {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<PrecisionChoice> {
        [PrecisionChoice::F32, PrecisionChoice::Mixed, PrecisionChoice::Auto]
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| anyhow::anyhow!("precision {s:?} is not one of f32, mixed, auto"))
    }
}

impl TryFrom<String> for PrecisionChoice {
    type Error = anyhow::Error;

    fn try_from(s: String) -> Result<PrecisionChoice> {
        s.parse()
    }
}

impl From<PrecisionChoice> for String {
    fn from(c: PrecisionChoice) -> String {
        c.name().into()
    }
}

impl super::Gpu {
    /// Whether the device has f16 arithmetic, which `what` (a mixed-precision kernel) needs: an
    /// error saying what it lacks otherwise.
    pub fn require_f16(&self, what: &str) -> Result<()> {
        anyhow::ensure!(
            self.precision.shader_f16,
            "{what} needs f16 arithmetic (SHADER_F16, the browser's shader-f16), which this device ({}) \
             does not have",
            self.describe()
        );
        Ok(())
    }
}

/// The features to request beyond the plain ones: SHADER_F16 and EXPERIMENTAL_COOPERATIVE_MATRIX,
/// each where the adapter offers it, and whether the experimental opt-in is needed for them.
pub(super) fn features(adapter: &wgpu::Features) -> (wgpu::Features, bool) {
    let wanted = wgpu::Features::SHADER_F16 | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
    let features = *adapter & wanted;
    (
        features,
        features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
    )
}

/// The names of the reduced-precision features in `f`, for messages.
pub(super) fn feature_names(f: wgpu::Features) -> String {
    let mut names = Vec::new();
    if f.contains(wgpu::Features::SHADER_F16) {
        names.push("SHADER_F16");
    }
    if f.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        names.push("EXPERIMENTAL_COOPERATIVE_MATRIX");
    }
    if names.is_empty() {
        format!("{f:?}")
    } else {
        names.join(" and ")
    }
}
