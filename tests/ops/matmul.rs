use bitspike::ops::{
    matmul, matmul_into, matmul_into_with, matmul_with, transpose_matrices, F32Matmul, MatmulForm,
};
use bitspike::reference;

use bitspike::GpuContext;

use crate::common::{assert_close, contexts, ctx, Rng};

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (37, 97, 53),
    (5, 1000, 3),
    (64, 64, 64),
    (130, 70, 33),
    // Enough row tiles that workgroups take 2, 4 and 8 of them (a ragged last group),
    // with N a multiple of 4 (vec4 stores) and not.
    (40_001, 8, 5),
    (40_001, 7, 5),
    (130_003, 12, 3),
    (130_003, 3, 3),
    (300_007, 4, 2),
    (300_007, 5, 2),
];

const FORMS: [MatmulForm; 4] = [
    MatmulForm::AB,
    MatmulForm::AtB,
    MatmulForm::ABt,
    MatmulForm::AtBt,
];

/// Shapes for the tiled kernel (64 x 64 tiles, K in steps of 16): one element, K not a
/// multiple of 16 or 4, M or N not multiples of the tile (below, across, one past), N a
/// multiple of 4 (vec4 stores) and not, exact tiles.
const TILED_SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (37, 97, 53),
    (5, 1000, 3),
    (130, 67, 129),
    (64, 64, 64),
    (65, 68, 17),
    (200, 132, 50),
];

fn operands(form: MatmulForm, m: usize, n: usize, k: usize) -> (Vec<usize>, Vec<usize>) {
    match form {
        MatmulForm::AB => (vec![m, k], vec![k, n]),
        MatmulForm::AtB => (vec![k, m], vec![k, n]),
        MatmulForm::ABt => (vec![m, k], vec![n, k]),
        MatmulForm::AtBt => (vec![k, m], vec![n, k]),
    }
}

/// Every form on `shapes` with the f32 kernel `kernel`, against the CPU reference.
fn check_forms(
    ctx: &GpuContext,
    rng: &mut Rng,
    shapes: &[(usize, usize, usize)],
    kernel: F32Matmul,
) {
    for form in FORMS {
        for &(m, n, k) in shapes {
            let (sa, sb) = operands(form, m, n, k);
            let a = rng.vec(m * k, -1.0, 1.0);
            let b = rng.vec(k * n, -1.0, 1.0);
            let ta = ctx.upload_f32(&a, &sa).unwrap();
            let tb = ctx.upload_f32(&b, &sb).unwrap();
            let c = matmul_with(ctx, &ta, &tb, form, kernel).unwrap();
            assert_eq!(c.shape(), &[m, n]);
            let got = ctx.download_f32(&c).unwrap();
            let want = reference::matmul::matmul(&a, &b, m, n, k, form);
            assert_close(
                &format!("{kernel:?} {form:?} {m}x{n}x{k}"),
                &got,
                &want,
                1e-4,
            );
        }
    }
}

#[test]
fn matmul_forms_match_reference_on_odd_shapes() {
    for ctx in contexts() {
        check_forms(ctx, &mut Rng::new(7), SHAPES, F32Matmul::Auto);
    }
}

/// Batched products with a shared and a per-batch B, each `(batch, m, n, k)` in every
/// form of `forms`, with the f32 kernel `kernel`, against the CPU reference.
fn check_batched(
    ctx: &GpuContext,
    rng: &mut Rng,
    cases: &[(usize, usize, usize, usize)],
    forms: &[MatmulForm],
    kernel: F32Matmul,
) {
    for &(batch, m, n, k) in cases {
        for &form in forms {
            let (sa, sb) = operands(form, m, n, k);
            let a = rng.vec(batch * m * k, -1.0, 1.0);
            let b_shared = rng.vec(n * k, -1.0, 1.0);
            let b_each = rng.vec(batch * n * k, -1.0, 1.0);
            let ta = ctx.upload_f32(&a, &[&[batch], &sa[..]].concat()).unwrap();
            let shared = ctx.upload_f32(&b_shared, &sb).unwrap();
            let each = ctx
                .upload_f32(&b_each, &[&[batch], &sb[..]].concat())
                .unwrap();
            let run = |b| {
                let c = matmul_with(ctx, &ta, b, form, kernel).unwrap();
                assert_eq!(c.shape(), &[batch, m, n]);
                ctx.download_f32(&c).unwrap()
            };
            let (c_shared, c_each) = (run(&shared), run(&each));
            for i in 0..batch {
                let ai = &a[i * m * k..(i + 1) * m * k];
                let bi = &b_each[i * n * k..(i + 1) * n * k];
                let out = i * m * n..(i + 1) * m * n;
                assert_close(
                    &format!("{kernel:?} {form:?} shared B, batch {i}"),
                    &c_shared[out.clone()],
                    &reference::matmul::matmul(ai, &b_shared, m, n, k, form),
                    1e-4,
                );
                assert_close(
                    &format!("{kernel:?} {form:?} per-batch B, batch {i}"),
                    &c_each[out],
                    &reference::matmul::matmul(ai, bi, m, n, k, form),
                    1e-4,
                );
            }
        }
    }
}

/// `C += op(A) op(B)` on each `(m, n, k)` in every form of `forms` with `kernel`.
fn check_accumulate(
    ctx: &GpuContext,
    rng: &mut Rng,
    shapes: &[(usize, usize, usize)],
    forms: &[MatmulForm],
    kernel: F32Matmul,
) {
    for &(m, n, k) in shapes {
        for &form in forms {
            let (sa, sb) = operands(form, m, n, k);
            let a = rng.vec(m * k, -1.0, 1.0);
            let b = rng.vec(k * n, -1.0, 1.0);
            let c0 = rng.vec(m * n, -1.0, 1.0);
            let ta = ctx.upload_f32(&a, &sa).unwrap();
            let tb = ctx.upload_f32(&b, &sb).unwrap();
            let tc = ctx.upload_f32(&c0, &[m, n]).unwrap();
            matmul_into_with(ctx, &ta, &tb, &tc, form, true, kernel).unwrap();
            let got = ctx.download_f32(&tc).unwrap();
            let prod = reference::matmul::matmul(&a, &b, m, n, k, form);
            let want: Vec<f32> = prod.iter().zip(&c0).map(|(p, c)| p + c).collect();
            assert_close(
                &format!("{kernel:?} {form:?} accumulate"),
                &got,
                &want,
                1e-4,
            );
        }
    }
}

#[test]
fn matmul_batched_with_shared_and_per_batch_b() {
    for ctx in contexts() {
        let cases = [(3, 19, 45, 70)];
        check_batched(
            ctx,
            &mut Rng::new(8),
            &cases,
            &[MatmulForm::ABt],
            F32Matmul::Auto,
        );
    }
}

#[test]
fn matmul_accumulates_into_output() {
    for ctx in contexts() {
        // N = 16: the vec4 store path, N = 17: the scalar one.
        let shapes = [(33, 17, 65), (33, 16, 65)];
        check_accumulate(
            ctx,
            &mut Rng::new(9),
            &shapes,
            &[MatmulForm::AtB],
            F32Matmul::Auto,
        );
    }
}

#[test]
fn tiled_matmul_batched_with_shared_and_per_batch_b() {
    // N = 45: scalar stores, N = 68: vec4 stores; M and K off the tile and the step.
    let cases = [(3, 67, 45, 70), (2, 19, 68, 33)];
    check_batched(ctx(), &mut Rng::new(14), &cases, &FORMS, F32Matmul::Tiled);
}

#[test]
fn tiled_matmul_accumulates_into_output() {
    // N = 17: the scalar store path, N = 68: the vec4 one.
    let shapes = [(33, 17, 65), (70, 68, 21)];
    check_accumulate(ctx(), &mut Rng::new(15), &shapes, &FORMS, F32Matmul::Tiled);
}

#[test]
fn matmul_rejects_mismatched_shapes() {
    let ctx = ctx();
    let a = ctx.zeros(&[4, 5], bitspike::DType::F32).unwrap();
    let b = ctx.zeros(&[6, 7], bitspike::DType::F32).unwrap();
    let err = matmul(ctx, &a, &b, MatmulForm::AB).unwrap_err();
    assert!(
        err.to_string().contains("shape mismatch in matmul"),
        "{err}"
    );
}

#[test]
fn weight_gradient_shapes_split_k_and_still_match() {
    // A^T B with a long K and a small output (a first-layer weight gradient) runs as
    // split-K partial products plus a sum; K = 3 * 2^13 + 0 divides into chunks. On CPU
    // adapters the operands are transposed first (4 x 4 blocks when M and N allow).
    for ctx in contexts() {
        let mut rng = Rng::new(10);
        for (m, n, k) in [(6, 27, 24576), (8, 36, 24576)] {
            let a = rng.vec(k * m, -1.0, 1.0);
            let b = rng.vec(k * n, -1.0, 1.0);
            let c0 = rng.vec(m * n, -1.0, 1.0);
            let ta = ctx.upload_f32(&a, &[k, m]).unwrap();
            let tb = ctx.upload_f32(&b, &[k, n]).unwrap();
            let tc = ctx.upload_f32(&c0, &[m, n]).unwrap();
            matmul_into(ctx, &ta, &tb, &tc, MatmulForm::AtB, true).unwrap();
            let prod = reference::matmul::matmul(&a, &b, m, n, k, MatmulForm::AtB);
            let want: Vec<f32> = prod.iter().zip(&c0).map(|(p, c)| p + c).collect();
            assert_close(
                "split-K AtB accumulate",
                &ctx.download_f32(&tc).unwrap(),
                &want,
                1e-3,
            );
            let fresh = matmul(ctx, &ta, &tb, MatmulForm::AtB).unwrap();
            assert_close(
                "split-K AtB",
                &ctx.download_f32(&fresh).unwrap(),
                &prod,
                1e-3,
            );
        }
    }
}

#[test]
fn transpose_matrices_swaps_the_last_two_axes() {
    // [3, 5, 7]: the element-wise kernel; [2, 8, 12]: 4 x 4 blocks.
    for ctx in contexts() {
        let mut rng = Rng::new(12);
        for [batch, rows, cols] in [[3, 5, 7], [2, 8, 12]] {
            let x = rng.vec(batch * rows * cols, -1.0, 1.0);
            let tx = ctx.upload_f32(&x, &[batch, rows, cols]).unwrap();
            let t = transpose_matrices(ctx, &tx).unwrap();
            assert_eq!(t.shape(), &[batch, cols, rows]);
            let got = ctx.download_f32(&t).unwrap();
            let mut want = vec![0.0; x.len()];
            for b in 0..batch {
                for r in 0..rows {
                    for c in 0..cols {
                        want[(b * cols + c) * rows + r] = x[(b * rows + r) * cols + c];
                    }
                }
            }
            assert_eq!(got, want, "transpose of [{batch}, {rows}, {cols}]");
        }
    }
}

#[test]
fn tiled_matmul_forms_match_reference_on_odd_shapes() {
    check_forms(ctx(), &mut Rng::new(13), TILED_SHAPES, F32Matmul::Tiled);
}

#[test]
fn tiled_weight_gradient_shapes_split_k_and_still_match() {
    // A long-K A^T B with few output tiles runs as split-K partial products plus a sum on
    // the tiled kernel too (no transposed copies: it reads along stored rows).
    let ctx = ctx();
    let mut rng = Rng::new(16);
    for (m, n, k) in [(6, 27, 24576), (70, 36, 8192)] {
        let a = rng.vec(k * m, -1.0, 1.0);
        let b = rng.vec(k * n, -1.0, 1.0);
        let c0 = rng.vec(m * n, -1.0, 1.0);
        let ta = ctx.upload_f32(&a, &[k, m]).unwrap();
        let tb = ctx.upload_f32(&b, &[k, n]).unwrap();
        let tc = ctx.upload_f32(&c0, &[m, n]).unwrap();
        matmul_into_with(ctx, &ta, &tb, &tc, MatmulForm::AtB, true, F32Matmul::Tiled).unwrap();
        let prod = reference::matmul::matmul(&a, &b, m, n, k, MatmulForm::AtB);
        let want: Vec<f32> = prod.iter().zip(&c0).map(|(p, c)| p + c).collect();
        assert_close(
            "tiled split-K AtB accumulate",
            &ctx.download_f32(&tc).unwrap(),
            &want,
            1e-3,
        );
    }
}
