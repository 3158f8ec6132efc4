use bitspike::ops::{
    binary_matmul, matmul_f32_bits, pack_bits, spike_weight_grad_into, BinaryForm, PackMode,
};
use bitspike::reference;

use crate::common::{assert_close, contexts, ctx, Rng};

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (37, 97, 53),
    (5, 1000, 3),
    (70, 65, 300),
    (64, 64, 256),
    // Enough row tiles that workgroups take 2, 4 and 8 of them (a ragged last group),
    // with N a multiple of 4 (vec4 stores) and not.
    (40_001, 8, 5),
    (40_001, 7, 5),
    (130_003, 12, 3),
    (130_003, 3, 3),
    (300_007, 4, 2),
    (300_007, 5, 2),
];

fn values(rng: &mut Rng, n: usize, mode: PackMode) -> Vec<f32> {
    match mode {
        PackMode::Spikes => rng.spikes(n, 0.3),
        PackMode::Signs => rng.signs(n),
    }
}

fn check_form(form: BinaryForm, batch: Option<usize>, shared_b: bool, seed: u64) {
    let (mode_a, mode_b) = match form {
        BinaryForm::SpikesSigns => (PackMode::Spikes, PackMode::Signs),
        BinaryForm::SignsSigns => (PackMode::Signs, PackMode::Signs),
        BinaryForm::SpikesSpikes => (PackMode::Spikes, PackMode::Spikes),
    };
    for ctx in contexts() {
        let mut rng = Rng::new(seed);
        for &(m, n, k) in SHAPES {
            let nb = batch.unwrap_or(1);
            let b_count = if shared_b { 1 } else { nb };
            let a = values(&mut rng, nb * m * k, mode_a);
            let b = values(&mut rng, b_count * n * k, mode_b);
            let scale = rng.vec(n, 0.5, 2.0);
            let (sa, sb): (Vec<usize>, Vec<usize>) = match batch {
                Some(nb) if !shared_b => (vec![nb, m, k], vec![nb, n, k]),
                Some(nb) => (vec![nb, m, k], vec![n, k]),
                None => (vec![m, k], vec![n, k]),
            };
            let pa = pack_bits(ctx, &ctx.upload_f32(&a, &sa).unwrap(), mode_a).unwrap();
            let pb = pack_bits(ctx, &ctx.upload_f32(&b, &sb).unwrap(), mode_b).unwrap();
            let ts = ctx.upload_f32(&scale, &[n]).unwrap();
            for with_scale in [false, true] {
                let s = with_scale.then_some(&ts);
                let out = binary_matmul(ctx, &pa, &pb, s, form).unwrap();
                let got = ctx.download_f32(&out).unwrap();
                for i in 0..nb {
                    let ai = &a[i * m * k..(i + 1) * m * k];
                    let bi = if shared_b {
                        &b[..]
                    } else {
                        &b[i * n * k..(i + 1) * n * k]
                    };
                    let want = reference::binary_matmul::dot_rows(
                        ai,
                        bi,
                        with_scale.then_some(&scale[..]),
                        m,
                        n,
                        k,
                    );
                    assert_close(
                        &format!("{form:?} batch {i} {m}x{n}x{k} scale={with_scale}"),
                        &got[i * m * n..(i + 1) * m * n],
                        &want,
                        1e-5,
                    );
                }
            }
        }
    }
}

#[test]
fn spikes_times_signs_matches_reference() {
    check_form(BinaryForm::SpikesSigns, None, true, 1);
}

#[test]
fn signs_times_signs_xnor_matches_reference() {
    check_form(BinaryForm::SignsSigns, None, true, 2);
}

#[test]
fn spikes_times_spikes_matches_reference() {
    check_form(BinaryForm::SpikesSpikes, None, true, 3);
}

#[test]
fn binary_matmul_batched_shared_and_per_batch() {
    check_form(BinaryForm::SpikesSigns, Some(3), true, 4);
    check_form(BinaryForm::SpikesSpikes, Some(2), false, 5);
}

#[test]
fn f32_times_packed_signs_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(6);
        for &(m, n, k) in SHAPES {
            for batch in [None, Some(2)] {
                let nb = batch.unwrap_or(1);
                let x = rng.vec(nb * m * k, -1.0, 1.0);
                let w = rng.signs(n * k);
                let scale = rng.vec(n, 0.5, 2.0);
                let sx: Vec<usize> = match batch {
                    Some(nb) => vec![nb, m, k],
                    None => vec![m, k],
                };
                let tx = ctx.upload_f32(&x, &sx).unwrap();
                let pw =
                    pack_bits(ctx, &ctx.upload_f32(&w, &[n, k]).unwrap(), PackMode::Signs).unwrap();
                let ts = ctx.upload_f32(&scale, &[n]).unwrap();
                let got = ctx
                    .download_f32(&matmul_f32_bits(ctx, &tx, &pw, Some(&ts)).unwrap())
                    .unwrap();
                for i in 0..nb {
                    let want = reference::binary_matmul::dot_rows(
                        &x[i * m * k..(i + 1) * m * k],
                        &w,
                        Some(&scale),
                        m,
                        n,
                        k,
                    );
                    assert_close(
                        &format!("f32 x bits {m}x{n}x{k}"),
                        &got[i * m * n..(i + 1) * m * n],
                        &want,
                        1e-4,
                    );
                }
            }
        }
    }
}

#[test]
fn spike_weight_grad_matches_reference_on_odd_shapes() {
    // Both variants: the portable kernel, and the subgroup one (O a multiple of 4).
    for ctx in contexts() {
        check_spike_weight_grad(ctx);
    }
}

fn check_spike_weight_grad(ctx: &bitspike::GpuContext) {
    let mut rng = Rng::new(8);
    // (M, O, K): one chunk and many, O and K off every block size, a chunk count that
    // leaves a short last chunk.
    for &(m, o, k) in &[
        (1, 1, 1),
        (37, 5, 45),
        (300, 13, 129),
        (3001, 32, 144),
        (20_011, 7, 33),
    ] {
        for accumulate in [false, true] {
            let dy = rng.vec(m * o, -1.0, 1.0);
            let x = rng.spikes(m * k, 0.2);
            let start = rng.vec(o * k, -1.0, 1.0);
            let bits =
                pack_bits(ctx, &ctx.upload_f32(&x, &[m, k]).unwrap(), PackMode::Spikes).unwrap();
            let tdy = ctx.upload_f32(&dy, &[m, o]).unwrap();
            let dw = ctx.upload_f32(&start, &[o, k]).unwrap();
            spike_weight_grad_into(ctx, &tdy, &bits, &dw, accumulate).unwrap();
            let mut want = reference::binary_matmul::spike_weight_grad(&dy, &x, m, o, k);
            if accumulate {
                want.iter_mut().zip(&start).for_each(|(w, s)| *w += s);
            }
            assert_close(
                &format!("spike dW {m}x{o}x{k} accumulate {accumulate}"),
                &ctx.download_f32(&dw).unwrap(),
                &want,
                1e-4,
            );
        }
    }
}

#[test]
fn spike_weight_grad_checks_shapes() {
    let ctx = ctx();
    let dy = ctx.zeros(&[10, 4], bitspike::DType::F32).unwrap();
    let bits = ctx.zeros(&[9, 40], bitspike::DType::PackedBits).unwrap();
    let dw = ctx.zeros(&[4, 40], bitspike::DType::F32).unwrap();
    let err = spike_weight_grad_into(ctx, &dy, &bits, &dw, false).unwrap_err();
    assert!(err.to_string().contains("spike_weight_grad"), "{err}");
}

#[test]
fn binary_matmul_rejects_mismatched_k_and_dtype() {
    let ctx = ctx();
    let a = ctx.zeros(&[4, 40], bitspike::DType::PackedBits).unwrap();
    let b = ctx.zeros(&[3, 41], bitspike::DType::PackedBits).unwrap();
    let err = binary_matmul(ctx, &a, &b, None, BinaryForm::SpikesSigns).unwrap_err();
    assert!(err.to_string().contains("shape mismatch"), "{err}");
    let f = ctx.zeros(&[4, 40], bitspike::DType::F32).unwrap();
    let err = binary_matmul(ctx, &f, &a, None, BinaryForm::SpikesSigns).unwrap_err();
    assert!(err.to_string().contains("dtype mismatch"), "{err}");
}
