use bitspike::ops::{pack_bits, PackMode};
use bitspike::reference;
use bitspike::DType;

use crate::common::{assert_exact, ctx, Rng};

fn check(rows: usize, k: usize, mode: PackMode, seed: u64) {
    let mut rng = Rng::new(seed);
    // Include exact zeros: they are where spikes and signs differ.
    let x: Vec<f32> = rng
        .vec(rows * k, -1.0, 1.0)
        .into_iter()
        .map(|v| if v.abs() < 0.2 { 0.0 } else { v })
        .collect();
    let ctx = ctx();
    let t = ctx.upload_f32(&x, &[rows, k]).unwrap();
    let bits = pack_bits(ctx, &t, mode).unwrap();
    assert_eq!(bits.dtype(), DType::PackedBits);
    assert_eq!(bits.shape(), &[rows, k]);
    let got: Vec<u32> = ctx.download_words(&bits).unwrap();
    let want = reference::pack::pack_bits(&x, k, mode);
    assert_exact(&format!("pack {mode:?} {rows}x{k}"), &got, &want);
}

#[test]
fn pack_spikes_matches_reference_on_odd_shapes() {
    for (i, &(rows, k)) in [
        (1, 1),
        (37, 97),
        (5, 1000),
        (3, 32),
        (2, 64),
        (1000, 3),
        (7, 36),
        (3, 148),
    ]
    .iter()
    .enumerate()
    {
        check(rows, k, PackMode::Spikes, i as u64);
    }
}

#[test]
fn pack_signs_maps_zero_to_plus_one() {
    for (i, &(rows, k)) in [(1, 1), (37, 97), (5, 1000), (9, 33), (7, 36)]
        .iter()
        .enumerate()
    {
        check(rows, k, PackMode::Signs, 100 + i as u64);
    }
    let ctx = ctx();
    let t = ctx.upload_f32(&[0.0, -0.0, -1.0, 2.0], &[1, 4]).unwrap();
    let signs: Vec<u32> = ctx
        .download_words(&pack_bits(ctx, &t, PackMode::Signs).unwrap())
        .unwrap();
    let spikes: Vec<u32> = ctx
        .download_words(&pack_bits(ctx, &t, PackMode::Spikes).unwrap())
        .unwrap();
    // One row of 4 bits fills one 128-bit group: the word, then three zero words.
    assert_eq!(signs, vec![0b1011, 0, 0, 0], "0 and -0 pack to +1 as signs");
    assert_eq!(spikes, vec![0b1000, 0, 0, 0], "only positive values spike");
}
