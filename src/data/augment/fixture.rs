//! The PIL / torchvision / timm outputs of scripts/augment_fixtures.py, for the tests.

use crate::data::Planar;

#[derive(serde::Deserialize)]
pub struct Fixture {
    pub rand_transforms: Vec<String>,
    pub rand_increasing_transforms: Vec<String>,
    pub images: Vec<Image>,
    pub level_args: Vec<LevelArg>,
}

#[derive(serde::Deserialize)]
pub struct Image {
    pub mode: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub fill: Vec<u8>,
    pub input: Vec<u8>,
    pub cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
pub struct Case {
    pub op: String,
    pub args: Vec<f64>,
    pub output: Vec<u8>,
}

/// timm's argument(s) of `op` at `magnitude`, with the random negation off.
#[derive(serde::Deserialize)]
pub struct LevelArg {
    pub op: String,
    pub magnitude: f64,
    pub args: Vec<f64>,
}

pub fn load() -> Fixture {
    serde_json::from_str(include_str!(
        "../../../tests/fixtures/augment/pil_timm.json"
    ))
    .expect("the augmentation fixture parses")
}

impl Image {
    pub fn planar(&self) -> Planar {
        Planar::from_vec(self.input.clone(), self.channels, self.height, self.width)
    }
}

/// Run `op` on every fixture case of that name (both images) and compare with PIL's
/// output, byte for byte.
pub fn check_op(op: &str, run: impl Fn(&Image, &[f64]) -> Planar) {
    let fixture = load();
    let mut ran = 0;
    for image in &fixture.images {
        for case in image.cases.iter().filter(|c| c.op == op) {
            let got = run(image, &case.args);
            assert_eq!(
                got.data.len(),
                case.output.len(),
                "{op}{:?} on {}: size",
                case.args,
                image.mode
            );
            let diffs: Vec<u8> = got
                .data
                .iter()
                .zip(&case.output)
                .map(|(&a, &b)| a.abs_diff(b))
                .filter(|&d| d > 0)
                .collect();
            assert!(
                diffs.is_empty(),
                "{op}{:?} on the {} image: {} of {} values differ from PIL, by up to {}",
                case.args,
                image.mode,
                diffs.len(),
                case.output.len(),
                diffs.iter().max().unwrap_or(&0)
            );
            ran += 1;
        }
    }
    assert!(ran > 0, "no fixture cases for {op}");
}
