//! The precision of a run's layers, chosen once per run and passed to every layer pass: what a
//! resolved [`Precision`] becomes on this device (the dense layers' kernel and the convolutions'),
//! checked before use, and described for the run's log. `gpu::precision` says what the device
//! offers and how a run's choice resolves against it; nothing here is device state.

use anyhow::Result;

use super::conv::{self, Kernel};
use crate::gpu::{Gpu, Precision, PrecisionChoice};

/// The arithmetic of the layers' matrix products: the convolution and dense passes the networks and
/// the training step launch (forward, both backward passes, the penalty's tangent run). Everything
/// else (Adam, EMA, losses, norms, reductions) is always f32.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerPrecision {
    /// The dense layers' (`dense::shader`).
    pub precision: Precision,
    /// The convolutions' kernel (each pass fits it to its size, `Kernel::fit`).
    pub conv: Kernel,
    /// Why the convolutions are not on the cooperative matrices the device lists, where they are not.
    coop_refused: Option<String>,
}

impl LayerPrecision {
    pub const F32: LayerPrecision = LayerPrecision {
        precision: Precision::F32,
        conv: Kernel::F32,
        coop_refused: None,
    };

    /// A run's choice on this device: resolved (`PrecisionChoice::resolve`), then `of`, then
    /// `verified`; the warning is for the caller to show.
    pub async fn choose(gpu: &Gpu, choice: PrecisionChoice) -> Result<(LayerPrecision, Option<String>)> {
        LayerPrecision::of(gpu, choice.resolve(&gpu.precision)?)?
            .verified(gpu)
            .await
    }

    /// `precision` on this device, not yet checked (`verified`). Mixed precision needs f16
    /// arithmetic; its convolutions run on cooperative matrices where the device has them and they
    /// are not turned off (`conv::coop`), else on f16 arithmetic.
    pub fn of(gpu: &Gpu, precision: Precision) -> Result<LayerPrecision> {
        if precision == Precision::F32 {
            return Ok(LayerPrecision::F32);
        }
        gpu.require_f16("precision mixed")?;
        let f16 = |coop_refused| LayerPrecision {
            precision,
            conv: Kernel::F16,
            coop_refused,
        };
        // On the many devices without cooperative matrices, `coop`'s error, which is built to be
        // read, is not built at all.
        if gpu.precision.coop_size().is_none() {
            return Ok(f16(None));
        }
        Ok(match conv::coop(gpu) {
            Ok(kernel) => LayerPrecision {
                precision,
                conv: kernel,
                coop_refused: None,
            },
            Err(e) => f16(Some(format!("{e:#}"))),
        })
    }

    /// Before mixed precision trains on a cooperative convolution: its check on this device
    /// (`conv::verify_coop`). Where it fails, which no device tested so far does (a device might form
    /// subgroups other than as conv_coop.wgsl assumes, or compile the experimental operations
    /// wrongly), the convolutions keep to f16 arithmetic and the warning, for the caller to show,
    /// says why. Anything else is returned as it is, with no warning.
    pub async fn verified(self, gpu: &Gpu) -> Result<(LayerPrecision, Option<String>)> {
        self.verified_within(gpu, super::coop_gemm::ACC_UNIT).await
    }

    /// `verified` with the accumulator's unit roundoff `acc_unit` (the tests shrink it to make the
    /// check fail).
    pub async fn verified_within(self, gpu: &Gpu, acc_unit: f64) -> Result<(LayerPrecision, Option<String>)> {
        let Kernel::Coop { .. } = self.conv else {
            return Ok((self, None));
        };
        let Some(why) = conv::verify_coop(gpu, self.conv, acc_unit).await? else {
            return Ok((self, None));
        };
        let warning = format!(
            "the convolution on cooperative matrices ({}) {why}; mixed precision uses f16 arithmetic instead (conv+f16)",
            self.conv.name()
        );
        let f16 = LayerPrecision {
            conv: Kernel::F16,
            coop_refused: Some(format!("conv coop: {why}")),
            ..self
        };
        Ok((f16, Some(warning)))
    }

    /// As a run reports it: `F32`, or `Mixed` with the convolutions' kernel (passes with fewer
    /// output rows than one cooperative block, toRGB, run `conv+f16`: `Kernel::fit`) and, where the
    /// device lists cooperative matrices and that kernel is still `conv+f16`, why (turned off,
    /// failed its check, or what the device lacks).
    pub fn describe(&self) -> String {
        match (self.precision, &self.coop_refused) {
            (Precision::F32, _) => "F32".into(),
            (Precision::Mixed, None) => format!("Mixed, convolutions on {}", self.conv.name()),
            (Precision::Mixed, Some(why)) => format!("Mixed, convolutions on {} ({why})", self.conv.name()),
        }
    }
}
