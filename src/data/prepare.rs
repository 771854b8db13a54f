//! Turning encoded image files into same-size training images: decode by content, composite any
//! transparency on white, convert the colours, crop the centered square, area-resize.

use super::resize::{resize_rows, square_window};
use super::{check_shape, par_map, Dataset, Levels, Prepared, Tally};
use anyhow::{anyhow, ensure, Context, Result};
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};
use std::borrow::Cow;
use std::io::{self, BufRead, Cursor, Read, Seek};
use std::sync::{Condvar, Mutex, PoisonError};

/// ITU-R BT.601 luma weights of R, G and B.
const LUMA: [f64; 3] = [0.299, 0.587, 0.114];

/// Widest and tallest image decoded, above any camera's frame: a header that claims more is refused
/// before anything is allocated.
const MAX_SIDE: u32 = 32768;
/// Most bytes a decoder may hold at once, the decoded image included (the image crate's default,
/// made explicit): about 170 megapixels of 8-bit RGB.
const MAX_ALLOC: u64 = 512 << 20;
/// Largest encoded image read. The largest legitimate file stores an image of `MAX_ALLOC` bytes
/// uncompressed (BMP, PNG with stored blocks) plus its metadata (EXIF, ICC profile), so a larger
/// one cannot decode within the limits; and the JPEG decoder reads its whole input into memory
/// before it looks at the image, so such a file is refused by its size, unread.
const MAX_FILE_BYTES: u64 = MAX_ALLOC + (64 << 20);

/// Decodes one image file of any format the build supports (PNG, JPEG, WebP, BMP, GIF's first frame),
/// recognised by its content, and returns it as `channels` x `res` x `res` bytes (CHW): transparency
/// composited on white, grayscale expanded to RGB or RGB reduced to BT.601 luma as `channels` (1 or 3)
/// asks, cropped to its centered square and area-resized to `res`.
/// Files over 576 MiB, images over 32768 pixels a side or 512 MiB decoded, and JPEGs that end
/// before their end marker are refused.
pub fn prepare(bytes: &[u8], channels: usize, res: usize) -> Result<Vec<u8>> {
    prepare_from(
        Cursor::new(bytes),
        bytes.len() as u64,
        channels,
        res,
        Transform::CenterCrop,
    )
    .map(|p| p.pixels)
}

/// How an image that is not square becomes square.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transform {
    /// Its centered square (the official tool's, and StyleGAN2-ADA's `center-crop`).
    #[default]
    CenterCrop,
    /// The whole image centered on a black square.
    Pad,
    /// The whole image resized to the square, its proportions changed.
    Stretch,
}

impl Transform {
    pub const ALL: [Transform; 3] = [Transform::CenterCrop, Transform::Pad, Transform::Stretch];

    pub fn name(self) -> &'static str {
        match self {
            Transform::CenterCrop => "center-crop",
            Transform::Pad => "pad",
            Transform::Stretch => "stretch",
        }
    }

    /// The part of a `w` x `h` image that is resized to the square: its top-left corner in the image
    /// (negative where it pads) and its width and height.
    fn frame(self, w: usize, h: usize) -> (isize, isize, usize, usize) {
        match self {
            Transform::CenterCrop => {
                let (x0, y0, side) = square_window(w, h);
                (x0 as isize, y0 as isize, side, side)
            }
            Transform::Pad => {
                let side = w.max(h);
                (-(((side - w) / 2) as isize), -(((side - h) / 2) as isize), side, side)
            }
            Transform::Stretch => (0, 0, w, h),
        }
    }
}

impl std::str::FromStr for Transform {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Transform> {
        Transform::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Transform::ALL.iter().map(|t| t.name()).collect();
            anyhow!("unknown transform {s:?}: give one of {}", names.join(", "))
        })
    }
}

/// [`prepare`] reading the `size` bytes of an encoded image from `input` (a file) as it decodes,
/// made square as `transform` says.
pub(crate) fn prepare_from(
    input: impl BufRead + Seek,
    size: u64,
    channels: usize,
    res: usize,
    transform: Transform,
) -> Result<Prepared> {
    ensure!(
        channels == 1 || channels == 3,
        "images must have 1 or 3 channels, not {channels}"
    );
    ensure!(res > 0, "the resolution must be at least 1");
    ensure!(
        size <= MAX_FILE_BYTES,
        "too large to be an image: {} MiB, over the {} MiB of the largest image decoded",
        size >> 20,
        MAX_FILE_BYTES >> 20
    );
    // The decoded image's share of the budget is held until its pixels are resampled.
    let (image, _held) = decode(input)?;
    let (w, h) = (image.width() as usize, image.height() as usize);
    ensure!(w > 0 && h > 0, "the image has no pixels ({w}x{h})");
    let frame = transform.frame(w, h);
    // 8-bit images are read in place; deeper ones (16-bit, float) through one f32 RGBA copy.
    let values = match &image {
        DynamicImage::ImageLuma8(b) => resample(b.as_raw(), w, 1, 255.0, channels, res, frame),
        DynamicImage::ImageLumaA8(b) => resample(b.as_raw(), w, 2, 255.0, channels, res, frame),
        DynamicImage::ImageRgb8(b) => resample(b.as_raw(), w, 3, 255.0, channels, res, frame),
        DynamicImage::ImageRgba8(b) => resample(b.as_raw(), w, 4, 255.0, channels, res, frame),
        other => resample(other.to_rgba32f().as_raw(), w, 4, 1.0, channels, res, frame),
    }?;
    Ok(Prepared {
        pixels: values.into_iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect(),
        upscaled: frame.2 < res || frame.3 < res,
    })
}

/// Decodes an image of any supported format, recognised by its content, within the limits above;
/// the image comes with its share of [`DECODING`], to be dropped when it is.
fn decode(mut input: impl BufRead + Seek) -> Result<(DynamicImage, Held<'static>)> {
    let mut reader = ImageReader::new(&mut input)
        .with_guessed_format()
        .context("unsupported or corrupt image")?;
    let format = reader.format();
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits.clone());
    let why = |e| match e {
        ImageError::Limits(e) => anyhow!(
            "too large to decode ({e}): images may have at most {MAX_SIDE} pixels a side and take {} MiB",
            MAX_ALLOC >> 20
        ),
        e => anyhow!("unsupported or corrupt image: {e}"),
    };
    // As `ImageReader::decode`, with the decoded size known, and held, before it is allocated: the
    // decoder may allocate what the image leaves of the limit.
    let mut decoder = reader.into_decoder().map_err(why)?;
    let bytes = decoder.total_bytes();
    limits.reserve(bytes).map_err(why)?;
    decoder.set_limits(limits).map_err(why)?;
    let held = DECODING.hold(bytes);
    let image = DynamicImage::from_decoder(decoder).map_err(why)?;
    if format == Some(ImageFormat::Jpeg) {
        input.rewind().context("cannot read the file")?;
        ensure!(
            jpeg_complete(input).context("cannot read the file")?,
            "truncated JPEG: the data ends before the end-of-image marker"
        );
    }
    Ok((image, held))
}

/// The decoded bytes all threads together may hold at once: one image's limit, so that several
/// cores decoding huge images (decompression bombs) wait for each other instead of each taking
/// `MAX_ALLOC`.
static DECODING: Budget = Budget {
    free: Mutex::new(MAX_ALLOC),
    freed: Condvar::new(),
};

/// Bytes shared by threads: each holds some while it works, waiting until they are free.
struct Budget {
    free: Mutex<u64>,
    freed: Condvar,
}

impl Budget {
    /// Holds `bytes` (at most the whole budget) until the returned value is dropped, waiting while
    /// other threads hold too much of it. (Without threads, as on wasm, nothing is ever waited for.)
    fn hold(&self, bytes: u64) -> Held<'_> {
        let bytes = bytes.min(MAX_ALLOC);
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free < bytes {
            free = self.freed.wait(free).unwrap_or_else(PoisonError::into_inner);
        }
        *free -= bytes;
        Held { budget: self, bytes }
    }
}

/// A share of a [`Budget`], given back when dropped.
struct Held<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *self.budget.free.lock().unwrap_or_else(PoisonError::into_inner) += self.bytes;
        self.budget.freed.notify_all();
    }
}

/// Whether a JPEG stream reaches its end-of-image marker (0xFF 0xD9): the decoder fills in what a
/// truncated file lacks with grey rather than failing. Marker segments are skipped by their
/// length, so an end marker inside one (an EXIF thumbnail's) does not count; in the entropy-coded
/// data 0xFF is followed by 0x00 (a stuffed byte), a restart marker or the next marker.
fn jpeg_complete(mut input: impl BufRead) -> io::Result<bool> {
    fn byte(input: &mut impl BufRead) -> io::Result<Option<u8>> {
        let b = input.fill_buf()?.first().copied();
        input.consume(b.is_some() as usize);
        Ok(b)
    }
    loop {
        input.skip_until(0xFF)?;
        let mut code = byte(&mut input)?;
        // 0xFF bytes may pad before a marker's code.
        while code == Some(0xFF) {
            code = byte(&mut input)?;
        }
        match code {
            None => return Ok(false),
            Some(0xD9) => return Ok(true),
            // Markers without a length: stuffed byte, TEM, restarts, start of image.
            Some(0x00 | 0x01 | 0xD0..=0xD8) => {}
            Some(_) => {
                let (Some(hi), Some(lo)) = (byte(&mut input)?, byte(&mut input)?) else {
                    return Ok(false);
                };
                let len = u64::from(u16::from_be_bytes([hi, lo]).saturating_sub(2));
                if io::copy(&mut input.by_ref().take(len), &mut io::sink())? < len {
                    return Ok(false);
                }
            }
        }
    }
}

/// Resamples interleaved pixels of `spp` samples (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) whose full
/// scale is `max` into `channels` planes of `res` x `res` on the 0..=255 scale: the `frame` of the
/// image ([`Transform::frame`]), black where it lies outside the image.
fn resample<T: Copy + Into<f64>>(
    data: &[T],
    w: usize,
    spp: usize,
    max: f64,
    channels: usize,
    res: usize,
    (x0, y0, fw, fh): (isize, isize, usize, usize),
) -> Result<Vec<f64>> {
    let h = data.len() / (w * spp);
    let scale = 255.0 / max;
    resize_rows(fw, fh, res, res, channels, |y, buf| {
        buf.fill(0.0);
        let Some(sy) = (y0 + y as isize).try_into().ok().filter(|&sy: &usize| sy < h) else {
            return;
        };
        let row = &data[sy * w * spp..(sy + 1) * w * spp];
        for x in 0..fw {
            let Some(sx) = (x0 + x as isize).try_into().ok().filter(|&sx: &usize| sx < w) else {
                continue;
            };
            let px = &row[sx * spp..(sx + 1) * spp];
            let alpha = if spp == 2 || spp == 4 {
                px[spp - 1].into() / max
            } else {
                1.0
            };
            // Composite on white: c a + 1 (1 - a), on the 0..=255 scale.
            let on_white = |v: T| v.into() * scale * alpha + 255.0 * (1.0 - alpha);
            let rgb = if spp <= 2 {
                [on_white(px[0]); 3]
            } else {
                [on_white(px[0]), on_white(px[1]), on_white(px[2])]
            };
            if channels == 1 {
                buf[x] = if spp <= 2 {
                    rgb[0]
                } else {
                    (0..3).map(|c| LUMA[c] * rgb[c]).sum()
                };
            } else {
                for (c, v) in rgb.into_iter().enumerate() {
                    buf[c * fw + x] = v;
                }
            }
        }
    })
}

/// A dataset prepared a few images at a time, so that a caller without threads (the page) can stay
/// responsive between chunks: built from the embedded emoji set or from named files, then
/// [`prepare`](Loader::prepare)d chunk by chunk and [`finish`](Loader::finish)ed into the same
/// [`Dataset`] that [`emoji`](super::emoji) and [`from_files`] return.
pub struct Loader {
    name: String,
    /// Where the files came from, for the error when none could be used.
    source: String,
    channels: usize,
    res: usize,
    /// Named encoded files; each one's bytes are dropped once it is prepared.
    files: Vec<(String, Cow<'static, [u8]>)>,
    /// The levels of the images prepared so far, and what was made of their files.
    levels: Levels,
    tally: Tally,
    done: usize,
}

impl Loader {
    pub(crate) fn new(
        name: &str,
        source: String,
        files: Vec<(String, Cow<'static, [u8]>)>,
        channels: usize,
        res: usize,
    ) -> Result<Loader> {
        check_shape(channels, res)?;
        Ok(Loader {
            name: name.to_string(),
            source,
            channels,
            res,
            files,
            levels: Levels::new(channels, res),
            tally: Tally::default(),
            done: 0,
        })
    }

    /// Named encoded files (for example files dropped on the page), each decoded as [`prepare`] does;
    /// `channels` is 1 or 3, `res` a power of two of at least 4.
    pub fn files(
        name: &str,
        files: impl IntoIterator<Item = (String, Vec<u8>)>,
        channels: usize,
        res: usize,
    ) -> Result<Loader> {
        let files: Vec<_> = files.into_iter().map(|(n, b)| (n, Cow::Owned(b))).collect();
        Loader::new(name, format!("the {} files given", files.len()), files, channels, res)
    }

    /// Number of files.
    pub fn total(&self) -> usize {
        self.files.len()
    }

    /// Number of files prepared so far.
    pub fn done(&self) -> usize {
        self.done
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn res(&self) -> usize {
        self.res
    }

    /// Prepares the next `n` files (fewer at the end; natively on every core) and returns how many are
    /// done. A file that fails is remembered and becomes a [`Skipped`](super::Skipped) at [`finish`](Loader::finish).
    pub fn prepare(&mut self, n: usize) -> usize {
        let (start, end) = (self.done(), (self.done() + n).min(self.total()));
        let (c, r) = (self.channels, self.res);
        let chunk = &mut self.files[start..end];
        let prepared = par_map(
            &*chunk,
            |(_, bytes)| prepare_from(Cursor::new(&bytes[..]), bytes.len() as u64, c, r, Transform::CenterCrop),
            &mut |_, _| {},
        );
        for ((name, bytes), result) in chunk.iter_mut().zip(prepared) {
            *bytes = Cow::Borrowed(&[]);
            self.tally
                .add(&mut self.levels, name.clone(), result)
                .expect("memory takes every image of the loader's shape");
        }
        self.done = end;
        self.done()
    }

    /// The dataset, once every file is prepared: the files that failed are listed as skipped; errors
    /// when none could be used.
    pub fn finish(self) -> Result<Dataset> {
        ensure!(
            self.done() == self.total(),
            "the dataset {} is not ready: {} of {} images are prepared",
            self.name,
            self.done(),
            self.total()
        );
        self.tally.check(&self.source)?;
        self.levels.finish(&self.name, self.tally)
    }
}

/// A dataset from named encoded files (for example files dropped on the page): each decoded as
/// [`prepare`] does; a file that fails becomes a [`Skipped`](super::Skipped) with the decoder's reason. Errors when
/// no file could be used. `channels` is 1 or 3, `res` a power of two of at least 4.
pub fn from_files(
    name: &str,
    files: impl IntoIterator<Item = (String, Vec<u8>)>,
    channels: usize,
    res: usize,
) -> Result<Dataset> {
    let mut loader = Loader::files(name, files, channels, res)?;
    loader.prepare(loader.total());
    loader.finish()
}
