//! The input pipeline: batches independent of the number of workers, exact resumption,
//! streamed image folders against decoded ones, errors of files met while streaming,
//! and the evaluation crop of ImageNet-style folders.

use std::path::Path;
use std::sync::Arc;

use bitspike::data::augment::{EraseMode, RandomErasing};
use bitspike::data::{
    self, resize, Augment, Batch, BatchLoader, FolderOptions, Load, MixMode, Mixup, Normalization,
    Planar, Samples,
};

fn assets() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist-mini"))
}

/// A training loader of `data` with every augmentation (crops, flips, RandAugment,
/// random erasing, mixup and cutmix), on `workers` threads.
fn loader(data: Samples, workers: usize) -> BatchLoader {
    let channels = data.channels();
    BatchLoader {
        data: Arc::new(data),
        batch_size: 7,
        shuffle: true,
        augment: Augment {
            crop_padding: 2,
            horizontal_flip: true,
            rand_augment: Some("rand-m9-n2-mstd0.5".parse().unwrap()),
            random_erasing: Some(RandomErasing {
                probability: 0.5,
                mode: EraseMode::Pixel,
                ..RandomErasing::default()
            }),
            ..Augment::default()
        },
        mixup: Some(Mixup {
            mixup_alpha: 0.8,
            cutmix_alpha: 1.0,
            cutmix_minmax: None,
            prob: 1.0,
            switch_prob: 0.5,
            mode: MixMode::Batch,
            off_epoch: None,
        }),
        norm: Normalization {
            mean: vec![0.5; channels],
            std: vec![0.25; channels],
        },
        seed: 11,
        prefetch: 2,
        workers,
        shard: bitspike::data::Shard::WHOLE,
    }
}

fn epoch(loader: &BatchLoader, e: u64, first: usize) -> Vec<Batch> {
    loader.epoch_from(e, first).map(|b| b.unwrap()).collect()
}

/// A pattern that tells pixels apart, so that crops, flips and resizes show.
fn pattern(w: u32, h: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = (x * 37 + y * 91 + seed * 53) % 256;
        image::Rgb([v as u8, (255 - v) as u8, ((x * y + seed) % 256) as u8])
    })
}

/// `train/` and `test/` with classes `a` and `b`: `n` images of `w` x `h` per class and
/// split, PNG and JPEG alternately.
fn write_folder(root: &Path, n: u32, w: u32, h: u32) {
    for split in ["train", "test"] {
        for (c, class) in ["a", "b"].iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                pattern(w, h, i * 2 + c as u32)
                    .save(dir.join(format!("{i:03}.{ext}")))
                    .unwrap();
            }
        }
    }
}

fn open_folder(root: &Path, image_size: Option<usize>, load: Load) -> data::Splits {
    data::open_with_options(
        root,
        &data::OpenOptions {
            folders: FolderOptions { image_size, load },
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn batches_are_the_same_on_one_two_and_three_workers() {
    let mnist = data::open(assets()).unwrap().test;
    let one = epoch(&loader(mnist.clone(), 1), 2, 0);
    assert_eq!(one.len(), 1000_usize.div_ceil(7));
    for workers in [2, 3] {
        assert_eq!(
            epoch(&loader(mnist.clone(), workers), 2, 0),
            one,
            "{workers}"
        );
    }
    // Augmented: another epoch's batches differ.
    assert_ne!(epoch(&loader(mnist, 3), 3, 0)[0], one[0]);
}

#[test]
fn an_epoch_resumed_at_batch_k_is_the_tail_of_the_whole_epoch() {
    let mnist = data::open(assets()).unwrap().test;
    let l = loader(mnist, 2);
    let whole = epoch(&l, 1, 0);
    for k in [1, 5, whole.len() - 1, whole.len()] {
        assert_eq!(epoch(&l, 1, k), whole[k..], "from batch {k}");
    }
    // make_batch with the same seed is the same batch.
    let again = l.make_batch(&[3, 1, 4], 0, 99).unwrap();
    assert_eq!(l.make_batch(&[3, 1, 4], 0, 99).unwrap(), again);
}

#[test]
fn a_streamed_folder_gives_the_batches_of_the_decoded_one() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), 9, 12, 10);
    let decoded = open_folder(dir.path(), None, Load::Auto);
    let streamed = open_folder(dir.path(), None, Load::Stream);
    assert!(
        matches!(decoded.train, Samples::Decoded(_)),
        "same sizes fit"
    );
    assert!(matches!(streamed.train, Samples::Files(_)));
    assert_eq!(decoded.train.labels(), streamed.train.labels());
    let (a, b) = (
        decoded.train.normalization().unwrap(),
        streamed.train.normalization().unwrap(),
    );
    for (x, y) in a.mean.iter().chain(&a.std).zip(b.mean.iter().chain(&b.std)) {
        assert!((x - y).abs() < 1e-6, "{a:?} {b:?}");
    }
    for (d, s) in [
        (decoded.train, streamed.train),
        (decoded.test, streamed.test),
    ] {
        let from_memory = epoch(&loader(d, 1), 0, 0);
        for workers in [1, 3] {
            assert_eq!(epoch(&loader(s.clone(), workers), 0, 0), from_memory);
        }
    }
}

#[test]
fn a_corrupt_jpeg_met_while_streaming_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), 6, 8, 8);
    let bad = dir.path().join("train/b/003.jpg");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..24]).unwrap();
    // Listing the folder decodes only the first image: the damage shows in the loader.
    let s = open_folder(dir.path(), None, Load::Stream);
    let batches: Vec<_> = loader(s.train, 2).epoch(0).collect();
    let err = batches.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(
        err.contains("003.jpg") && err.contains("cannot decode"),
        "{err}"
    );
    assert!(batches[..batches.len() - 1].iter().all(|b| b.is_ok()));
}

#[test]
fn imagenet_style_folders_stream_and_centre_crop_for_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    for (split, class, w, h) in [
        ("train", "a", 40, 20),
        ("train", "b", 24, 30),
        ("test", "a", 40, 20),
        ("test", "b", 16, 16),
    ] {
        let d = dir.path().join(split).join(class);
        std::fs::create_dir_all(&d).unwrap();
        pattern(w, h, 1).save(d.join("0.png")).unwrap();
    }
    let s = open_folder(dir.path(), Some(16), Load::Auto);
    assert!(
        matches!(s.train, Samples::Files(_)),
        "the first image is not 16x16"
    );
    assert_eq!((s.test.height(), s.test.width()), (16, 16));
    // Training reads each image whole; the loader resizes it (later: crops at random).
    assert_eq!(
        (
            s.train.read(0).unwrap().height,
            s.train.read(0).unwrap().width
        ),
        (20, 40)
    );
    // Evaluation: shorter side to floor(16 / 0.875) = 18, so 18 x 36, centre 16 x 16.
    let wide = Planar::from_image(&pattern(40, 20, 1).into(), 3);
    let expected = resize::crop(&resize::resize(&wide, 18, 36), 1, 10, 16, 16);
    assert_eq!(s.test.read(0).unwrap(), expected);
    assert_eq!(resize::eval_center_crop(&wide, 16, 16), expected);
    // An image of the model's size is kept as it is (crop_pct 1).
    let square = Planar::from_image(&pattern(16, 16, 1).into(), 3);
    assert_eq!(s.test.read(1).unwrap(), square);
    // Decoded once instead, the same samples.
    let memory = open_folder(dir.path(), Some(16), Load::InMemory);
    let d = memory.test.decoded().unwrap();
    assert_eq!(d.image(0), &expected.data[..]);
    let streamed = epoch(&loader(s.train, 2), 0, 0);
    assert_eq!(epoch(&loader(memory.train, 1), 0, 0), streamed);
    assert!(streamed
        .iter()
        .all(|b| b.images.len() == b.len() * 3 * 16 * 16));
}

#[test]
fn dropping_the_batches_midway_returns_promptly() {
    let mnist = data::open(assets()).unwrap().train;
    let l = BatchLoader {
        batch_size: 1,
        ..loader(mnist, 2)
    };
    let start = std::time::Instant::now();
    for _ in 0..20 {
        let mut batches = l.epoch(0);
        batches.next().unwrap().unwrap();
    }
    // 20 epochs of 5000 batches started and dropped: far less than preparing them.
    assert!(start.elapsed().as_secs_f64() < 5.0);
}
