use bitspike::ops::{
    linear, linear_backward, linear_backward_spikes, linear_binary, pack_bits, PackMode,
};
use bitspike::reference::linear as rlin;
use bitspike::DType;

use crate::common::{assert_exact, contexts, ctx, Rng};
use crate::layers_common::{assert_close64, check_gradient, dot, to64};

/// (leading shape of x, in, out)
const CASES: &[(&[usize], usize, usize)] = &[
    (&[37], 53, 6),
    (&[2, 3, 5], 7, 9),
    (&[1], 1, 1),
    (&[4, 65], 130, 33),
];

fn shape(lead: &[usize], last: usize) -> Vec<usize> {
    let mut s = lead.to_vec();
    s.push(last);
    s
}

#[test]
fn linear_forward_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(21);
        for &(lead, k, out) in CASES {
            let rows: usize = lead.iter().product();
            let x = rng.vec(rows * k, -1.0, 1.0);
            let w = rng.vec(out * k, -1.0, 1.0);
            let b = rng.vec(out, -1.0, 1.0);
            let tx = ctx.upload_f32(&x, &shape(lead, k)).unwrap();
            let tw = ctx.upload_f32(&w, &[out, k]).unwrap();
            let tb = ctx.upload_f32(&b, &[out]).unwrap();
            for with_bias in [false, true] {
                let bias = with_bias.then_some(&tb);
                let y = linear(ctx, &tx, &tw, bias).unwrap();
                assert_eq!(y.shape(), &shape(lead, out)[..]);
                let b64 = to64(&b);
                let want =
                    rlin::linear(&to64(&x), &to64(&w), with_bias.then_some(&b64[..]), k, out);
                let what = format!("linear {lead:?}x{k}->{out} bias={with_bias}");
                assert_close64(&what, &ctx.download_f32(&y).unwrap(), &want, 1e-4);
            }
        }
    }
}

#[test]
fn linear_backward_from_packed_spikes_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(23);
        for &(lead, k, out) in CASES {
            let rows: usize = lead.iter().product();
            let x = rng.spikes(rows * k, 0.3);
            let w = rng.signs(out * k);
            let dy = rng.vec(rows * out, -1.0, 1.0);
            let dw0 = rng.vec(out * k, -1.0, 1.0);
            let db0 = rng.vec(out, -1.0, 1.0);
            let (dx_want, dw, db) = rlin::linear_backward(&to64(&x), &to64(&w), &to64(&dy), k, out);
            let acc = |g: &[f64], g0: &[f32]| -> Vec<f64> {
                g.iter().zip(g0).map(|(a, &b)| a + b as f64).collect()
            };
            let x_bits = pack_bits(
                ctx,
                &ctx.upload_f32(&x, &shape(lead, k)).unwrap(),
                PackMode::Spikes,
            )
            .unwrap();
            let tw = ctx.upload_f32(&w, &[out, k]).unwrap();
            // W^T [in, out], packed along out.
            let wt: Vec<f32> = (0..k * out).map(|e| w[(e % out) * k + e / out]).collect();
            let wt_bits = pack_bits(
                ctx,
                &ctx.upload_f32(&wt, &[k, out]).unwrap(),
                PackMode::Signs,
            )
            .unwrap();
            let tdy = ctx.upload_f32(&dy, &shape(lead, out)).unwrap();
            for signs_t in [None, Some(&wt_bits)] {
                let what = format!(
                    "spike linear backward {lead:?}x{k}->{out} packed dx {}",
                    signs_t.is_some()
                );
                let tdw = ctx.upload_f32(&dw0, &[out, k]).unwrap();
                let tdb = ctx.upload_f32(&db0, &[out]).unwrap();
                let dx = linear_backward_spikes(
                    ctx,
                    &x_bits,
                    &tw,
                    signs_t,
                    &tdy,
                    &tdw,
                    Some(&tdb),
                    true,
                )
                .unwrap()
                .expect("asked for dx");
                assert_eq!(dx.shape(), &shape(lead, k)[..]);
                let dx = ctx.download_f32(&dx).unwrap();
                assert_close64(&format!("{what} dx"), &dx, &dx_want, 1e-4);
                let got_dw = ctx.download_f32(&tdw).unwrap();
                assert_close64(&format!("{what} dw"), &got_dw, &acc(&dw, &dw0), 1e-4);
                let got_db = ctx.download_f32(&tdb).unwrap();
                assert_close64(&format!("{what} db"), &got_db, &acc(&db, &db0), 1e-4);
            }
            let none = linear_backward_spikes(
                ctx,
                &x_bits,
                &tw,
                None,
                &tdy,
                &ctx.zeros(&[out, k], DType::F32).unwrap(),
                None,
                false,
            )
            .unwrap();
            assert!(none.is_none(), "no dx unless asked");
        }
    }
}

#[test]
fn linear_backward_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(22);
        for &(lead, k, out) in CASES {
            let rows: usize = lead.iter().product();
            let x = rng.vec(rows * k, -1.0, 1.0);
            let w = rng.vec(out * k, -1.0, 1.0);
            let dy = rng.vec(rows * out, -1.0, 1.0);
            let dw0 = rng.vec(out * k, -1.0, 1.0);
            let db0 = rng.vec(out, -1.0, 1.0);
            let (dx_want, dw, db) = rlin::linear_backward(&to64(&x), &to64(&w), &to64(&dy), k, out);
            let acc = |g: &[f64], g0: &[f32]| -> Vec<f64> {
                g.iter().zip(g0).map(|(a, &b)| a + b as f64).collect()
            };
            let tx = ctx.upload_f32(&x, &shape(lead, k)).unwrap();
            let tw = ctx.upload_f32(&w, &[out, k]).unwrap();
            let tdy = ctx.upload_f32(&dy, &shape(lead, out)).unwrap();
            let tdw = ctx.upload_f32(&dw0, &[out, k]).unwrap();
            let tdb = ctx.upload_f32(&db0, &[out]).unwrap();
            let dx = linear_backward(ctx, &tx, &tw, &tdy, &tdw, Some(&tdb)).unwrap();
            assert_eq!(dx.shape(), tx.shape());
            let what = format!("linear backward {lead:?}x{k}->{out}");
            assert_close64(
                &format!("{what} dx"),
                &ctx.download_f32(&dx).unwrap(),
                &dx_want,
                1e-4,
            );
            assert_close64(
                &format!("{what} dw"),
                &ctx.download_f32(&tdw).unwrap(),
                &acc(&dw, &dw0),
                1e-4,
            );
            assert_close64(
                &format!("{what} db"),
                &ctx.download_f32(&tdb).unwrap(),
                &acc(&db, &db0),
                1e-4,
            );
            // Without a bias gradient.
            let tdw = ctx.upload_f32(&dw0, &[out, k]).unwrap();
            let dx = linear_backward(ctx, &tx, &tw, &tdy, &tdw, None).unwrap();
            assert_close64(
                &format!("{what} dx, no bias"),
                &ctx.download_f32(&dx).unwrap(),
                &dx_want,
                1e-4,
            );
        }
    }
}

#[test]
fn linear_reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(23);
    let (rows, k, out) = (5, 4, 3);
    let x = to64(&rng.vec(rows * k, -1.0, 1.0));
    let w = to64(&rng.vec(out * k, -1.0, 1.0));
    let b = to64(&rng.vec(out, -1.0, 1.0));
    let r = to64(&rng.vec(rows * out, -1.0, 1.0));
    let (dx, dw, db) = rlin::linear_backward(&x, &w, &r, k, out);
    let loss = |x: &[f64], w: &[f64], b: &[f64]| dot(&rlin::linear(x, w, Some(b), k, out), &r);
    check_gradient("linear dx", &x, &dx, |v| loss(v, &w, &b), 1e-5, 1e-7);
    check_gradient("linear dw", &w, &dw, |v| loss(&x, v, &b), 1e-5, 1e-7);
    check_gradient("linear db", &b, &db, |v| loss(&x, &w, v), 1e-5, 1e-7);
}

#[test]
fn binary_linear_equals_f32_linear_on_spikes_and_signs() {
    for ctx in contexts() {
        let mut rng = Rng::new(24);
        for &(lead, k, out) in CASES.iter().chain(&[(&[3usize, 64][..], 300, 70)]) {
            let rows: usize = lead.iter().product();
            let x = rng.spikes(rows * k, 0.3);
            let w = rng.signs(out * k);
            let b = rng.vec(out, -1.0, 1.0);
            let tx = ctx.upload_f32(&x, &shape(lead, k)).unwrap();
            let tw = ctx.upload_f32(&w, &[out, k]).unwrap();
            let tb = ctx.upload_f32(&b, &[out]).unwrap();
            let x_bits = pack_bits(ctx, &tx, PackMode::Spikes).unwrap();
            let w_bits = pack_bits(ctx, &tw, PackMode::Signs).unwrap();
            for with_bias in [false, true] {
                let bias = with_bias.then_some(&tb);
                let y = linear_binary(ctx, &x_bits, &w_bits, bias).unwrap();
                assert_eq!(y.shape(), &shape(lead, out)[..]);
                let f = linear(ctx, &tx, &tw, bias).unwrap();
                assert_exact(
                    &format!("binary linear {lead:?}x{k}->{out} bias={with_bias}"),
                    &ctx.download_f32(&y).unwrap(),
                    &ctx.download_f32(&f).unwrap(),
                );
            }
        }
    }
}

#[test]
fn linear_rejects_mismatched_shapes() {
    let ctx = ctx();
    let x = ctx.zeros(&[4, 5], DType::F32).unwrap();
    let w = ctx.zeros(&[3, 6], DType::F32).unwrap();
    let err = linear(ctx, &x, &w, None).unwrap_err();
    assert!(err.to_string().contains("shape mismatch"), "{err}");
    let w = ctx.zeros(&[3, 5], DType::F32).unwrap();
    let b = ctx.zeros(&[4], DType::F32).unwrap();
    assert!(linear(ctx, &x, &w, Some(&b)).is_err());
    let err = linear_binary(ctx, &x, &w, None).unwrap_err();
    assert!(err.to_string().contains("dtype mismatch"), "{err}");
}
