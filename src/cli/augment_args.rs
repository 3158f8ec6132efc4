//! The augmentation flags of `train` and `bench data` (timm's names: `--aa`, `--reprob`,
//! `--mixup`, ...), and the loader settings they make.

use clap::Args;

use super::float;
use bitspike::data::augment::{
    fill_from_mean, ColorJitter, EraseMode, RandAugment, RandomErasing, ResizedCrop,
};
use bitspike::data::{Augment, MixMode, Mixup};

#[derive(Args, Clone, Debug)]
pub struct AugmentArgs {
    /// Random crop with this zero padding (0: none).
    #[arg(long, default_value_t = 0, value_parser = super::int::whole)]
    pub crop_padding: usize,
    /// Random horizontal flips.
    #[arg(long)]
    pub hflip: bool,
    /// Random-resized crop to the model's size with this area range MIN,MAX (timm's
    /// --scale; with --ratio, default 0.08,1), instead of --crop-padding.
    #[arg(long, value_parser = float::range)]
    pub scale: Option<(f32, f32)>,
    /// The random-resized crop's aspect-ratio range MIN,MAX (default 0.75,1.3333).
    #[arg(long, value_parser = float::range)]
    pub ratio: Option<(f32, f32)>,
    /// RandAugment policy, timm's form: rand-m9-n2-mstd0.5[-mmax10][-inc1].
    #[arg(long, value_parser = parsed::<RandAugment>)]
    pub aa: Option<RandAugment>,
    /// Colour jitter B (brightness, contrast and saturation alike) or B,C,S[,H]; applied
    /// only without --aa, as in timm.
    #[arg(long, value_parser = parsed::<ColorJitter>)]
    pub color_jitter: Option<ColorJitter>,
    /// Random-erasing probability (0: off), after normalization.
    #[arg(long, default_value_t = 0.0, value_parser = float::probability)]
    pub reprob: f32,
    /// Random-erasing fill: pixel (per-pixel normal), rand (per-channel normal) or const
    /// (zero).
    #[arg(long, default_value = "pixel", value_parser = parsed::<EraseMode>)]
    pub remode: EraseMode,
    /// Random-erasing boxes per image (at most).
    #[arg(long, default_value_t = 1, value_parser = super::int::positive)]
    pub recount: usize,
    /// Mixup's Beta(alpha, alpha) (0: off).
    #[arg(long, default_value_t = 0.0, value_parser = float::non_negative)]
    pub mixup: f32,
    /// CutMix's Beta(alpha, alpha) (0: off).
    #[arg(long, default_value_t = 0.0, value_parser = float::non_negative)]
    pub cutmix: f32,
    /// CutMix box sides as fractions MIN,MAX of the image, instead of from the mixing weight.
    #[arg(long, value_parser = float::range)]
    pub cutmix_minmax: Option<(f32, f32)>,
    /// Probability of mixing a batch (or sample, or pair).
    #[arg(long, default_value_t = 1.0, value_parser = float::probability)]
    pub mixup_prob: f32,
    /// With both mixup and cutmix on, the probability of cutmix.
    #[arg(long, default_value_t = 0.5, value_parser = float::probability)]
    pub mixup_switch_prob: f32,
    /// Which samples share a mixing weight: batch, pair or elem.
    #[arg(long, default_value = "batch", value_parser = parsed::<MixMode>)]
    pub mixup_mode: MixMode,
    /// Stop mixing from this epoch on (1-based count of epochs done, as timm).
    #[arg(long, value_parser = super::int::whole)]
    pub mixup_off_epoch: Option<usize>,
}

/// A value through its `FromStr`, the error as text for clap.
fn parsed<T: std::str::FromStr<Err = bitspike::Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: bitspike::Error| e.to_string())
}

impl AugmentArgs {
    /// The per-image augmentation, filling what geometric ops uncover with the data's
    /// `mean` (timm's `img_mean`).
    pub fn augment(&self, mean: &[f32]) -> Augment {
        let random_resized_crop = (self.scale.is_some() || self.ratio.is_some()).then(|| {
            let d = ResizedCrop::default();
            ResizedCrop {
                scale: self.scale.unwrap_or(d.scale),
                ratio: self.ratio.unwrap_or(d.ratio),
            }
        });
        Augment {
            crop_padding: self.crop_padding,
            horizontal_flip: self.hflip,
            random_resized_crop,
            rand_augment: self.aa.clone(),
            color_jitter: self.color_jitter,
            random_erasing: (self.reprob > 0.0).then(|| RandomErasing {
                probability: self.reprob,
                mode: self.remode,
                max_count: Some(self.recount),
                ..RandomErasing::default()
            }),
            fill: Some(fill_from_mean(mean)),
        }
    }

    /// Mixup / cutmix, when either alpha is set.
    pub fn mixup(&self) -> anyhow::Result<Option<Mixup>> {
        if self.mixup <= 0.0 && self.cutmix <= 0.0 {
            return Ok(None);
        }
        let m = Mixup {
            mixup_alpha: self.mixup,
            cutmix_alpha: self.cutmix,
            cutmix_minmax: self.cutmix_minmax,
            prob: self.mixup_prob,
            switch_prob: self.mixup_switch_prob,
            mode: self.mixup_mode,
            off_epoch: self.mixup_off_epoch,
        };
        m.check()?;
        Ok(Some(m))
    }

    /// `--crop-padding` within the image `size`.
    pub fn check_crop_padding(&self, size: usize) -> anyhow::Result<()> {
        if self.crop_padding > size {
            anyhow::bail!(
                "--crop-padding {} is out of range (allowed: 0..={size}, the image size)",
                self.crop_padding
            );
        }
        Ok(())
    }

    /// The settings in a line, for reports.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("crop_padding={}", self.crop_padding)];
        if self.hflip {
            parts.push("hflip".into());
        }
        if let Some(c) = self.augment(&[]).random_resized_crop {
            parts.push(format!("scale={:?} ratio={:?}", c.scale, c.ratio));
        }
        if let Some(aa) = &self.aa {
            parts.push(format!("aa={aa}"));
        } else if let Some(j) = &self.color_jitter {
            parts.push(format!("color_jitter={j:?}"));
        }
        if self.reprob > 0.0 {
            parts.push(format!("reprob={} remode={:?}", self.reprob, self.remode));
        }
        if self.mixup > 0.0 || self.cutmix > 0.0 {
            parts.push(format!(
                "mixup={} cutmix={} prob={}",
                self.mixup, self.cutmix, self.mixup_prob
            ));
        }
        parts.join(" ")
    }
}
