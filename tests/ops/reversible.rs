use bitspike::ops::reversible::{couple, to_stream, uncouple, Coupling, STREAM_FRACTION_BITS};
use bitspike::ops::PackMode;
use bitspike::reference::{self, reversible as rf};
use bitspike::{DType, Tensor};

use crate::common::{assert_close, assert_exact, ctx, Rng};

const SHAPES: &[(usize, usize)] = &[(1, 1), (37, 19), (5, 131), (3, 32), (2, 64), (7, 200)];

/// Fixed-point counts spread over the stream's range, with values near the wrap-around.
fn counts(rng: &mut Rng, n: usize) -> Vec<i64> {
    (0..n)
        .map(|i| match i % 7 {
            0 => i64::MAX - (rng.next_u64() % 3) as i64,
            1 => i64::MIN + (rng.next_u64() % 3) as i64,
            _ => {
                (rng.range(-8.0, 8.0) as f64 * (1u64 << STREAM_FRACTION_BITS) as f64) as i64
                    + (rng.next_u64() % 1000) as i64
            }
        })
        .collect()
}

#[test]
fn to_stream_rounds_to_the_fixed_point_grid() {
    let ctx = ctx();
    for (i, &(rows, k)) in SHAPES.iter().enumerate() {
        let mut rng = Rng::new(i as u64);
        let mut x = rng.vec(rows * k, -20.0, 20.0);
        // Values below the grid, past the clamp, and negative with a fraction.
        x[0] = -0.5f32.powi(40);
        if x.len() > 3 {
            x[1] = 3e9;
            x[2] = -3e9;
            x[3] = -1.0 - 0.5f32.powi(20);
        }
        let s = to_stream(ctx, &ctx.upload_f32(&x, &[rows, k]).unwrap()).unwrap();
        assert_eq!(s.fixed.dtype(), DType::I64);
        let fixed: Vec<i64> = ctx.download_words(&s.fixed).unwrap();
        let want = rf::to_stream(&x);
        assert_exact(&format!("to_stream {rows}x{k}"), &fixed, &want);
        let values = ctx.download_f32(&s.value).unwrap();
        let want_values: Vec<f32> = want.iter().map(|&f| rf::value_of(f)).collect();
        assert_exact("stream values", &values, &want_values);
    }
}

/// A sub-block output `a` and two streams' counts `p`, `r` of shape `[rows, k]`, on the
/// host and on the GPU.
struct Operands {
    a: Vec<f32>,
    p: Vec<i64>,
    r: Vec<i64>,
    ta: Tensor,
    tp: Tensor,
    tr: Tensor,
}

fn operands(seed: u64, rows: usize, k: usize) -> Operands {
    let ctx = ctx();
    let mut rng = Rng::new(seed);
    let n = rows * k;
    let a = rng.vec(n, -4.0, 4.0);
    let p = counts(&mut rng, n);
    let r = counts(&mut rng, n);
    let shape = [rows, k];
    Operands {
        ta: ctx.upload_f32(&a, &shape).unwrap(),
        tp: ctx.upload_words(&p, &shape, DType::I64).unwrap(),
        tr: ctx.upload_words(&r, &shape, DType::I64).unwrap(),
        a,
        p,
        r,
    }
}

#[test]
fn couple_matches_reference_and_the_real_mean() {
    let ctx = ctx();
    for (i, &(rows, k)) in SHAPES.iter().enumerate() {
        let n = rows * k;
        let Operands {
            a,
            p,
            r,
            ta,
            tp,
            tr,
        } = operands(10 + i as u64, rows, k);
        let (out, parity) = couple(ctx, &ta, &tp, Coupling::Mean { r: &tr }).unwrap();
        let (want, want_parity) = rf::couple(&a, &p, Some(&r));
        let got: Vec<i64> = ctx.download_words(&out.fixed).unwrap();
        assert_exact(&format!("couple {rows}x{k}"), &got, &want);
        let bits: Vec<u32> = ctx.download_words(&parity.unwrap()).unwrap();
        let parity_spikes: Vec<f32> = want_parity.iter().map(|&b| b as u8 as f32).collect();
        let want_bits = reference::pack::pack_bits(&parity_spikes, k, PackMode::Spikes);
        assert_exact("parity bits", &bits, &want_bits);
        // Away from the wrap-around the counts are the real a + (p + r) / 2 to 2^-20.
        let values = ctx.download_f32(&out.value).unwrap();
        let grid = 0.5f32.powi(STREAM_FRACTION_BITS as i32);
        let (mut got_real, mut want_real) = (Vec::new(), Vec::new());
        for j in (0..n).filter(|j| j % 7 >= 2) {
            got_real.push(values[j]);
            want_real.push(a[j] + (rf::value_of(p[j]) + rf::value_of(r[j])) / 2.0);
        }
        assert_close(
            "couple values",
            &got_real,
            &want_real,
            4.0 * f32::EPSILON + grid,
        );
        let (first, none) = couple(ctx, &ta, &tp, Coupling::Add).unwrap();
        assert!(none.is_none());
        let got: Vec<i64> = ctx.download_words(&first.fixed).unwrap();
        assert_exact("couple (add)", &got, &rf::couple(&a, &p, None).0);
    }
}

/// The inverse rebuilds p bit for bit, wrap-around included, on the GPU and on the CPU.
#[test]
fn uncouple_inverts_couple_exactly() {
    let ctx = ctx();
    for (i, &(rows, k)) in SHAPES.iter().enumerate() {
        let Operands {
            a,
            p,
            r,
            ta,
            tp,
            tr,
        } = operands(20 + i as u64, rows, k);
        let (out, parity) = couple(ctx, &ta, &tp, Coupling::Mean { r: &tr }).unwrap();
        let parity = parity.unwrap();
        let back = uncouple(ctx, &out.fixed, &ta, Some((&tr, &parity))).unwrap();
        let got: Vec<i64> = ctx.download_words(&back.fixed).unwrap();
        assert_exact(&format!("uncouple {rows}x{k}"), &got, &p);
        let values = ctx.download_f32(&back.value).unwrap();
        let want_values: Vec<f32> = p.iter().map(|&f| rf::value_of(f)).collect();
        assert_exact("uncoupled values", &values, &want_values);
        let (cpu_out, cpu_parity) = rf::couple(&a, &p, Some(&r));
        assert_exact(
            "reference round trip",
            &rf::uncouple(&cpu_out, &a, Some((&r, &cpu_parity))),
            &p,
        );
        let (first, _) = couple(ctx, &ta, &tp, Coupling::Add).unwrap();
        let back = uncouple(ctx, &first.fixed, &ta, None).unwrap();
        let got: Vec<i64> = ctx.download_words(&back.fixed).unwrap();
        assert_exact("uncouple (add)", &got, &p);
    }
}
