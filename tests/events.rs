//! Event data: every reader on the real files in ../shared/data and on damaged copies,
//! frame integration against the CPU reference, the dataset layouts and cache, the
//! frame batches, and the models' per-time-step input path.

mod common;

use std::path::{Path, PathBuf};

use bitspike::data::events::{self, dataset::EventOptions, Events, FrameSettings, SplitBy};
use bitspike::data::{self, Augment, BatchLoader};
use common::Rng;

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
}

fn check_sane(ev: &Events, w: usize, h: usize) {
    assert!(!ev.is_empty());
    assert!(ev.t.windows(2).all(|p| p[0] <= p[1]), "timestamps sorted");
    assert!(ev.x.iter().all(|&x| (x as usize) < w) && ev.y.iter().all(|&y| (y as usize) < h));
    assert!(ev.p.iter().all(|&p| p <= 1));
    assert!(ev.p.contains(&0) && ev.p.contains(&1), "both polarities");
}

/// The error of reading `bytes` as a file named `name` in a temp dir.
fn damaged(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = events::read(&path)
        .expect_err("a damaged file is an error")
        .to_string();
    assert!(err.contains(name), "the error names the file: {err}");
    err
}

fn offset_of(err: &str) -> usize {
    let at = err
        .find("byte offset ")
        .unwrap_or_else(|| panic!("no offset in: {err}"))
        + 12;
    err[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn nmnist_binary_reads_real_samples() {
    for path in [
        shared("tonic-samples/sample_nmnist.bin"),
        shared("nmnist-small/samples/1.bs2"),
    ] {
        let bytes = std::fs::read(&path).unwrap();
        let ev = events::read(&path).unwrap();
        assert_eq!(ev.len(), bytes.len() / 5);
        check_sane(&ev, 34, 34);
        // The first event decoded by hand.
        assert_eq!((ev.x[0], ev.y[0]), (bytes[0] as u16, bytes[1] as u16));
        assert_eq!(ev.p[0], bytes[2] >> 7);
        let t0 = ((bytes[2] as i64 & 0x7F) << 16) | ((bytes[3] as i64) << 8) | bytes[4] as i64;
        assert_eq!(ev.t[0], t0);
        assert!(
            *ev.t.last().unwrap() < 400_000,
            "N-MNIST samples last about 300 ms"
        );
    }
}

#[test]
fn dvs128_clips_read_on_the_128_sensor() {
    for i in 1..=10 {
        let ev = events::read(&shared(&format!("dvs128-unlabeled-clips/{i}.bs2"))).unwrap();
        check_sane(&ev, 128, 128);
        let span = ev.t.last().unwrap() - ev.t[0];
        assert!(
            (1_000_000..2_000_000).contains(&span),
            "clip {i} lasts {span} us"
        );
    }
}

#[test]
fn aedat4_sample_reads_lz4_event_packets() {
    let ev = events::read(&shared("tonic-samples/sample.aedat4")).unwrap();
    assert_eq!(ev.sensor, Some((320, 240)));
    check_sane(&ev, 320, 240);
    assert!(ev.len() > 10_000, "{} events", ev.len());
}

#[test]
fn aedat2_header_only_file_has_no_events_and_a_davis_sensor() {
    let ev = events::read(&shared("tonic-samples/sample_aedat_header.aedat")).unwrap();
    assert!(ev.is_empty());
    assert_eq!(ev.sensor, Some((346, 260)));
}

/// A few events with both polarities, in time order.
fn some_events(n: usize, w: u16, h: u16, seed: u64) -> Events {
    let mut rng = Rng::new(seed);
    let mut ev = Events::default();
    let mut t = 100i64;
    for _ in 0..n {
        t += (rng.next_u64() % 50) as i64;
        let x = (rng.next_u64() % w as u64) as u16;
        let y = (rng.next_u64() % h as u64) as u16;
        ev.push(x, y, t, (rng.next_u64() & 1) as u8);
    }
    ev
}

fn aedat2_dvs128(ev: &Events) -> Vec<u8> {
    let mut b = b"#!AER-DAT2.0\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n".to_vec();
    for i in 0..ev.len() {
        // jAER mirrors x on the DVS128.
        let addr = ((ev.y[i] as u32) << 8) | ((127 - ev.x[i] as u32) << 1) | ev.p[i] as u32;
        b.extend(addr.to_be_bytes());
        b.extend((ev.t[i] as i32).to_be_bytes());
    }
    b
}

fn aedat31(ev: &Events) -> Vec<u8> {
    let mut b = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n".to_vec();
    // Two polarity packets, the second with an invalidated event.
    let half = ev.len() / 2;
    for (range, extra_invalid) in [(0..half, false), (half..ev.len(), true)] {
        let n = range.len() + extra_invalid as usize;
        for v in [1u16.to_le_bytes(), 1u16.to_le_bytes()] {
            b.extend(v);
        }
        for v in [8u32, 4, 0, n as u32, n as u32, range.len() as u32] {
            b.extend(v.to_le_bytes());
        }
        for i in range {
            let data =
                ((ev.x[i] as u32) << 17) | ((ev.y[i] as u32) << 2) | ((ev.p[i] as u32) << 1) | 1;
            b.extend(data.to_le_bytes());
            b.extend((ev.t[i] as u32).to_le_bytes());
        }
        if extra_invalid {
            b.extend(0u32.to_le_bytes());
            b.extend(0u32.to_le_bytes());
        }
    }
    b
}

fn npy_header(descr: &str, shape: &str) -> Vec<u8> {
    let mut h = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.bytes());
    b
}

/// As tonic writes events: a structured array of int64 x, y, t, p.
fn tonic_npy(ev: &Events) -> Vec<u8> {
    let mut b = npy_header(
        "[('x', '<i8'), ('y', '<i8'), ('t', '<i8'), ('p', '<i8')]",
        &format!("({},)", ev.len()),
    );
    for i in 0..ev.len() {
        for v in [ev.x[i] as i64, ev.y[i] as i64, ev.t[i], ev.p[i] as i64] {
            b.extend(v.to_le_bytes());
        }
    }
    b
}

/// As SpikingJelly saves events: np.savez with one array per field.
fn spikingjelly_npz(ev: &Events) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let n = ev.len();
    let arrays: [(&str, &str, Vec<u8>); 4] = [
        (
            "x",
            "'<u2'",
            ev.x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "y",
            "'<u2'",
            ev.y.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "t",
            "'<i8'",
            ev.t.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        ("p", "'|u1'", ev.p.clone()),
    ];
    for (name, descr, data) in arrays {
        zip.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(&npy_header(descr, &format!("({n},)")))
            .unwrap();
        zip.write_all(&data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn read_bytes(name: &str, bytes: &[u8]) -> Events {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    events::read(&path).unwrap()
}

fn same_events(a: &Events, b: &Events) {
    assert_eq!((&a.x, &a.y, &a.t, &a.p), (&b.x, &b.y, &b.t, &b.p));
}

#[test]
fn aedat2_aedat31_npy_npz_read_back_what_was_written() {
    let real = events::read(&shared("nmnist-small/samples/7.bs2")).unwrap();
    let ev = Events {
        sensor: None,
        ..real
    };
    same_events(&read_bytes("a.aedat", &aedat2_dvs128(&ev)), &ev);
    let v3 = read_bytes("b.aedat", &aedat31(&ev));
    same_events(&v3, &ev);
    assert_eq!(v3.sensor, Some((128, 128)));
    same_events(&read_bytes("c.npy", &tonic_npy(&ev)), &ev);
    same_events(&read_bytes("d.npz", &spikingjelly_npz(&ev)), &ev);
}

#[test]
fn damaged_files_are_errors_naming_the_file_and_offset() {
    let nm = std::fs::read(shared("nmnist-small/samples/1.bs2")).unwrap();
    let err = damaged("cut.bs2", &nm[..nm.len() - 2]);
    assert_eq!(offset_of(&err), nm.len() - 5, "{err}");
    // Two events swapped: time goes backwards at the second of them.
    let mut swapped = nm.clone();
    let k = 100;
    let j = (k + 1..nm.len() / 5)
        .find(|&j| nm[5 * j + 2..5 * j + 5] != nm[5 * k + 2..5 * k + 5])
        .unwrap();
    for b in 0..5 {
        swapped.swap(5 * k + b, 5 * j + b);
    }
    let err = damaged("swapped.bin", &swapped);
    assert!(err.contains("goes back"), "{err}");

    let a4 = std::fs::read(shared("tonic-samples/sample.aedat4")).unwrap();
    let err = damaged("cut.aedat4", &a4[..a4.len() / 2]);
    assert!(offset_of(&err) < a4.len() / 2, "{err}");
    let mut garbled = a4.clone();
    // Inside the first packet's payload (after the 2.3 kB header and its 8-byte header).
    for b in &mut garbled[2400..2600] {
        *b ^= 0x5A;
    }
    let err = damaged("garbled.aedat4", &garbled);
    assert!(offset_of(&err) <= 2600, "{err}");
    let err = damaged("header.aedat4", &a4[..100]);
    assert_eq!(offset_of(&err), 14, "{err}");

    let ev = events::read(&shared("nmnist-small/samples/3.bs2")).unwrap();
    let v2 = aedat2_dvs128(&ev);
    let err = damaged("cut2.aedat", &v2[..v2.len() - 3]);
    assert_eq!(offset_of(&err), v2.len() - 8, "{err}");
    let v3 = aedat31(&ev);
    let err = damaged("cut3.aedat", &v3[..v3.len() - 20]);
    assert!(err.contains("runs past the end"), "{err}");
    let npy = tonic_npy(&ev);
    let err = damaged("cut.npy", &npy[..npy.len() - 9]);
    assert!(err.contains("truncated array"), "{err}");
    let npz = spikingjelly_npz(&ev);
    damaged("cut.npz", &npz[..npz.len() / 2]);
    damaged("unknown.xyz", b"not events at all");
}

fn random_events(rng: &mut Rng, n: usize, w: u16, h: u16) -> Events {
    let mut ev = some_events(n, w, h, rng.next_u64());
    // Bursts: many events on one timestamp, and a long pause.
    if n > 10 {
        for i in n / 3..n / 3 + 5 {
            ev.t[i] = ev.t[n / 3];
        }
        for i in 2 * n / 3..n {
            ev.t[i] += 100_000;
        }
    }
    ev
}

#[test]
fn integration_matches_the_reference_and_keeps_every_event() {
    let mut rng = Rng::new(7);
    for (n, t_steps, (w, h), size) in [
        (1000, 16, (34, 34), 32),
        (777, 5, (128, 128), 48),
        (333, 7, (128, 128), 64),
        (3, 4, (34, 34), 34),
        (1, 16, (10, 7), 5),
        (0, 4, (34, 34), 16),
    ] {
        let ev = random_events(&mut rng, n, w as u16, h as u16);
        for split_by in [SplitBy::Time, SplitBy::Number] {
            let s = FrameSettings {
                time_steps: t_steps,
                split_by,
                sensor: (w, h),
                size,
            };
            let got = events::integrate(&ev, &s);
            let want = bitspike::reference::events::integrate(&ev, &s);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(*g as f64, *w, "{split_by:?} n {n} T {t_steps} at {i}");
            }
            assert_eq!(got.iter().map(|&v| v as usize).sum::<usize>(), n);
        }
    }
    // Split by number: equal counts per frame, the remainder in the last.
    let ev = random_events(&mut rng, 103, 34, 34);
    let s = FrameSettings {
        time_steps: 10,
        split_by: SplitBy::Number,
        sensor: (34, 34),
        size: 34,
    };
    let f = events::integrate(&ev, &s);
    let per: Vec<u32> = f.chunks(2 * 34 * 34).map(|c| c.iter().sum()).collect();
    assert_eq!(per, [10, 10, 10, 10, 10, 10, 10, 10, 10, 13]);
    // Split by time: frame i counts the events of its time slice.
    let s = FrameSettings {
        split_by: SplitBy::Time,
        ..s
    };
    let f = events::integrate(&ev, &s);
    let (t0, dt) = (ev.t[0], (ev.t[102] - ev.t[0]) / 10);
    for (i, c) in f.chunks(2 * 34 * 34).enumerate() {
        let inside =
            ev.t.iter()
                .filter(|&&t| t >= t0 + i as i64 * dt && (i == 9 || t < t0 + (i as i64 + 1) * dt))
                .count();
        assert_eq!(c.iter().sum::<u32>() as usize, inside, "frame {i}");
    }
}

#[test]
fn real_nmnist_sample_bins_every_event_by_polarity() {
    let ev = events::read(&shared("nmnist-small/samples/1.bs2")).unwrap();
    let s = FrameSettings {
        time_steps: 16,
        split_by: SplitBy::Time,
        sensor: (34, 34),
        size: 34,
    };
    let f = events::integrate(&ev, &s);
    let plane = 34 * 34;
    let on: u32 = f.chunks(plane).skip(1).step_by(2).flatten().sum();
    let off: u32 = f.chunks(plane).step_by(2).flatten().sum();
    assert_eq!(on as usize, ev.p.iter().filter(|&&p| p == 1).count());
    assert_eq!(off as usize, ev.p.iter().filter(|&&p| p == 0).count());
}

fn options(cache: &Path) -> EventOptions {
    EventOptions {
        time_steps: 4,
        split_by: SplitBy::Number,
        size: Some(16),
        sensor: None,
        cache_dir: Some(cache.to_path_buf()),
        train_ratio: 0.75,
    }
}

/// A small N-MNIST-style tree of links to real samples: Train/<digit>/, Test/<digit>/.
fn nmnist_tree(root: &Path) -> Vec<(PathBuf, u32)> {
    let list = std::fs::read_to_string(shared("nmnist-small/train1K.txt")).unwrap();
    let mut out = Vec::new();
    for line in list.lines().skip(1).take(12) {
        let (id, label) = line.split_once('\t').unwrap();
        let split = if out.len() < 8 { "Train" } else { "Test" };
        let dir = root.join(split).join(label.trim());
        std::fs::create_dir_all(&dir).unwrap();
        let src = shared(&format!("nmnist-small/samples/{id}.bs2"));
        std::fs::copy(&src, dir.join(format!("{id}.bin"))).unwrap();
        out.push((src, label.trim().parse().unwrap()));
    }
    out
}

#[test]
fn layouts_open_bin_and_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    // Label file + samples (the real nmnist-small).
    let s = data::open_with(&shared("nmnist-small"), &options(&cache)).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (1000, 100));
    let f = s.frames.unwrap();
    assert_eq!((f.sensor, f.size, f.time_steps), ((34, 34), 16, 4));
    assert_eq!(
        (s.train.channels(), s.train.height(), s.train.time_steps()),
        (2, 16, 4)
    );
    assert_eq!(s.train.labels()[..3], [5, 0, 4]);
    // Sample 1's frames are its events binned.
    let ev = events::read(&shared("nmnist-small/samples/1.bs2")).unwrap();
    let frames = |s: &data::Samples| s.decoded().unwrap().images.clone();
    assert_eq!(
        s.train.decoded().unwrap().image(0),
        events::frames::integrate_u8(&ev, &f)
    );
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(cached.len(), 1, "one cache file");
    // The second open reads the cache: same frames, even with the files' data gone from
    // the reader's view (a damaged cache is ignored and rebuilt).
    let again = data::open_with(&shared("nmnist-small"), &options(&cache)).unwrap();
    assert_eq!(frames(&again.train), frames(&s.train));
    assert_eq!(again.frames, s.frames);
    let path = cached[0].as_ref().unwrap().path();
    std::fs::write(&path, b"BSFRAME1 damaged").unwrap();
    let rebuilt = data::open_with(&shared("nmnist-small"), &options(&cache)).unwrap();
    assert_eq!(frames(&rebuilt.test), frames(&s.test));
    // Other settings miss the cache.
    let other = EventOptions {
        split_by: SplitBy::Time,
        ..options(&cache)
    };
    let by_time = data::open_with(&shared("nmnist-small"), &other).unwrap();
    assert_ne!(frames(&by_time.train), frames(&s.train));

    // N-MNIST Train/Test folders.
    let root = tmp.path().join("nmnist");
    let samples = nmnist_tree(&root);
    let s = data::open_with(
        &root,
        &EventOptions {
            cache_dir: None,
            ..options(&cache)
        },
    )
    .unwrap();
    assert_eq!((s.train.len(), s.test.len()), (8, 4));
    assert_eq!(s.format, "event files in Train/ and Test/ class folders");
    // Class folders without a split: 3 of every 4 files train.
    let flat = tmp.path().join("flat");
    for (i, (src, label)) in samples.iter().enumerate() {
        let dir = flat.join(format!("class{}", label % 2));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(src, dir.join(format!("{i:02}.bs2"))).unwrap();
    }
    let s = data::open_with(
        &flat,
        &EventOptions {
            cache_dir: None,
            ..options(&cache)
        },
    )
    .unwrap();
    assert_eq!(s.train.len() + s.test.len(), 12);
    assert_eq!(s.train.classes(), ["class0", "class1"]);
    assert!(s.test.len() >= 2);
}

#[test]
fn frame_batches_are_time_major_and_augment_all_frames_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let s = data::open_with(&shared("nmnist-small"), &options(tmp.path())).unwrap();
    let norm = s.train.normalization().unwrap();
    let (t_steps, plane) = (4, 16 * 16);
    let loader = BatchLoader {
        data: std::sync::Arc::new(s.train),
        batch_size: 3,
        shuffle: false,
        augment: Augment::default(),
        mixup: None,
        norm: norm.clone(),
        seed: 1,
        prefetch: 1,
        workers: 1,
        shard: bitspike::data::Shard::WHOLE,
    };
    let batch = loader.make_batch(&[5, 9, 2], 0, 0).unwrap();
    assert_eq!(batch.images.len(), t_steps * 3 * 2 * plane);
    for t in 0..t_steps {
        for (k, &i) in [5usize, 9, 2].iter().enumerate() {
            for c in 0..2 {
                let src = &loader.data.decoded().unwrap().image(i)[(t * 2 + c) * plane..][..plane];
                let got = &batch.images[((t * 3 + k) * 2 + c) * plane..][..plane];
                for (g, &v) in got.iter().zip(src) {
                    assert!((g - (v as f32 / 255.0 - norm.mean[c]) / norm.std[c]).abs() < 1e-5);
                }
            }
        }
    }
    // A flip mirrors every frame of the sample.
    let flipped = BatchLoader {
        augment: Augment {
            horizontal_flip: true,
            ..Augment::default()
        },
        ..loader.clone()
    };
    let mut seen_flip = false;
    for seed in 0..8 {
        let b = flipped.make_batch(&[5], 0, seed).unwrap();
        let plain = loader.make_batch(&[5], 0, seed).unwrap();
        let mirrored = |img: &[f32]| -> Vec<f32> {
            img.chunks(16)
                .flat_map(|row| row.iter().rev().copied())
                .collect()
        };
        if b.images != plain.images {
            seen_flip = true;
            assert_eq!(
                b.images,
                mirrored(&plain.images),
                "all frames flipped together"
            );
        }
    }
    assert!(seen_flip);
}

#[test]
fn models_take_one_frame_per_time_step() {
    use bitspike::nn::{init_state, Classifier, Model, ModelConfig, ParamStore};
    let ctx = common::ctx();
    for preset in ["spikformer-2-64", "bestformer-2-64"] {
        let mut cfg = ModelConfig::preset(preset).unwrap();
        cfg.in_channels = 2;
        cfg.image_size = 12;
        cfg.time_steps = 3;
        let b = 2;
        let mut store = ParamStore::new(ctx, &cfg, &init_state(&cfg, 3)).unwrap();
        let mut model = Model::new(&cfg, b).unwrap();
        let mut rng = Rng::new(11);
        let n = b * 2 * 12 * 12;
        let image = rng.vec(n, -1.0, 2.0);
        let logits = |model: &mut Model, store: &mut ParamStore, x: &bitspike::gpu::Tensor| {
            // Training mode: batch statistics keep the spikes flowing at initialisation.
            let heads = model.forward(ctx, store, x, true).unwrap();
            ctx.download_f32(&bitspike::nn::combine_heads(ctx, &heads).unwrap())
                .unwrap()
        };
        let repeated = ctx.upload_f32(&image, &[b, 2, 12, 12]).unwrap();
        let same: Vec<f32> = (0..3).flat_map(|_| image.iter().copied()).collect();
        let frames = ctx.upload_f32(&same, &[3, b, 2, 12, 12]).unwrap();
        let a = logits(&mut model, &mut store, &repeated);
        let f = logits(&mut model, &mut store, &frames);
        common::assert_close(preset, &f, &a, 1e-5);
        // Different frames give a different output: the frames are the inputs.
        let mut varied = same.clone();
        for v in &mut varied[n..] {
            *v = -*v;
        }
        let frames = ctx.upload_f32(&varied, &[3, b, 2, 12, 12]).unwrap();
        let g = logits(&mut model, &mut store, &frames);
        assert!(
            g.iter().zip(&a).any(|(x, y)| (x - y).abs() > 1e-4),
            "{preset}"
        );
        // A frame tensor of the wrong T is a shape error.
        let wrong = ctx.upload_f32(&same[..2 * n], &[2, b, 2, 12, 12]).unwrap();
        assert!(model.forward(ctx, &mut store, &wrong, false).is_err());
    }
}
