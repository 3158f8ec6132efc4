use bitspike::ops::optim::{adamw_step, clip_scale, AdamW};
use bitspike::reference;

use crate::common::{assert_close, ctx, Rng};

#[test]
fn adamw_matches_reference_over_steps_with_and_without_clipping() {
    let ctx = ctx();
    let mut rng = Rng::new(21);
    let len = 5000 + 37; // several workgroups and a ragged end
    let decay_end = 3001;
    for max_grad_norm in [None, Some(0.5)] {
        let opt = AdamW {
            max_grad_norm,
            ..AdamW::default()
        };
        let mut p = rng.vec(len, -1.0, 1.0);
        let (mut m1, mut m2) = (vec![0.0; len], vec![0.0; len]);
        let tp = ctx.upload_f32(&p, &[len]).unwrap();
        let tm1 = ctx.zeros(&[len], bitspike::DType::F32).unwrap();
        let tm2 = ctx.zeros(&[len], bitspike::DType::F32).unwrap();
        for step in 1..=3 {
            let g = rng.vec(len, -0.1, 0.1);
            let tg = ctx.upload_f32(&g, &[len]).unwrap();
            adamw_step(ctx, &opt, 1e-2, step, decay_end, &tg, &tp, &tm1, &tm2).unwrap();
            reference::optim::adamw_step(&opt, 1e-2, step, decay_end, &g, &mut p, &mut m1, &mut m2);
        }
        let what = format!("clip {max_grad_norm:?}");
        assert_close(
            &format!("{what} params"),
            &ctx.download_f32(&tp).unwrap(),
            &p,
            1e-5,
        );
        assert_close(
            &format!("{what} m1"),
            &ctx.download_f32(&tm1).unwrap(),
            &m1,
            1e-5,
        );
        assert_close(
            &format!("{what} m2"),
            &ctx.download_f32(&tm2).unwrap(),
            &m2,
            1e-5,
        );
    }
}

#[test]
fn clip_scale_is_max_norm_over_the_gradient_norm() {
    let ctx = ctx();
    let g: Vec<f32> = (0..3000)
        .map(|i| if i % 2 == 0 { 0.1 } else { -0.1 })
        .collect();
    let norm = (3000.0f32 * 0.01).sqrt();
    let tg = ctx.upload_f32(&g, &[3000]).unwrap();
    let s = ctx
        .download_f32(&clip_scale(ctx, &tg, 1.0).unwrap())
        .unwrap();
    assert_close("clip scale", &s, &[1.0 / (norm + 1e-6)], 1e-5);
    let s = ctx
        .download_f32(&clip_scale(ctx, &tg, 100.0).unwrap())
        .unwrap();
    assert_eq!(s, vec![1.0], "no clipping under the limit");
}
