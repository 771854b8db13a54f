//! The layers of G and D (Karras et al. 2018, Table 2; official networks.py `G_paper`, `D_paper`) and their
//! parameter layout.
//!
//! Every parameterised layer is a convolution or dense product with the equalized-LR scale (in D's
//! downsampling layers followed by a 2x2 average pool), then a per-channel bias and a leaky ReLU
//! (slope 1: linear). Layers are stored in a fixed order so a
//! level's layers are found by arithmetic:
//! - G: per level l = 1..L: [first, second, toRGB_l]; level 1's first layer is the latent dense.
//! - D: level 1: [fromRGB_1, conv, dense0, dense1]; level l >= 2: [fromRGB_l, conv0, conv1_down].

use super::config::{res_of, NetConfig};
use crate::ops::act::SLOPE;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// Convolution with a k x k kernel.
    Conv {
        k: usize,
    },
    Dense,
}

#[derive(Clone, Debug)]
pub struct Layer {
    pub name: String,
    pub kind: Kind,
    /// Fan-in rows of the weight: input channels (conv) or input features (dense).
    pub inputs: usize,
    /// Output channels (conv) or output features (dense).
    pub outputs: usize,
    /// Bias length: one per output channel (G's latent dense has one per map of its 4x4 output).
    pub bias: usize,
    /// Equalized-LR gain: the weight is scaled by gain / sqrt(fan_in) at run time.
    pub gain: f32,
    /// Leaky ReLU slope after the bias; 1 for linear layers.
    pub slope: f32,
    /// A 2x2 average pool between the convolution and the bias (D's `conv1_down`: the official
    /// `conv2d_downscale2d`, so the bias and the leaky ReLU act on the pooled map).
    pub down: bool,
}

pub const SQRT2: f32 = std::f32::consts::SQRT_2;

fn conv(name: String, k: usize, inputs: usize, outputs: usize, gain: f32, slope: f32) -> Layer {
    Layer {
        name,
        kind: Kind::Conv { k },
        inputs,
        outputs,
        bias: outputs,
        gain,
        slope,
        down: false,
    }
}

impl Layer {
    pub fn weight_shape(&self) -> Vec<usize> {
        match self.kind {
            Kind::Conv { k } => vec![self.outputs, self.inputs, k, k],
            Kind::Dense => vec![self.outputs, self.inputs],
        }
    }

    pub fn params(&self) -> usize {
        self.weight_shape().iter().product::<usize>() + self.bias
    }
}

/// G's layers in storage order.
pub fn generator(cfg: &NetConfig) -> Vec<Layer> {
    let mut layers = Vec::new();
    for level in 1..=cfg.levels() {
        let (r, maps) = (res_of(level), cfg.maps(level));
        if level == 1 {
            layers.push(Layer {
                name: "4x4/dense".into(),
                kind: Kind::Dense,
                inputs: cfg.latent,
                outputs: maps * 16,
                bias: maps,
                gain: SQRT2 / 4.0,
                slope: SLOPE,
                down: false,
            });
            layers.push(conv("4x4/conv".into(), 3, maps, maps, SQRT2, SLOPE));
        } else {
            layers.push(conv(
                format!("{r}x{r}/conv0_up"),
                3,
                cfg.maps(level - 1),
                maps,
                SQRT2,
                SLOPE,
            ));
            layers.push(conv(format!("{r}x{r}/conv1"), 3, maps, maps, SQRT2, SLOPE));
        }
        layers.push(conv(format!("{r}x{r}/toRGB"), 1, maps, cfg.channels, 1.0, 1.0));
    }
    layers
}

/// D's layers in storage order.
pub fn discriminator(cfg: &NetConfig) -> Vec<Layer> {
    let mut layers = Vec::new();
    for level in 1..=cfg.levels() {
        let (r, maps) = (res_of(level), cfg.maps(level));
        layers.push(conv(format!("{r}x{r}/fromRGB"), 1, cfg.channels, maps, SQRT2, SLOPE));
        if level == 1 {
            // The minibatch-stddev map is the conv's one extra input channel.
            layers.push(conv("4x4/conv".into(), 3, maps + 1, maps, SQRT2, SLOPE));
            let hidden = cfg.nf(0);
            layers.push(Layer {
                name: "4x4/dense0".into(),
                kind: Kind::Dense,
                inputs: maps * 16,
                outputs: hidden,
                bias: hidden,
                gain: SQRT2,
                slope: SLOPE,
                down: false,
            });
            layers.push(Layer {
                name: "4x4/dense1".into(),
                kind: Kind::Dense,
                inputs: hidden,
                outputs: 1,
                bias: 1,
                gain: 1.0,
                slope: 1.0,
                down: false,
            });
        } else {
            layers.push(conv(format!("{r}x{r}/conv0"), 3, maps, maps, SQRT2, SLOPE));
            layers.push(Layer {
                down: true,
                ..conv(
                    format!("{r}x{r}/conv1_down"),
                    3,
                    maps,
                    cfg.maps(level - 1),
                    SQRT2,
                    SLOPE,
                )
            });
        }
    }
    layers
}

/// G: the index of level `level`'s first block layer (its second follows, then its toRGB).
pub fn g_block(level: usize) -> usize {
    3 * (level - 1)
}

pub fn g_torgb(level: usize) -> usize {
    g_block(level) + 2
}

/// D's 4x4 tail (level 1), after its fromRGB: the convolution on the minibatch-stddev maps, then the
/// two dense layers.
pub const D_CONV: usize = 1;
pub const D_DENSE0: usize = 2;
pub const D_DENSE1: usize = 3;

/// The layers each network uses at `level`, (G, D): layers are stored by level, so they are a
/// prefix of each network's layers.
pub fn layers_in_use(level: usize) -> (usize, usize) {
    let d_block = if level == 1 { D_DENSE1 + 1 } else { 3 };
    (g_torgb(level) + 1, d_fromrgb(level) + d_block)
}

/// D: the index of level `level`'s fromRGB; its block layers follow it.
pub fn d_fromrgb(level: usize) -> usize {
    if level == 1 {
        0
    } else {
        4 + 3 * (level - 2)
    }
}

/// FLOPs (2 per multiply-add) of one image's forward pass through `layers` (G's or D's) at `level`:
/// every block up to it and its own toRGB or fromRGB (a fade-in's second one is left out).
pub fn forward_flops(layers: &[Layer], level: usize) -> f64 {
    let mut flops = 0.0;
    for l in layers {
        let res: usize = l.name.split('x').next().and_then(|r| r.parse().ok()).unwrap_or(4);
        let lev = res.trailing_zeros() as usize - 1;
        if lev > level || (l.name.ends_with("RGB") && lev != level) {
            continue;
        }
        flops += 2.0
            * (l.inputs * l.outputs) as f64
            * match l.kind {
                Kind::Conv { k } => (k * k * res * res) as f64,
                Kind::Dense => 1.0,
            };
    }
    flops
}

/// A text table of both networks: layers with weight shapes and parameter counts, per level and in total.
pub fn describe(cfg: &NetConfig) -> String {
    let mut out = String::new();
    for (title, layers) in [("Generator", generator(cfg)), ("Discriminator", discriminator(cfg))] {
        out += &format!(
            "{title}\n{:<22} {:<22} {:>6} {:>12}\n",
            "layer", "weight", "bias", "params"
        );
        let (mut total, mut block) = (0, 0);
        for (i, l) in layers.iter().enumerate() {
            out += &format!(
                "{:<22} {:<22} {:>6} {:>12}\n",
                l.name,
                format!("{:?}", l.weight_shape()),
                l.bias,
                l.params()
            );
            total += l.params();
            block += l.params();
            let res = |l: &Layer| l.name.split('/').next().unwrap_or_default().to_string();
            if layers.get(i + 1).is_none_or(|next| res(next) != res(l)) {
                out += &format!("{:<52} {:>12}\n", format!("  {} block", res(l)), block);
                block = 0;
            }
        }
        let rgb: usize = layers
            .iter()
            .filter(|l| l.name.ends_with("RGB"))
            .map(Layer::params)
            .sum();
        out += &format!(
            "total {total} parameters ({:.2}M), counting every resolution's {} ({rgb} of them); without the \
             lower resolutions' ones: {}\n\n",
            total as f64 / 1e6,
            if title == "Generator" { "toRGB" } else { "fromRGB" },
            total - rgb
                + layers
                    .iter()
                    .rev()
                    .find(|l| l.name.ends_with("RGB"))
                    .map_or(0, Layer::params)
        );
    }
    out
}
