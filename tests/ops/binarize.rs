use bitspike::ops::{binarize_weights, binarize_weights_backward, pack_bits, PackMode};
use bitspike::reference::binarize as rbin;
use bitspike::DType;

use crate::common::{assert_exact, contexts, ctx, Rng};
use crate::layers_common::{assert_close64, check_gradient, dot, to64};

/// (C_out, K): conv fan-ins 9 C_in (27, 45), one past a word, several workgroup strides.
const CASES: &[(usize, usize)] = &[(6, 27), (6, 45), (3, 33), (5, 300), (2, 1000), (1, 2)];

#[test]
fn binarize_matches_reference_and_packs_the_same_signs() {
    for ctx in contexts() {
        let mut rng = Rng::new(61);
        for &(c_out, k) in CASES {
            let w: Vec<f32> = rng
                .vec(c_out * k, -1.0, 1.0)
                .iter()
                .map(|v| 0.3 + 0.05 * v)
                .collect();
            let want = rbin::binarize(&to64(&w), c_out, k);
            let tw = ctx.upload_f32(&w, &[c_out, k]).unwrap();
            let b = binarize_weights(ctx, &tw).unwrap();
            assert_eq!(b.signs.shape(), &[c_out, k]);
            assert_eq!(b.bits.shape(), &[c_out, k]);
            assert_eq!(b.bits.dtype(), DType::PackedBits);
            let what = format!("binarize {c_out}x{k}");
            let signs = ctx.download_f32(&b.signs).unwrap();
            // Signs agree wherever w_hat is not within rounding of zero.
            for (i, (&s, &h)) in signs.iter().zip(&want.w_hat).enumerate() {
                if h.abs() > 1e-4 {
                    assert_eq!(s as f64, want.signs[i], "{what}: sign {i} (w_hat {h})");
                } else {
                    assert!(s == 1.0 || s == -1.0, "{what}: sign {i} is {s}");
                }
            }
            // The packed weights are exactly the f32 signs, packed.
            let bits: Vec<u32> = ctx.download_words(&b.bits).unwrap();
            let repacked: Vec<u32> = ctx
                .download_words(&pack_bits(ctx, &b.signs, PackMode::Signs).unwrap())
                .unwrap();
            assert_exact(&format!("{what} bits"), &bits, &repacked);
            let stats = ctx.download_f32(&b.stats).unwrap();
            let mean: Vec<f32> = stats.iter().step_by(2).copied().collect();
            let std: Vec<f32> = stats.iter().skip(1).step_by(2).copied().collect();
            assert_close64(&format!("{what} mean"), &mean, &want.mean, 1e-5);
            assert_close64(&format!("{what} std"), &std, &want.std, 1e-3);
        }
    }
}

#[test]
fn binarize_backward_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(62);
        for &(c_out, k) in CASES {
            let w = rng.vec(c_out * k, -1.0, 1.0);
            let g = rng.vec(c_out * k, -1.0, 1.0);
            let dw0 = rng.vec(c_out * k, -1.0, 1.0);
            let want: Vec<f64> = rbin::binarize_backward(&to64(&w), &to64(&g), c_out, k)
                .iter()
                .zip(&dw0)
                .map(|(a, &b)| a + b as f64)
                .collect();
            let tw = ctx.upload_f32(&w, &[c_out, k]).unwrap();
            let b = binarize_weights(ctx, &tw).unwrap();
            let tg = ctx.upload_f32(&g, &[c_out, k]).unwrap();
            let tdw = ctx.upload_f32(&dw0, &[c_out, k]).unwrap();
            binarize_weights_backward(ctx, &tw, &b.stats, &tg, &tdw).unwrap();
            let what = format!("binarize backward {c_out}x{k}");
            assert_close64(&what, &ctx.download_f32(&tdw).unwrap(), &want, 2e-4);
        }
    }
}

#[test]
fn binarize_reference_backward_matches_finite_differences() {
    // The sign is straight-through, so the backward is the exact gradient of
    // L(w) = <g, w_hat(w)> through the mean and unbiased-std normalization.
    let mut rng = Rng::new(63);
    for (c_out, k) in [(3, 7), (2, 2), (1, 18)] {
        let w = to64(&rng.vec(c_out * k, -1.0, 1.0));
        let g = to64(&rng.vec(c_out * k, -1.0, 1.0));
        let dw = rbin::binarize_backward(&w, &g, c_out, k);
        check_gradient(
            &format!("binarize {c_out}x{k}"),
            &w,
            &dw,
            |v| dot(&rbin::binarize(v, c_out, k).w_hat, &g),
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn binarize_maps_zero_to_plus_one() {
    let ctx = ctx();
    // Row 0: w_hat = (-1, 0, 1): sign(0) is +1 here (torch.sign gives 0). Row 1: equal
    // weights, std 0: all +1 and a zero gradient.
    let w = [1.0, 2.0, 3.0, 0.5, 0.5, 0.5];
    let tw = ctx.upload_f32(&w, &[2, 3]).unwrap();
    let b = binarize_weights(ctx, &tw).unwrap();
    assert_eq!(
        ctx.download_f32(&b.signs).unwrap(),
        vec![-1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    );
    let bits: Vec<u32> = ctx.download_words(&b.bits).unwrap();
    assert_eq!(bits, vec![0b110, 0, 0, 0, 0b111, 0, 0, 0]);
    let g = ctx
        .upload_f32(&[1.0, -2.0, 0.5, 1.0, -2.0, 0.5], &[2, 3])
        .unwrap();
    let dw = ctx.zeros(&[2, 3], DType::F32).unwrap();
    binarize_weights_backward(ctx, &tw, &b.stats, &g, &dw).unwrap();
    let got = ctx.download_f32(&dw).unwrap();
    assert_eq!(&got[3..], &[0.0, 0.0, 0.0]);
    let want = rbin::binarize_backward(&to64(&w), &[1.0, -2.0, 0.5, 1.0, -2.0, 0.5], 2, 3);
    assert_close64("binarize backward", &got, &want, 1e-5);
    assert!(binarize_weights(ctx, &ctx.zeros(&[4, 1], DType::F32).unwrap()).is_err());
}
