//! `pggan export --onnx`: a checkpoint's EMA generator as an ONNX model of standard operators (opset
//! 13), so that it runs in onnxruntime (Python, C++, the browser), converts to PyTorch with
//! onnx2torch, and so on.
//!
//! The graph computes exactly what [`Net::g_forward`](crate::nn::net::Net::g_forward) computes at the
//! checkpoint's level and fade-in alpha, op for op: pixel norm of the latents (`Mul`, `ReduceMean`,
//! `Add`, `Sqrt`, `Div`); the 4x4 dense (`Gemm`, its per-map bias repeated over the 16 pixels,
//! `Reshape` to [maps, 4, 4]); nearest 2x upsampling (`Resize`, asymmetric coordinates, floor);
//! 3x3 convolutions (`Conv`, zero padding 1) with bias; `LeakyRelu` 0.2; pixel norm over the
//! channels; toRGB (1x1 `Conv`, linear); while fading in, `up + alpha (rgb - up)` (`Sub`, `Mul`,
//! `Add`) with `up` the upsampled previous toRGB, as the lerp kernel computes it. The equalized
//! learning rate's scale gain / sqrt(fan_in) is folded into the stored weights. Input `latents`
//! [batch, latent] float32, output `images` [batch, C, R, R] float32, unclipped (about [-1, 1]);
//! the batch size is free.

use std::path::{Path, PathBuf};

use anyhow::Result;
use prost::Message;

use crate::checkpoint::Checkpoint;
use crate::nn::arch::{self, g_block, g_torgb, Kind, Layer};
use crate::nn::config::res_of;
use crate::nn::net::fading;
use crate::ops::pixelnorm::EPS;
use crate::proto::onnx::*;

/// The operator set the graph is written for: every op above in the form it has there, and old
/// enough for onnxruntime-web and onnx2torch.
pub const OPSET: i64 = 13;
/// The IR version that goes with opset 13.
const IR_VERSION: i64 = 7;
pub const INPUT: &str = "latents";
pub const OUTPUT: &str = "images";

/// `pggan export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Write the EMA generator as an ONNX model to this file.
    #[arg(long)]
    pub onnx: PathBuf,
    /// A checkpoint or snapshot file, or a run folder (its checkpoint).
    #[arg(long)]
    pub checkpoint: PathBuf,
}

/// Runs `pggan export` and says what it wrote.
pub fn command(args: &ExportArgs) -> Result<()> {
    let ck = crate::train::commands::find_checkpoint(&args.checkpoint)?;
    let model = generator_onnx(&ck, &args.checkpoint)?;
    crate::checkpoint::write_atomic(&args.onnx, &model)?;
    let (pos, net) = (ck.state.position(&ck.config), &ck.config.net);
    println!(
        "wrote {}: latents [batch, {}] -> images [batch, {}, {r}, {r}] (alpha {})",
        args.onnx.display(),
        net.latent,
        net.channels,
        pos.alpha,
        r = pos.res()
    );
    Ok(())
}

/// The ONNX model (serialized `ModelProto`) of `ck`'s EMA generator at its resolution and alpha;
/// `source` is named in the model's description.
pub fn generator_onnx(ck: &Checkpoint, source: &Path) -> Result<Vec<u8>> {
    let net = &ck.config.net;
    net.validate()?;
    let pos = ck.state.position(&ck.config);
    let (level, alpha, c) = (pos.level, pos.alpha, net.channels);
    let layers = arch::generator(net);
    let mut g = Graph::new(ck);
    let mut h = g.pixelnorm("latent", INPUT);
    let mut h_prev = None;
    for lev in 1..=level {
        let r = res_of(lev);
        let mut x = match lev {
            1 => g.dense(&layers[0], &h, [net.maps(1), 4, 4])?,
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
    let rgb = g.conv(&layers[g_torgb(level)], &h)?;
    match (fading(level, alpha), h_prev) {
        (true, Some(prev)) => {
            let old = g.conv(&layers[g_torgb(level - 1)], &prev)?;
            let up = g.upsample("fade", &old);
            let alpha = g.constant("fade/alpha", &[], &[alpha]);
            let diff = g.node("fade", "Sub", &[&rgb, &up], vec![]);
            let step = g.node("fade", "Mul", &[&diff, &alpha], vec![]);
            g.node_to(OUTPUT, "fade/Add", "Add", &[&up, &step], vec![]);
        }
        _ => {
            g.node_to(OUTPUT, "output", "Identity", &[&rgb], vec![]);
        }
    }
    let r = pos.res();
    let meta = [
        ("resolution", r.to_string()),
        ("channels", c.to_string()),
        ("latent", net.latent.to_string()),
        ("alpha", alpha.to_string()),
        ("kimg", (ck.state.images as f64 / 1000.0).to_string()),
    ];
    let model = ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("pggan".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "PG-GAN EMA generator of {} at {r}x{r}, fade-in alpha {alpha}: latents [batch, {}] drawn N(0, 1) \
             -> images [batch, {c}, {r}, {r}], about [-1, 1], unclipped",
            source.display(),
            net.latent
        )),
        graph: Some(GraphProto {
            name: Some("pggan_generator".into()),
            node: g.nodes,
            initializer: g.initializers,
            input: vec![value_info(INPUT, &[None, Some(net.latent)])],
            output: vec![value_info(OUTPUT, &[None, Some(c), Some(r), Some(r)])],
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
    };
    Ok(model.encode_to_vec())
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
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl<'a> Graph<'a> {
    fn new(ck: &'a Checkpoint) -> Graph<'a> {
        Graph {
            ck,
            nodes: Vec::new(),
            initializers: Vec::new(),
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

    fn tensor(&mut self, name: &str, dims: &[usize], data_type: i32, raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(data_type),
            name: Some(name.into()),
            raw_data: Some(raw),
        });
        name.into()
    }

    /// A layer's weights times its equalized-LR scale gain / sqrt(fan_in) (computed in f64, rounded
    /// once), and its bias.
    fn weights(&self, l: &Layer) -> Result<(Vec<f32>, &'a [f32])> {
        let ck: &'a Checkpoint = self.ck;
        let w = ck.tensor(&format!("g_ema/{}/w", l.name), &l.weight_shape())?;
        let b = ck.tensor(&format!("g_ema/{}/b", l.name), &[l.bias])?;
        let fan_in = l.weight_shape()[1..].iter().product::<usize>();
        let scale = l.gain as f64 / (fan_in as f64).sqrt();
        Ok((w.iter().map(|&v| (v as f64 * scale) as f32).collect(), b))
    }

    /// The leaky ReLU of a layer whose slope is not 1.
    fn act(&mut self, l: &Layer, x: &str) -> String {
        match l.slope == 1.0 {
            true => x.into(),
            false => self.node(&l.name, "LeakyRelu", &[x], vec![attr_float("alpha", l.slope)]),
        }
    }

    /// G's latent dense layer: its output viewed as `view` [maps, h, w], one bias per map.
    fn dense(&mut self, l: &Layer, x: &str, view: [usize; 3]) -> Result<String> {
        debug_assert_eq!(l.kind, Kind::Dense);
        let (w, b) = self.weights(l)?;
        let per_map = l.outputs / l.bias;
        let bias: Vec<f32> = (0..l.outputs).map(|o| b[o / per_map]).collect();
        let w = self.constant(&format!("g_ema/{}/w", l.name), &[l.outputs, l.inputs], &w);
        let b = self.constant(&format!("g_ema/{}/b", l.name), &[l.outputs], &bias);
        let y = self.node(&l.name, "Gemm", &[x, &w, &b], vec![attr_int("transB", 1)]);
        let shape: Vec<i64> = [-1].into_iter().chain(view.map(|v| v as i64)).collect();
        let shape = self.tensor(
            &format!("{}/shape", l.name),
            &[4],
            INT64,
            bytemuck::cast_slice(shape.as_slice()).to_vec(),
        );
        let y = self.node(&l.name, "Reshape", &[&y, &shape], vec![]);
        Ok(self.act(l, &y))
    }

    /// A k x k convolution, stride 1, zero padding k / 2, with bias and its activation.
    fn conv(&mut self, l: &Layer, x: &str) -> Result<String> {
        let Kind::Conv { k } = l.kind else {
            anyhow::bail!("{} is not a convolution", l.name)
        };
        let (w, b) = self.weights(l)?;
        let w = self.constant(&format!("g_ema/{}/w", l.name), &l.weight_shape(), &w);
        let b = self.constant(&format!("g_ema/{}/b", l.name), &[l.bias], b);
        let p = (k / 2) as i64;
        let attrs = vec![
            attr_ints("kernel_shape", &[k as i64, k as i64]),
            attr_ints("pads", &[p, p, p, p]),
        ];
        let y = self.node(&l.name, "Conv", &[x, &w, &b], attrs);
        Ok(self.act(l, &y))
    }

    /// x / sqrt(mean over axis 1 of x^2 + 1e-8): over the latent's values, or over an image's
    /// channels at each pixel.
    fn pixelnorm(&mut self, scope: &str, x: &str) -> String {
        let scope = format!("{scope}/pixelnorm");
        if !self
            .initializers
            .iter()
            .any(|t| t.name.as_deref() == Some("pixelnorm/eps"))
        {
            self.constant("pixelnorm/eps", &[], &[EPS as f32]);
        }
        let sq = self.node(&scope, "Mul", &[x, x], vec![]);
        let attrs = vec![attr_ints("axes", &[1]), attr_int("keepdims", 1)];
        let mean = self.node(&scope, "ReduceMean", &[&sq], attrs);
        let sum = self.node(&scope, "Add", &[&mean, "pixelnorm/eps"], vec![]);
        let root = self.node(&scope, "Sqrt", &[&sum], vec![]);
        self.node(&scope, "Div", &[x, &root], vec![])
    }

    /// Nearest-neighbour 2x upsampling of [N, C, H, W]: output pixel (y, x) is input (y / 2, x / 2).
    fn upsample(&mut self, scope: &str, x: &str) -> String {
        if !self
            .initializers
            .iter()
            .any(|t| t.name.as_deref() == Some("upsample/scales"))
        {
            self.constant("upsample/scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
        }
        let attrs = vec![
            attr_string("mode", "nearest"),
            attr_string("coordinate_transformation_mode", "asymmetric"),
            attr_string("nearest_mode", "floor"),
        ];
        // The empty name leaves out the optional `roi` input.
        self.node(
            &format!("{scope}/upsample"),
            "Resize",
            &[x, "", "upsample/scales"],
            attrs,
        )
    }
}
