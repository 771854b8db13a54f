//! The embedded default dataset: every Twemoji (72x72 RGBA PNGs, CC-BY 4.0) of every emoji the
//! `emojis` crate lists, skin-tone variants included.

use super::prepare::Loader;
use super::{check_shape, Dataset};
use anyhow::{ensure, Result};
use std::borrow::Cow;
use twemoji_assets::png::PngTwemojiAsset;

/// Side of the embedded Twemoji PNGs.
const SOURCE_RES: usize = 72;

/// Every emoji with a Twemoji image, in the `emojis` crate's order, each followed by its skin tones.
fn assets() -> Vec<(String, Cow<'static, [u8]>)> {
    emojis::iter()
        .flat_map(|e| match e.skin_tones() {
            Some(tones) => tones.collect::<Vec<_>>(),
            None => vec![e],
        })
        .filter_map(|e| PngTwemojiAsset::from_emoji(e.as_str()).map(|a| (e.as_str().to_string(), Cow::Borrowed(**a))))
        .collect()
}

impl Loader {
    /// The embedded emoji set, as [`emoji`] prepares it.
    pub fn emoji(channels: usize, res: usize) -> Result<Loader> {
        check_shape(channels, res)?;
        ensure!(
            res < SOURCE_RES,
            "the embedded emoji set is {SOURCE_RES}x{SOURCE_RES}, so it goes up to 64x64, not {res}x{res}; \
             train on a folder of images instead"
        );
        Loader::new("emoji", "the embedded emoji set".into(), assets(), channels, res)
    }
}

/// The embedded emoji set (about 3,700 images) composited on white and area-resized to `res`
/// (a power of two from 4 to 64; the source is 72x72), with 1 (luma) or 3 channels. Name "emoji".
pub fn emoji(channels: usize, res: usize) -> Result<Dataset> {
    let mut loader = Loader::emoji(channels, res)?;
    loader.prepare(loader.total());
    loader.finish()
}

/// The key under which [`emoji`]'s set is cached (see `cached`): one per shape, number of emoji (so a
/// newer Twemoji set is not mistaken for an older one) and format version.
pub fn emoji_cache_key(channels: usize, res: usize) -> String {
    format!(
        "emoji-c{channels}-r{res}-n{}-v{}",
        assets().len(),
        super::FORMAT_VERSION
    )
}
