//! `pggan dataset`: prepare a folder of images into one file that training reads without loading
//! it, and describe such a file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use clap::Subcommand;
use pggan::data::{self, Dataset, Transform};
use pggan::rng::Rng;
use pggan::samples::grid;
use pggan::{errln, files, outln};

pub const EXAMPLES: &str = "\
Examples:
  # A folder of photos (searched recursively) as one 256x256 file, for train --data:
  pggan dataset prepare photos photos-256.pggan --res 256
  # What a prepared file holds, and a grid of 64 of its images drawn at random:
  pggan dataset info photos-256.pggan --grid grid.png";

const PREPARE_EXAMPLES: &str = "\
Examples:
  # A folder of photos (searched recursively) as one 256x256 file, for train --data:
  pggan dataset prepare photos photos-256.pggan --res 256
  # Grayscale, the whole image padded to a square instead of cropped:
  pggan dataset prepare photos photos-gray-64.pggan --res 64 --channels 1 --transform pad";

const INFO_EXAMPLES: &str = "\
Examples:
  # Count, resolution, channels, size and skipped files:
  pggan dataset info photos-256.pggan
  # And a grid of 64 of its images drawn at random:
  pggan dataset info photos-256.pggan --grid grid.png";

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Decode every image below a folder (PNG, JPEG, WebP, BMP, GIF's first frame) on every core and
    /// write each one's pyramid (4x4 up to --res) into one file as it is done.
    #[command(after_long_help = PREPARE_EXAMPLES)]
    Prepare {
        /// The folder of images (searched recursively; names starting with '.' are ignored).
        dir: PathBuf,
        /// The prepared file to write (replaced atomically if it exists).
        file: PathBuf,
        /// The resolution, a power of two from 4 to 1024: the largest level.
        #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(4..=1024))]
        res: usize,
        /// Image channels: 3 (RGB) or 1 (grayscale, BT.601 luma).
        #[arg(long, default_value_t = 3)]
        channels: usize,
        /// How an image that is not square becomes square: center-crop (its centered square), pad
        /// (the whole image centered on black) or stretch (resized, proportions changed).
        #[arg(long, default_value = "center-crop")]
        transform: Transform,
    },
    /// What a prepared file holds: count, resolution, channels, size, skipped files; with --grid, a
    /// picture of some of its images.
    #[command(after_long_help = INFO_EXAMPLES)]
    Info {
        /// The prepared file.
        file: PathBuf,
        /// Also write a PNG grid of up to 64 images drawn at random (checking their chunks' CRCs).
        #[arg(long)]
        grid: Option<PathBuf>,
        /// Seeds the images drawn for --grid.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

pub fn run(command: &DatasetCommand) -> Result<()> {
    match command {
        DatasetCommand::Prepare {
            dir,
            file,
            res,
            channels,
            transform,
        } => {
            ensure!(
                !file.is_dir(),
                "{} is a folder; give the prepared file's name",
                file.display()
            );
            let mut progress = Progress::new(&format!("preparing {}", dir.display()));
            let data = data::prepare_folder(dir, file, *channels, *res, *transform, &mut |d, t| {
                progress.update(d, t)
            })?;
            progress.finish();
            errln!("{}", summary(&data));
            outln!("{}", file.display());
            Ok(())
        }
        DatasetCommand::Info { file, grid: out, seed } => {
            let data = Dataset::open(file)?;
            outln!("{}", summary(&data));
            if let Some(out) = out {
                let shown = data.count().min(64);
                let indices = Rng::new(*seed).sample(data.count(), shown);
                let images = data.images(data.max_res(), &indices)?;
                let cols = (shown as f64).sqrt().ceil() as usize;
                files::write_atomic(out, &grid(&images, cols, images.res)?.png()?)?;
                outln!("{shown} images drawn at random in {}", out.display());
            }
            Ok(())
        }
    }
}

/// The paths of at most this many skipped files are listed per reason.
const LISTED: usize = 3;

/// What a dataset holds, in a few lines: its images, its file (if any), the files skipped by reason
/// with the first few paths, how many images were upscaled.
pub fn summary(data: &Dataset) -> String {
    let r = data.max_res();
    let mut text = format!(
        "dataset {}: {} images, {r}x{r}, {} channels",
        data.name,
        data.count(),
        data.channels()
    );
    if let Some(file) = data.file() {
        // The emoji set, made square by hand, has no transform.
        let transform = match file.transform.as_str() {
            "" => String::new(),
            t => format!(", {t}"),
        };
        text += &format!(
            ", {} ({:.1} MB{transform})",
            file.path.display(),
            file.bytes as f64 / 1e6
        );
    }
    if data.upscaled > 0 {
        text += &format!("\n{} images were smaller than {r}x{r} and upscaled", data.upscaled);
    }
    if !data.skipped.is_empty() {
        text += &format!("\nskipped {} files:", data.skipped.len());
        // By reason, as the first line of the decoder's message gives it, in order of first use.
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for s in &data.skipped {
            let reason = s.reason.split([':', '(']).next().unwrap_or("").trim();
            match reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, paths)) => paths.push(&s.path),
                None => reasons.push((reason, vec![&s.path])),
            }
        }
        for (reason, paths) in reasons {
            let more = match paths.len() > LISTED {
                true => ", ...",
                false => "",
            };
            text += &format!(
                "\n  {reason} ({}): {}{more}",
                paths.len(),
                paths[..paths.len().min(LISTED)].join(", ")
            );
        }
    }
    text
}

/// Progress while preparing: on a terminal a bar with the rate and the time left; otherwise (a log,
/// a batch system) a line when the first image is done, then every few seconds.
pub struct Progress {
    label: String,
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
    /// When the last line was written.
    shown: Option<Instant>,
}

/// Seconds between progress lines without a terminal.
const EVERY: Duration = Duration::from_secs(5);

impl Progress {
    pub fn new(label: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            let style =
                indicatif::ProgressStyle::with_template("{msg} {bar:24} {pos}/{len} images, {per_sec}, {eta} left")
                    .expect("a valid template");
            bar.set_style(style);
            bar.set_message(label.to_string());
            bar
        });
        Progress {
            label: label.to_string(),
            bar,
            start: Instant::now(),
            shown: None,
        }
    }

    pub fn update(&mut self, done: usize, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            return;
        }
        if self.shown.is_some_and(|t| t.elapsed() < EVERY) || done == total {
            return;
        }
        self.shown = Some(Instant::now());
        let seconds = self.start.elapsed().as_secs_f64();
        let rate = done as f64 / seconds;
        errln!(
            "{}: {done} of {total} images ({:.0}%), {rate:.1} per second, {:.0} s left",
            self.label,
            100.0 * done as f64 / total.max(1) as f64,
            (total - done) as f64 / rate.max(1e-9)
        );
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
