//! `pggan export --onnx`: a checkpoint's EMA generator (and with `--onnx-d` its discriminator) as
//! an ONNX model of standard operators (opset 13), so that it runs in onnxruntime (Python, C++, the
//! browser), converts to PyTorch with onnx2torch, and so on.
//!
//! The generator's graph computes exactly what [`Net::g_forward`](crate::nn::net::Net::g_forward)
//! computes at the checkpoint's level and fade-in alpha, op for op: pixel norm of the latents
//! (`Mul`, `ReduceMean`, `Add`, `Sqrt`, `Div`); the 4x4 dense (`Gemm`, its per-map bias repeated
//! over the 16 pixels, `Reshape` to [maps, 4, 4]); nearest 2x upsampling (`Resize`, asymmetric
//! coordinates, floor); 3x3 convolutions (`Conv`, zero padding 1) with bias; `LeakyRelu` 0.2; pixel
//! norm over the channels; toRGB (1x1 `Conv`, linear); while fading in, `up + alpha (rgb - up)`
//! (`Sub`, `Mul`, `Add`) with `up` the upsampled previous toRGB, as the lerp kernel computes it.
//! Input `latents` [batch, latent] float32, output `images` [batch, C, R, R] float32, unclipped
//! (about [-1, 1]). The discriminator's follows [`Net::d_forward`](crate::nn::net::Net::d_forward)
//! the same way (`AveragePool` for the 2x2 mean, the minibatch stddev from `Shape`, `Slice`, `Min`,
//! `Concat`, `Reshape`, `ReduceMean`, `Expand`), `images` in, `scores` [batch, 1] out. In both the
//! equalized learning rate's scale gain / sqrt(fan_in) is folded into the stored weights, and the
//! batch size is free.

use std::path::Path;

use anyhow::Result;
use prost::Message;

use crate::nn::arch::{self, d_fromrgb, g_block, g_torgb, Kind, Layer};
use crate::nn::config::res_of;
use crate::nn::net::fading;
use crate::ops::{mbstd, pixelnorm};
use crate::proto::onnx::*;
use crate::train::checkpoint::Checkpoint;
use crate::train::config::kimg;

/// The operator set the graphs are written for: every op above in the form it has there, and old
/// enough for onnxruntime-web and onnx2torch.
pub const OPSET: i64 = 13;
/// The IR version that goes with opset 13.
const IR_VERSION: i64 = 7;
/// G's input and output; `images` is also D's input.
pub const INPUT: &str = "latents";
pub const OUTPUT: &str = "images";
/// D's output.
pub const SCORES: &str = "scores";

/// The ONNX model (serialized `ModelProto`) of `ck`'s EMA generator at its resolution and alpha;
/// `source` is named in the model's description.
pub fn generator_onnx(ck: &Checkpoint, source: &Path) -> Result<Vec<u8>> {
    let net = &ck.config.net;
    net.validate()?;
    let pos = ck.state.position(&ck.config);
    let (level, alpha) = (pos.level, pos.alpha);
    let layers = arch::generator(net);
    let mut g = Graph::new(ck, "g_ema");
    let mut h = g.pixelnorm("latent", INPUT);
    let mut h_prev = None;
    for lev in 1..=level {
        let r = res_of(lev);
        let mut x = match lev {
            1 => {
                // The dense's outputs, viewed as [maps, 4, 4].
                let y = g.dense(&layers[0], &h)?;
                let shape = g.ints("4x4/dense/shape", &[-1, net.maps(1) as i64, 4, 4]);
                g.node(&layers[0].name, "Reshape", &[&y, &shape], vec![])
            }
            _ => {
                let up = g.upsample(&format!("{r}x{r}"), &h);
                g.conv(&layers[g_block(lev)], &up)?
            }
        };
        x = g.pixelnorm(&layers[g_block(lev)].name, &x);
        x = g.conv(&layers[g_block(lev) + 1], &x)?;
        x = g.pixelnorm(&layers[g_block(lev) + 1].name, &x);
        h_prev = Some(std::mem::replace(&mut h, x));
    }
    let mut rgb = g.conv(&layers[g_torgb(level)], &h)?;
    if let (true, Some(prev)) = (fading(level, alpha), h_prev) {
        let old = g.conv(&layers[g_torgb(level - 1)], &prev)?;
        let up = g.upsample("fade", &old);
        rgb = g.lerp("fade", &up, &rgb, alpha);
    }
    g.node_to(OUTPUT, "output", "Identity", &[&rgb], vec![]);
    let (c, r) = (net.channels, pos.res());
    let doc = format!(
        "PG-GAN EMA generator of {} at {r}x{r}, fade-in alpha {alpha}: latents [batch, {}] drawn N(0, 1) \
         -> images [batch, {c}, {r}, {r}], about [-1, 1], unclipped",
        source.display(),
        net.latent
    );
    let input = value_info(INPUT, &[None, Some(net.latent)]);
    let output = value_info(OUTPUT, &[None, Some(c), Some(r), Some(r)]);
    Ok(g.model("pggan_generator", doc, input, output).encode_to_vec())
}

/// The ONNX model of `ck`'s discriminator at its resolution and alpha: `images` [batch, C, R, R]
/// (as G makes them, about [-1, 1]) in, `scores` [batch, 1] out, as
/// [`Net::d_forward`](crate::nn::net::Net::d_forward) computes them with the whole batch as one
/// minibatch for the minibatch stddev (group size min(4, batch); a batch above 4 a multiple of 4).
pub fn discriminator_onnx(ck: &Checkpoint, source: &Path) -> Result<Vec<u8>> {
    ck.check_discriminator()?;
    let net = &ck.config.net;
    net.validate()?;
    let pos = ck.state.position(&ck.config);
    let (level, alpha) = (pos.level, pos.alpha);
    let layers = arch::discriminator(net);
    let mut g = Graph::new(ck, "d");
    let mut h = g.conv(&layers[d_fromrgb(level)], OUTPUT)?;
    for lev in (2..=level).rev() {
        let first = d_fromrgb(lev);
        h = g.conv(&layers[first + 1], &h)?;
        h = g.conv(&layers[first + 2], &h)?;
        if lev == level && fading(level, alpha) {
            let down = g.downsample("fade", OUTPUT);
            let old = g.conv(&layers[d_fromrgb(lev - 1)], &down)?;
            h = g.lerp("fade", &old, &h, alpha);
        }
    }
    h = g.mbstd(&h, net.maps(1));
    h = g.conv(&layers[1], &h)?;
    h = g.node("4x4/dense0", "Flatten", &[&h], vec![attr_int("axis", 1)]);
    h = g.dense(&layers[2], &h)?;
    h = g.dense(&layers[3], &h)?;
    g.node_to(SCORES, "output", "Identity", &[&h], vec![]);
    let (c, r) = (net.channels, pos.res());
    let doc = format!(
        "PG-GAN discriminator of {} at {r}x{r}, fade-in alpha {alpha}: images [batch, {c}, {r}, {r}] in \
         [-1, 1] -> scores [batch, 1], higher for more real; the batch is one minibatch for the minibatch \
         stddev (group size min(4, batch); a batch above 4 a multiple of 4)",
        source.display()
    );
    let input = value_info(OUTPUT, &[None, Some(c), Some(r), Some(r)]);
    let output = value_info(SCORES, &[None, Some(1)]);
    Ok(g.model("pggan_discriminator", doc, input, output).encode_to_vec())
}

/// A float32 graph input or output; `None` is the free batch dimension.
fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            dim_value: d.map(|v| v as i64),
            dim_param: d.is_none().then(|| "batch".into()),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: Some(FLOAT),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(i),
        r#type: Some(ATTR_INT),
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: ints.to_vec(),
        r#type: Some(ATTR_INTS),
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        f: Some(f),
        r#type: Some(ATTR_FLOAT),
        ..Default::default()
    }
}

fn attr_string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        s: Some(s.as_bytes().to_vec()),
        r#type: Some(ATTR_STRING),
        ..Default::default()
    }
}

/// The graph being built: nodes in topological order (each added after its inputs) and the
/// constant tensors. Every value is named after the layer and op that make it.
struct Graph<'a> {
    ck: &'a Checkpoint,
    /// The checkpoint's tensor group: `g_ema` or `d`.
    group: &'static str,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl<'a> Graph<'a> {
    fn new(ck: &'a Checkpoint, group: &'static str) -> Graph<'a> {
        Graph {
            ck,
            group,
            nodes: Vec::new(),
            initializers: Vec::new(),
        }
    }

    /// The model of this graph, with the checkpoint's position in its metadata.
    fn model(self, name: &str, doc: String, input: ValueInfoProto, output: ValueInfoProto) -> ModelProto {
        let (cfg, state) = (&self.ck.config, &self.ck.state);
        let pos = state.position(cfg);
        let meta = [
            ("resolution", pos.res().to_string()),
            ("channels", cfg.net.channels.to_string()),
            ("latent", cfg.net.latent.to_string()),
            ("alpha", pos.alpha.to_string()),
            ("kimg", kimg(state.images).to_string()),
        ];
        ModelProto {
            ir_version: Some(IR_VERSION),
            producer_name: Some("pggan".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            doc_string: Some(doc),
            graph: Some(GraphProto {
                name: Some(name.into()),
                node: self.nodes,
                initializer: self.initializers,
                input: vec![input],
                output: vec![output],
            }),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET),
            }],
            metadata_props: meta
                .into_iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some(k.into()),
                    value: Some(v),
                })
                .collect(),
        }
    }

    /// Adds `op` on `inputs`; its output is `<scope>/<op>`, made unique with a number when taken.
    fn node(&mut self, scope: &str, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let base = format!("{scope}/{op}");
        let taken = |name: &str| self.nodes.iter().any(|n| n.output.iter().any(|o| o == name));
        let mut name = base.clone();
        let mut k = 1;
        while taken(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        self.node_to(&name, &name, op, inputs, attrs)
    }

    /// Adds `op` on `inputs` writing the value `out`.
    fn node_to(&mut self, out: &str, name: &str, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            name: Some(name.into()),
            op_type: Some(op.into()),
            attribute: attrs,
        });
        out.into()
    }

    fn constant(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        self.tensor(name, dims, FLOAT, bytemuck::cast_slice(values).to_vec())
    }

    /// An int64 vector (shapes, slice bounds).
    fn ints(&mut self, name: &str, values: &[i64]) -> String {
        self.tensor(name, &[values.len()], INT64, bytemuck::cast_slice(values).to_vec())
    }

    /// A constant tensor, added once however often it is asked for.
    fn tensor(&mut self, name: &str, dims: &[usize], data_type: i32, raw: Vec<u8>) -> String {
        if !self.initializers.iter().any(|t| t.name.as_deref() == Some(name)) {
            self.initializers.push(TensorProto {
                dims: dims.iter().map(|&d| d as i64).collect(),
                data_type: Some(data_type),
                name: Some(name.into()),
                raw_data: Some(raw),
            });
        }
        name.into()
    }

    /// A layer's weights times its equalized-LR scale gain / sqrt(fan_in) (computed in f64, rounded
    /// once) as a constant, and its bias.
    fn weights(&mut self, l: &Layer) -> Result<(String, &'a [f32])> {
        let (ck, name): (&'a Checkpoint, _) = (self.ck, format!("{}/{}", self.group, l.name));
        let w = ck.tensor(&format!("{name}/w"), &l.weight_shape())?;
        let b = ck.tensor(&format!("{name}/b"), &[l.bias])?;
        let fan_in = l.weight_shape()[1..].iter().product::<usize>();
        let scale = l.gain as f64 / (fan_in as f64).sqrt();
        let w: Vec<f32> = w.iter().map(|&v| (v as f64 * scale) as f32).collect();
        Ok((self.constant(&format!("{name}/w"), &l.weight_shape(), &w), b))
    }

    /// The leaky ReLU of a layer whose slope is not 1.
    fn act(&mut self, l: &Layer, x: &str) -> String {
        match l.slope == 1.0 {
            true => x.into(),
            false => self.node(&l.name, "LeakyRelu", &[x], vec![attr_float("alpha", l.slope)]),
        }
    }

    /// A dense layer on [N, inputs], with its bias (G's latent dense has one per map of
    /// [maps, 4, 4], repeated over the map's 16 outputs) and activation.
    fn dense(&mut self, l: &Layer, x: &str) -> Result<String> {
        debug_assert_eq!(l.kind, Kind::Dense);
        let (w, b) = self.weights(l)?;
        let per_map = l.outputs / l.bias;
        let bias: Vec<f32> = (0..l.outputs).map(|o| b[o / per_map]).collect();
        let b = self.constant(&format!("{}/{}/b", self.group, l.name), &[l.outputs], &bias);
        let y = self.node(&l.name, "Gemm", &[x, &w, &b], vec![attr_int("transB", 1)]);
        Ok(self.act(l, &y))
    }

    /// A k x k convolution, stride 1, zero padding k / 2, with bias and activation; in D's
    /// downsampling layers the 2x2 average pool comes between the convolution and the bias.
    fn conv(&mut self, l: &Layer, x: &str) -> Result<String> {
        let Kind::Conv { k } = l.kind else {
            anyhow::bail!("{} is not a convolution", l.name)
        };
        let (w, b) = self.weights(l)?;
        let bias = format!("{}/{}/b", self.group, l.name);
        let p = (k / 2) as i64;
        let attrs = vec![
            attr_ints("kernel_shape", &[k as i64, k as i64]),
            attr_ints("pads", &[p, p, p, p]),
        ];
        let y = match l.down {
            false => {
                let b = self.constant(&bias, &[l.bias], b);
                self.node(&l.name, "Conv", &[x, &w, &b], attrs)
            }
            true => {
                let y = self.node(&l.name, "Conv", &[x, &w], attrs);
                let y = self.downsample(&l.name, &y);
                let b = self.constant(&bias, &[l.bias, 1, 1], b);
                self.node(&l.name, "Add", &[&y, &b], vec![])
            }
        };
        Ok(self.act(l, &y))
    }

    /// The fade-in blend a + alpha (b - a), as the lerp kernel computes it.
    fn lerp(&mut self, scope: &str, a: &str, b: &str, alpha: f32) -> String {
        let alpha = self.constant(&format!("{scope}/alpha"), &[], &[alpha]);
        let diff = self.node(scope, "Sub", &[b, a], vec![]);
        let step = self.node(scope, "Mul", &[&diff, &alpha], vec![]);
        self.node(scope, "Add", &[a, &step], vec![])
    }

    /// The mean over `axes`, kept as dimensions of 1.
    fn mean(&mut self, scope: &str, x: &str, axes: &[i64]) -> String {
        let attrs = vec![attr_ints("axes", axes), attr_int("keepdims", 1)];
        self.node(scope, "ReduceMean", &[x], attrs)
    }

    /// x / sqrt(mean over axis 1 of x^2 + 1e-8): over the latent's values, or over an image's
    /// channels at each pixel.
    fn pixelnorm(&mut self, scope: &str, x: &str) -> String {
        let scope = format!("{scope}/pixelnorm");
        let eps = self.constant("pixelnorm/eps", &[], &[pixelnorm::EPS as f32]);
        let sq = self.node(&scope, "Mul", &[x, x], vec![]);
        let mean = self.mean(&scope, &sq, &[1]);
        let sum = self.node(&scope, "Add", &[&mean, &eps], vec![]);
        let root = self.node(&scope, "Sqrt", &[&sum], vec![]);
        self.node(&scope, "Div", &[x, &root], vec![])
    }

    /// Nearest-neighbour 2x upsampling of [N, C, H, W]: output pixel (y, x) is input (y / 2, x / 2).
    fn upsample(&mut self, scope: &str, x: &str) -> String {
        let scales = self.constant("upsample/scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
        let attrs = vec![
            attr_string("mode", "nearest"),
            attr_string("coordinate_transformation_mode", "asymmetric"),
            attr_string("nearest_mode", "floor"),
        ];
        // The empty name leaves out the optional `roi` input.
        self.node(&format!("{scope}/upsample"), "Resize", &[x, "", &scales], attrs)
    }

    /// 2x2 average pooling, stride 2: the mean of each 2x2 block.
    fn downsample(&mut self, scope: &str, x: &str) -> String {
        let attrs = vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])];
        self.node(&format!("{scope}/downsample"), "AveragePool", &[x], attrs)
    }

    /// Minibatch stddev of x [N, maps, 4, 4] -> [N, maps + 1, 4, 4] (DESIGN.md): groups of
    /// G = min(4, N) samples, sample n in group n mod (N / G). Viewed as [G, N / G, maps, 4, 4], the
    /// members of group m are [:, m]: their std (population, 1e-8 inside the root) averaged over the
    /// maps and pixels is the group's statistic, appended to each member as one constant map.
    fn mbstd(&mut self, x: &str, maps: usize) -> String {
        let scope = "4x4/mbstd";
        let shape = self.node(scope, "Shape", &[x], vec![]);
        let (zero, one, four) = (
            self.ints("mbstd/0", &[0]),
            self.ints("mbstd/1", &[1]),
            self.ints("mbstd/4", &[4]),
        );
        let n = self.node(scope, "Slice", &[&shape, &zero, &one], vec![]);
        let g = self.node(scope, "Min", &[&n, &four], vec![]);
        let rest = self.ints("mbstd/grouped", &[-1, maps as i64, 4, 4]);
        let grouped = self.node(scope, "Concat", &[&g, &rest], vec![attr_int("axis", 0)]);
        let y = self.node(scope, "Reshape", &[x, &grouped], vec![]);
        let mean = self.mean(scope, &y, &[0]);
        let d = self.node(scope, "Sub", &[&y, &mean], vec![]);
        let sq = self.node(scope, "Mul", &[&d, &d], vec![]);
        let var = self.mean(scope, &sq, &[0]);
        let eps = self.constant("mbstd/eps", &[], &[mbstd::EPS as f32]);
        let var = self.node(scope, "Add", &[&var, &eps], vec![]);
        let sd = self.node(scope, "Sqrt", &[&var], vec![]);
        let s = self.mean(scope, &sd, &[2, 3, 4]);
        // [1, M, 1, 1, 1] -> [G, M, 1, 4, 4] -> [N, 1, 4, 4]: sample k M + m holds s_m.
        let map = self.ints("mbstd/map", &[1, 1, 4, 4]);
        let map = self.node(scope, "Concat", &[&g, &map], vec![attr_int("axis", 0)]);
        let s = self.node(scope, "Expand", &[&s, &map], vec![]);
        let flat = self.ints("mbstd/flat", &[-1, 1, 4, 4]);
        let s = self.node(scope, "Reshape", &[&s, &flat], vec![]);
        self.node(scope, "Concat", &[x, &s], vec![attr_int("axis", 1)])
    }
}
