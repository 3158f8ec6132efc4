//! Dataset readers on the shipped subset, on files the tests write, on damaged copies,
//! and on the real data under ../shared when it is there; the batch loader.

use std::io::Write;
use std::path::Path;

use bitspike::data::{self, Augment, BatchLoader, Planar};
use bitspike::rng::Rng;

fn assets() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist-mini"))
}

#[test]
fn shipped_mnist_subset_opens() {
    let s = data::open(assets()).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (5000, 1000));
    assert_eq!(
        (s.train.channels(), s.train.height(), s.train.width()),
        (1, 28, 28)
    );
    assert_eq!(s.train.classes().len(), 10);
    assert!(s.train.labels().iter().all(|&l| l < 10));
    // MNIST's first training label is 5, its first test label 7.
    assert_eq!((s.train.labels()[0], s.test.labels()[0]), (5, 7));
    let norm = s.train.normalization().unwrap();
    assert!(
        (norm.mean[0] - 0.1307).abs() < 0.01 && (norm.std[0] - 0.3081).abs() < 0.01,
        "{norm:?}"
    );
}

#[test]
fn idx_reads_uncompressed_files_too() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let raw = data::idx::read_maybe_gz(&assets().join(format!("{name}.gz"))).unwrap();
        std::fs::write(dir.path().join(name), raw).unwrap();
    }
    let plain = data::open(dir.path()).unwrap();
    let gz = data::open(assets()).unwrap();
    let images = |s: &data::Splits| s.train.decoded().unwrap().images.clone();
    assert_eq!(images(&plain), images(&gz));
    assert_eq!(plain.test.labels(), gz.test.labels());
}

#[test]
fn truncated_and_corrupt_idx_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let raw = data::idx::read_maybe_gz(&assets().join("train-images-idx3-ubyte.gz")).unwrap();
    let cut = dir.path().join("cut-images");
    std::fs::write(&cut, &raw[..1000]).unwrap();
    let err = data::idx::read_images(&cut).unwrap_err().to_string();
    assert!(
        err.contains("cut-images") && err.contains("truncated"),
        "{err}"
    );
    let short = dir.path().join("short-header");
    std::fs::write(&short, &raw[..10]).unwrap();
    let err = data::idx::read_images(&short).unwrap_err().to_string();
    assert!(
        err.contains("truncated header") && err.contains("offset 8"),
        "{err}"
    );
    let bad_gz = dir.path().join("bad.gz");
    let mut gz = std::fs::read(assets().join("train-labels-idx1-ubyte.gz")).unwrap();
    gz.truncate(gz.len() / 2);
    std::fs::write(&bad_gz, gz).unwrap();
    let err = data::idx::read_labels(&bad_gz).unwrap_err().to_string();
    assert!(err.contains("bad.gz") && err.contains("gzip"), "{err}");
    let labels_as_images =
        data::idx::read_images(&assets().join("t10k-labels-idx1-ubyte.gz")).unwrap_err();
    assert!(labels_as_images
        .to_string()
        .contains("not an IDX image file"));
}

fn cifar_record(label: u8, fill: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend(std::iter::repeat_n(fill, 3072));
    r
}

#[test]
fn cifar10_binary_batches_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let batch: Vec<u8> = (0..3).flat_map(|i| cifar_record(i, 10 * i)).collect();
    std::fs::write(dir.path().join("data_batch_1.bin"), &batch).unwrap();
    std::fs::write(dir.path().join("test_batch.bin"), cifar_record(9, 200)).unwrap();
    let s = data::open(dir.path()).unwrap();
    assert_eq!((s.train.len(), s.test.len(), s.train.channels()), (3, 1, 3));
    assert_eq!(s.train.labels(), [0, 1, 2]);
    assert_eq!(s.train.decoded().unwrap().image(2)[0], 20);
    assert_eq!(s.test.classes()[9], "truck");
    std::fs::write(
        dir.path().join("test_batch.bin"),
        &cifar_record(9, 200)[..3000],
    )
    .unwrap();
    let err = data::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("test_batch.bin") && err.contains("3073-byte records"),
        "{err}"
    );
}

#[test]
fn cifar100_uses_the_fine_label() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = vec![3u8, 42];
    rec.extend(std::iter::repeat_n(1u8, 3072));
    std::fs::write(dir.path().join("train.bin"), &rec).unwrap();
    std::fs::write(dir.path().join("test.bin"), &rec).unwrap();
    let s = data::open(dir.path()).unwrap();
    assert_eq!((s.train.labels()[0], s.train.classes().len()), (42, 100));
}

fn write_png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

#[test]
fn image_folders_decode_and_name_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    for (split, n) in [("train", 2), ("test", 1)] {
        for class in ["cat", "dog"] {
            let d = dir.path().join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                write_png(
                    &d.join(format!("{i}.png")),
                    8,
                    6,
                    if class == "cat" {
                        [255, 0, 0]
                    } else {
                        [0, 0, 255]
                    },
                );
            }
        }
    }
    // A JPEG of another size is resized to the first image's size.
    image::RgbImage::from_pixel(16, 12, image::Rgb([0, 255, 0]))
        .save(dir.path().join("train/dog/big.jpg"))
        .unwrap();
    let s = data::open(dir.path()).unwrap();
    assert_eq!(s.train.classes(), ["cat", "dog"]);
    assert_eq!((s.train.len(), s.test.len()), (5, 2));
    assert_eq!(
        (s.train.channels(), s.train.height(), s.train.width()),
        (3, 6, 8)
    );
    let first = s.train.decoded().unwrap().image(0);
    assert_eq!(first[0], 255, "red plane of a red cat");
    assert_eq!(first[2 * 48], 0, "blue plane of a red cat");
    let mut f = std::fs::File::create(dir.path().join("train/cat/broken.png")).unwrap();
    f.write_all(b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let err = data::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("broken.png") && err.contains("cannot decode"),
        "{err}"
    );
}

#[test]
fn empty_or_unknown_directories_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(data::open(dir.path())
        .unwrap_err()
        .to_string()
        .contains("no dataset found"));
    std::fs::create_dir_all(dir.path().join("train/a")).unwrap();
    std::fs::create_dir_all(dir.path().join("test/a")).unwrap();
    assert!(data::open(dir.path())
        .unwrap_err()
        .to_string()
        .contains("holds no images"));
}

#[test]
fn loader_covers_the_epoch_repeatably_and_normalizes() {
    let s = data::open(assets()).unwrap();
    let loader = BatchLoader {
        data: std::sync::Arc::new(s.test),
        batch_size: 128,
        shuffle: true,
        augment: Augment::default(),
        mixup: None,
        norm: data::Normalization {
            mean: vec![0.5],
            std: vec![0.5],
        },
        seed: 3,
        prefetch: 2,
        workers: 2,
        shard: bitspike::data::Shard::WHOLE,
    };
    let epoch = |e| -> Vec<_> { loader.epoch(e).map(|b| b.unwrap()).collect() };
    let (a, b, c) = (epoch(0), epoch(0), epoch(1));
    assert_eq!(a.len(), loader.batches());
    assert_eq!(a.iter().map(|b| b.len()).sum::<usize>(), 1000);
    assert_eq!(a[7].len(), 1000 - 7 * 128);
    assert_eq!(a[0].labels, b[0].labels, "same seed and epoch, same order");
    assert_ne!(a[0].labels, c[0].labels, "another epoch, another order");
    let mut seen: Vec<u32> = a.iter().flat_map(|b| b.labels.clone()).collect();
    let mut all = loader.data.labels().to_vec();
    seen.sort();
    all.sort();
    assert_eq!(seen, all);
    assert!(a[0].images.iter().all(|&v| (-1.0..=1.0).contains(&v)));
}

#[test]
fn augment_crops_with_zero_padding_and_flips() {
    let img = Planar::from_vec((1..=9).collect(), 1, 3, 3);
    let flip = Augment {
        horizontal_flip: true,
        ..Augment::default()
    };
    let mut rng = Rng::new(0);
    let mut flipped = false;
    for _ in 0..8 {
        let out = flip.apply_u8(&img, 3, 3, &mut rng).data;
        flipped |= out == vec![3, 2, 1, 6, 5, 4, 9, 8, 7];
        assert!(out == img.data || out == vec![3, 2, 1, 6, 5, 4, 9, 8, 7]);
    }
    assert!(flipped);
    let crop = Augment {
        crop_padding: 1,
        ..Augment::default()
    };
    for _ in 0..20 {
        let out = crop.apply_u8(&img, 3, 3, &mut rng).data;
        let sum: u32 = out.iter().map(|&v| v as u32).sum();
        assert!(sum <= 45 && out.iter().filter(|&&v| v == 0).count() <= 5);
    }
}

#[test]
fn loader_erases_after_normalizing() {
    // Const erasing writes 0 into the normalized batch: the mean, here grey 127.5, which
    // no u8 pixel normalizes to exactly.
    let s = data::open(assets()).unwrap();
    let loader = BatchLoader {
        data: std::sync::Arc::new(s.test),
        batch_size: 4,
        shuffle: false,
        augment: Augment {
            random_erasing: Some("1".parse().unwrap()),
            ..Augment::default()
        },
        norm: data::Normalization {
            mean: vec![0.5],
            std: vec![0.5],
        },
        mixup: None,
        seed: 3,
        prefetch: 1,
        workers: 1,
        shard: bitspike::data::Shard::WHOLE,
    };
    let batch = loader.make_batch(&[0, 1, 2, 3], 0, 0).unwrap();
    for image in batch.images.chunks(28 * 28) {
        let erased = image.iter().filter(|&&v| v == 0.0).count();
        assert!(erased > 0 && erased <= 28 * 28 / 3 + 28, "{erased}");
    }
}

#[test]
fn real_mnist_and_fashion_open_when_shared_data_is_present() {
    for name in ["mnist", "fashion-mnist"] {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")).join(name);
        if !dir.is_dir() {
            eprintln!("skipping: {} not present", dir.display());
            continue;
        }
        let s = data::open(&dir).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (60000, 10000));
    }
}
