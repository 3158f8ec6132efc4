//! The engine itself: transfers, the buffer pool, the pipeline cache, limits, copy.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use bitspike::ops::{copy, matmul, scale, MatmulForm};
use bitspike::{DType, Error, GpuContext};

use crate::common::{assert_exact, ctx, Rng};

#[test]
fn upload_download_round_trip_and_copy() {
    let ctx = ctx();
    let x = Rng::new(11).vec(1001, -5.0, 5.0);
    let t = ctx.upload_f32(&x, &[7, 11, 13]).unwrap();
    assert_exact("round trip", &ctx.download_f32(&t).unwrap(), &x);
    let c = copy(ctx, &t).unwrap();
    assert_exact("copy", &ctx.download_f32(&c).unwrap(), &x);
}

#[test]
fn pool_reuses_freed_buffers() {
    // A context of its own, so that no test alongside takes the freed buffer first.
    let ctx = &GpuContext::from_env().unwrap();
    let shape = [123_457];
    let t = ctx.empty(&shape, DType::F32).unwrap();
    let ptr = format!("{:?}", t.buffer());
    drop(t);
    assert!(ctx.pooled_idle_bytes() >= 4 * 123_457);
    let again = ctx.empty(&shape, DType::F32).unwrap();
    assert_eq!(
        format!("{:?}", again.buffer()),
        ptr,
        "the freed buffer is reused"
    );
}

#[test]
fn pipelines_are_built_once() {
    // A context of its own: the shared one gains pipelines from tests running alongside.
    let ctx = &GpuContext::from_env().unwrap();
    let t = ctx.upload_f32(&[1.0; 10], &[10]).unwrap();
    copy(ctx, &t).unwrap();
    let before = ctx.cached_pipelines();
    for _ in 0..5 {
        copy(ctx, &t).unwrap();
    }
    ctx.sync().unwrap();
    assert_eq!(ctx.cached_pipelines(), before);
}

#[test]
fn uniform_blocks_of_many_dispatches_in_one_submission_stay_distinct() {
    // More dispatches than one uniform arena holds, each with its own parameter, before a
    // single submit; repeated, so that the second round binds cached bind groups (the
    // pool hands out the same buffers) at new offsets.
    let ctx = &GpuContext::from_env().unwrap();
    let x = ctx.upload_f32(&[1.0, 2.0, 3.0], &[3]).unwrap();
    for round in 0..2 {
        let outs: Vec<_> = (0..700)
            .map(|i| scale(ctx, &x, (i + round) as f32).unwrap())
            .collect();
        for (i, y) in outs.iter().enumerate() {
            let a = (i + round) as f32;
            assert_exact(
                &format!("round {round} dispatch {i}"),
                &ctx.download_f32(y).unwrap(),
                &[a, 2.0 * a, 3.0 * a],
            );
        }
    }
}

#[test]
fn over_limit_buffer_is_a_clear_error() {
    let ctx = ctx();
    let words = (ctx.limits.max_storage_buffer_binding_size / 4 + 1) as usize;
    match ctx.empty(&[words], DType::F32) {
        Err(Error::BufferTooLarge { limit_name, .. }) => {
            assert_eq!(limit_name, "max_storage_buffer_binding_size")
        }
        other => panic!("expected BufferTooLarge, got {other:?}"),
    }
}

#[test]
fn upload_of_wrong_length_is_a_shape_error() {
    let ctx = ctx();
    let err = ctx.upload_f32(&[1.0; 5], &[2, 3]).unwrap_err();
    assert!(
        err.to_string().contains("shape mismatch in upload"),
        "{err}"
    );
}

#[test]
fn views_bind_write_and_read_their_own_range() {
    let ctx = ctx();
    let align = ctx.view_alignment_words();
    let flat = ctx.zeros(&[3 * align], DType::F32).unwrap();
    let a = flat.view(ctx, 0, &[5], DType::F32).unwrap();
    let b = flat.view(ctx, align, &[7], DType::F32).unwrap();
    ctx.write_words(&b, &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
        .unwrap();
    let b2 = copy(ctx, &b).unwrap();
    assert_exact(
        "copy of a view",
        &ctx.download_f32(&b2).unwrap(),
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
    );
    assert_exact("untouched view", &ctx.download_f32(&a).unwrap(), &[0.0; 5]);
    ctx.fill_zero(&b);
    let all = ctx.download_f32(&flat).unwrap();
    assert!(all.iter().all(|&v| v == 0.0));
    assert!(
        flat.view(ctx, 1, &[1], DType::F32).is_err() || align == 1,
        "misaligned view"
    );
    assert!(
        flat.view(ctx, 2 * align, &[align + 1], DType::F32).is_err(),
        "view past the end"
    );
}

#[test]
fn a_thread_waits_out_another_threads_long_submission() {
    // wgpu's GL backend panics when a thread waits over 6 s for the GL context, which a
    // submission holds while llvmpipe runs it: one submission of about 10 s here, while
    // another thread creates, fills and reads back buffers of its own.
    let ctx = &GpuContext::from_env().unwrap();
    let n = 512;
    let a = ctx
        .upload_f32(&Rng::new(3).vec(n * n, -1.0, 1.0), &[n, n])
        .unwrap();
    let product = || {
        matmul(ctx, &a, &a, MatmulForm::AB).unwrap();
    };
    // Timed the second time, once the pipeline is built.
    product();
    ctx.sync().unwrap();
    let started = Instant::now();
    product();
    ctx.sync().unwrap();
    let products = (10.0 / started.elapsed().as_secs_f64()).ceil() as usize;
    let recorded = Barrier::new(2);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            (0..products).for_each(|_| product());
            recorded.wait();
            ctx.sync().unwrap();
        });
        recorded.wait();
        // Long enough for the other thread's submission to begin.
        std::thread::sleep(Duration::from_secs(1));
        let x = Rng::new(4).vec(1234, -5.0, 5.0);
        for _ in 0..3 {
            let t = ctx.upload_f32(&x, &[1234]).unwrap();
            assert_exact("round trip", &ctx.download_f32(&t).unwrap(), &x);
        }
    });
}
